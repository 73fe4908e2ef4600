"""The RBD step library's registry and the lines its plans print."""

from datetime import UTC, datetime
from pathlib import Path

import yaml

from drd.ceph.cluster import ClusterHandle
from drd.domain.rbd_step_decisions import Act, Decision
from drd.domain.replication_plan import ImageRef, MirrorMode, MirrorState, ObservedImage
from drd.domain.runbook import Runbook, RunbookKind, RunTarget
from drd.domain.runbook_steps import STEP_TYPES
from drd.domain.site import SiteKind
from drd.domain.tenant_policy import TenantPolicy
from drd.runbooks.image_work import grouped, summary
from drd.runbooks.rbd_library import rbd_executors
from drd.runbooks.rgw_steps import rgw_executors
from drd.runbooks.site_images import SiteImage
from drd.runbooks.step_api import ScopedImage, StepContext

RUNBOOKS = Path(__file__).parents[2] / "runbooks"


class NoSites:
    """SiteAccess for steps that only print: reaching a cluster is a test failure."""

    def cluster(self, site: str) -> ClusterHandle:
        raise AssertionError(f"the test reached for site {site}'s cluster")

    def ceph_conf(self, site: str) -> str:
        raise AssertionError(f"the test reached for site {site}'s ceph.conf")

    def peer_reachable(self, site: str) -> bool:
        return True

    def sites_of_kind(self, kind: SiteKind) -> list[str]:
        return {SiteKind.PRODUCTION: ["a"], SiteKind.SAME_CITY: ["b"],
                SiteKind.REMOTE: ["c"]}[kind]

    def restart_rbd_mirror(self, site: str) -> str:
        raise AssertionError(f"the test restarted site {site}'s rbd-mirror")


def _policy(tenant: str) -> TenantPolicy:
    return TenantPolicy.model_validate({"tenant": tenant, "protection": {"block": [
        {"name": "db", "pool": "rbd", "namespace": tenant, "images": ["db-*"],
         "same_city": {"mode": "journal", "rpo_target": "5s"}}]}})


def _context() -> StepContext:
    return StepContext(run_id=1, kind=RunbookKind.SWITCHOVER,
                       target=RunTarget("a", "b", None),
                       policies={"water": _policy("water"), "transport": _policy("transport")},
                       sites=NoSites(), facts={}, now=lambda: datetime.now(UTC))


def _image(name: str, primary: bool) -> SiteImage:
    ref = ImageRef("rbd", "water", name)
    return SiteImage(ScopedImage("water", "db", ref),
                     ObservedImage(ref, name, MirrorState.ENABLED, MirrorMode.JOURNAL, primary,
                                   None), None)


def test_every_rbd_and_health_step_of_the_switchover_has_an_executor() -> None:
    executors = rbd_executors()
    assert set(executors) <= set(STEP_TYPES)
    switchover = Runbook.model_validate(yaml.safe_load((RUNBOOKS / "switchover.yaml")
                                                       .read_text()))
    used = {str(step.model_dump(include={"type"})["type"]) for _, step in switchover.steps()}
    assert used - set(rgw_executors()) <= set(executors)


def test_a_plan_says_per_tenant_what_it_would_do_now() -> None:
    images = [_image(f"db-{n}", primary=n < 18) for n in range(20)]
    decisions = {image.ref: Decision(Act.ACT, "primary: demote") if image.observed.primary
                 else Decision(Act.SKIP, "already non-primary") for image in images}
    lines = summary(_context(), "demote", "a", images, decisions=decisions,
                    labels={Act.ACT: "primary", Act.SKIP: "already non-primary"})
    assert lines == ["demote: no images of transport in scope on a",
                     "demote 20 images of water on a: 18 primary, 2 already non-primary"]


def test_the_same_reason_for_many_images_is_one_line() -> None:
    refs = {ImageRef("rbd", "water", f"db-{n:02d}"): "not primary on b" for n in range(20)}
    refs[ImageRef("rbd", "water", "pg-wal-1")] = "mirroring is enabling"
    assert grouped(refs) == [
        "  20 images (rbd/water/db-00, rbd/water/db-01, rbd/water/db-02 and 17 more): "
        "not primary on b",
        "  rbd/water/pg-wal-1: mirroring is enabling"]
