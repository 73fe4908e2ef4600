"""The drill's steps on the real lab: while site a keeps writing to its images, a drill at
site b clones every image in scope, verifies each clone against a's snapshot, and
removes everything again, and mirroring of the production images keeps going.

Images live in rbd/water on site a, named `drill-<run>-...`, mirrored by hand in
snapshot and in journal mode (no daemon's policy selects them); the steps get a tenant
policy selecting them, built here. Writers on a and the checks read Ceph directly,
through tests.integration.rbd_images, not through drd.
"""

import asyncio
import contextlib
import itertools
import random
import secrets
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime

import pytest
import rbd
import yaml

from drd.ceph import rbd_images as ceph_images
from drd.ceph.cluster import connect
from drd.config.site_loader import load_site_config
from drd.domain.drill import DRILL_NAMESPACE, run_snapshots
from drd.domain.replication_plan import ImageRef
from drd.domain.runbook import RunbookKind, RunTarget
from drd.domain.runbook_steps import (
    DrillCleanupStep,
    DrillCloneStep,
    DrillVerify,
    DrillVerifyParams,
    DrillVerifyStep,
    SiteParams,
)
from drd.domain.tenant_policy import TenantPolicy
from drd.lab.description import LabDescription, SiteRecord
from drd.runbooks.drill_steps import drill_executors
from drd.runbooks.sites import ConfiguredSites
from drd.runbooks.step_api import StepContext, StepFailed, StepOutput
from tests.integration.rbd_images import (
    JOURNAL_FEATURES,
    MODES,
    MiB,
    image_sha256,
    pool,
    random_bytes,
    wait_for_checksum,
    wait_journal_peers,
)

RUN = uuid.uuid4().hex[:6]  # a lab reused across runs keeps older images
RUN_ID = 100_000 + secrets.randbelow(800_000)  # and older drills' leftovers, if any failed
SIZE = 16 * MiB
NAMESPACE = "water"
IMAGES = [f"drill-{RUN}-{mode}{n}" for mode in ("snapshot", "journal") for n in range(3)]
# Longest time b's copy of an image may go without receiving anything while a writes;
# mirror snapshots are taken every second here, and this 2-core box runs three sites.
STALL_BOUND_SECONDS = 20.0
EXECUTORS = drill_executors()


def _mode(name: str) -> str:
    return "snapshot" if "-snapshot" in name else "journal"


def _policy(globs: list[str]) -> TenantPolicy:
    return TenantPolicy.model_validate(yaml.safe_load(f"""
tenant: water
protection:
  block:
    - name: drilled
      pool: rbd
      namespace: {NAMESPACE}
      images: {globs}
      same_city: {{mode: journal, rpo_target: 30s}}
"""))


@pytest.fixture(scope="module")
def images(lab: LabDescription) -> Iterator[list[str]]:
    a, b = lab.sites["a"], lab.sites["b"]
    with pool(a, NAMESPACE) as ioctx:
        for index, name in enumerate(IMAGES):
            journal = _mode(name) == "journal"
            rbd.RBD().create(ioctx, name, SIZE, old_format=False,
                             features=JOURNAL_FEATURES if journal else None)
            with rbd.Image(ioctx, name) as image:
                image.write(random_bytes(300 + index, SIZE // 2), 0)
                image.mirror_image_enable(MODES[_mode(name)])
                if not journal:
                    image.mirror_image_create_snapshot()
    wait_journal_peers(a, [n for n in IMAGES if _mode(n) == "journal"], namespace=NAMESPACE)
    for name in IMAGES:
        wait_for_checksum(b, name, image_sha256(a, name, NAMESPACE), namespace=NAMESPACE)
    yield IMAGES
    with pool(a, NAMESPACE) as ioctx:
        for name in IMAGES:
            with contextlib.suppress(rbd.Error), rbd.Image(ioctx, name) as image:
                image.mirror_image_disable(False)
            with contextlib.suppress(rbd.Error):
                rbd.RBD().remove(ioctx, name)


@dataclass
class Writers:
    """Random 4 KiB writes to every image on site a, as its users would make them; in
    snapshot mode a mirror snapshot each second, as a 1 s schedule would take."""

    site: SiteRecord
    names: list[str]
    stop: threading.Event = field(default_factory=threading.Event)
    writes: dict[str, int] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)

    def write(self, name: str) -> None:
        rng = random.Random(name)  # noqa: S311 - test data
        try:
            with pool(self.site, NAMESPACE) as ioctx, rbd.Image(ioctx, name) as image:
                last_snapshot = time.monotonic()
                while not self.stop.is_set():
                    image.write(rng.randbytes(4096), rng.randrange(0, SIZE, 4096))
                    self.writes[name] = self.writes.get(name, 0) + 1
                    if _mode(name) == "snapshot" and time.monotonic() - last_snapshot > 1.0:
                        image.mirror_image_create_snapshot()
                        last_snapshot = time.monotonic()
                image.flush()
        except rbd.Error as error:
            self.errors.append(f"{name}: {error}")

    @contextmanager
    def running(self) -> Iterator["Writers"]:
        threads = [threading.Thread(target=self.write, args=(n,)) for n in self.names]
        for thread in threads:
            thread.start()
        try:
            yield self
        finally:
            self.stop.set()
            for thread in threads:
                thread.join()


@dataclass
class Replication:
    """What b has received of each image, sampled twice a second: the newest complete
    mirror snapshot (snapshot mode) or b's commit position in a's journal."""

    a: SiteRecord
    b: SiteRecord
    names: list[str]
    stop: threading.Event = field(default_factory=threading.Event)
    advances: dict[str, list[float]] = field(default_factory=dict)

    def sample(self) -> None:
        last: dict[str, object] = {}
        with connect(self.a.conf) as a, connect(self.b.conf) as b:
            peer = ceph_images.peer_mirror_uuids(a, "rbd")["b"]
            ids = ceph_images.image_ids_by_name(a, "rbd", NAMESPACE)
            while not self.stop.is_set():
                now = time.monotonic()
                for name in self.names:
                    position = self._position(a, b, name, ids[name], peer)
                    if position != last.get(name):
                        self.advances.setdefault(name, []).append(now)
                        last[name] = position
                self.stop.wait(0.5)

    def _position(self, a: object, b: object, name: str, image_id: str, peer: str) -> object:
        ref = ImageRef("rbd", NAMESPACE, name)
        if _mode(name) == "snapshot":
            synced = [s.primary_snap_id for s in ceph_images.mirror_snapshots(b, ref)
                      if s.complete and s.primary_snap_id is not None]
            return max(synced, default=None)
        clients = ceph_images.journal_clients(a, "rbd", NAMESPACE, [image_id])[image_id]
        assert not isinstance(clients, Exception), clients
        return next((c.position for c in clients if c.client_id == peer), None)

    def longest_stall(self, start: float, end: float) -> dict[str, float]:
        """Per image, the longest time between start and end in which b received nothing."""
        stalls = {}
        for name in self.names:
            times = [start, *(t for t in self.advances.get(name, []) if start < t < end), end]
            stalls[name] = max(later - earlier for earlier, later in itertools.pairwise(times))
        return stalls

    @contextmanager
    def watching(self) -> Iterator["Replication"]:
        thread = threading.Thread(target=self.sample)
        thread.start()
        try:
            yield self
        finally:
            self.stop.set()
            thread.join()


def _context(sites: ConfiguredSites, run_id: int, globs: list[str]) -> StepContext:
    return StepContext(run_id=run_id, kind=RunbookKind.DRILL,
                       target=RunTarget(source="a", target="b", tenants=("water",)),
                       policies={"water": _policy(globs)}, sites=sites, facts={},
                       now=lambda: datetime.now(UTC))


CLONE = DrillCloneStep(name="clone", type="drill_clone", params=SiteParams(site="target"))
VERIFY = DrillVerifyStep(name="verify", type="drill_verify",
                         params=DrillVerifyParams(site="target"))
CLEANUP = DrillCleanupStep(name="cleanup", type="drill_cleanup",
                           params=SiteParams(site="target"))


def _run(step: DrillCloneStep | DrillVerifyStep | DrillCleanupStep,
         context: StepContext) -> tuple[StepOutput, float]:
    """Run one step as the engine would, on a fresh output; its output and seconds."""
    context.output = StepOutput()
    started = time.monotonic()
    asyncio.run(EXECUTORS[step.type].run(step, context))
    return context.output, time.monotonic() - started


def _leftovers(lab: LabDescription, run_id: int, names: list[str]) -> list[str]:
    """Everything of a drill run on sites a, b and c: clones, snapshots, trashed ones."""
    found = []
    snapshots = set(run_snapshots(run_id))
    for site in ("a", "b", "c"):
        record = lab.sites[site]
        with pool(record, DRILL_NAMESPACE) as ioctx, contextlib.suppress(rbd.Error):
            found += [f"{site}: clone {n}" for n in rbd.RBD().list(ioctx)
                          if n.endswith(f"-run{run_id}")]
        with pool(record, NAMESPACE) as ioctx:
            for name in names:
                with rbd.Image(ioctx, name, read_only=True) as image:
                    for snap in image.list_snaps():
                        kept = str(snap["name"])
                        if snap.get("namespace") == rbd.RBD_SNAP_NAMESPACE_TYPE_TRASH:
                            kept = str(image.snap_get_trash_namespace(snap["id"])
                                       ["original_name"])
                        if kept in snapshots:
                            found.append(f"{site}: {name}@{kept}")
    return found


def _await_empty(lab: LabDescription, run_id: int, names: list[str],
                 timeout: float = 30.0) -> list[str]:
    deadline = time.monotonic() + timeout
    while (left := _leftovers(lab, run_id, names)) and time.monotonic() < deadline:
        time.sleep(0.5)
    return left


def test_a_drill_at_b_while_a_writes_verifies_every_clone_and_leaves_nothing(
        lab: LabDescription, images: list[str]) -> None:
    a, b = lab.sites["a"], lab.sites["b"]
    assert b.drd_config is not None
    sites = ConfiguredSites(load_site_config(b.drd_config))
    drill = _context(sites, RUN_ID, [f"drill-{RUN}-*"])
    other_run = RUN_ID + 1  # an earlier drill whose clone is still there
    other = _context(sites, other_run, [images[0]])
    writers, replication = Writers(a, images), Replication(a, b, images)
    timings: dict[str, float] = {}
    try:
        with writers.running(), replication.watching():
            _run(CLONE, other)
            time.sleep(2.0)  # writes and replication under way before the drill
            start = time.monotonic()
            writes_before = sum(writers.writes.values())
            cloned, timings["clone"] = _run(CLONE, drill)
            again, timings["clone again"] = _run(CLONE, drill)
            verified, timings["verify"] = _run(VERIFY, drill)
            cleaned, timings["cleanup"] = _run(CLEANUP, drill)
            cleaned_again, timings["cleanup again"] = _run(CLEANUP, drill)
            end = time.monotonic()
            writes_during = sum(writers.writes.values()) - writes_before
        stalls = replication.longest_stall(start, end)
        print(f"\ndrill of {len(images)} images while a wrote {writes_during} times: "
              + ", ".join(f"{step} {seconds:.2f} s" for step, seconds in timings.items())
              + f"; RTO {cloned.facts['rto_seconds']} s; longest replication stall per "
              f"image {max(stalls.values()):.1f} s")

        assert not writers.errors, writers.errors
        assert writes_during > 100 * len(images), "a kept writing throughout the drill"
        clones = cloned.facts["clones"]
        assert sorted(c["source"] for c in clones) == [f"rbd/{NAMESPACE}/{n}" for n in
                                                       sorted(images)]
        assert {c["mode"] for c in clones} == {"snapshot", "journal"}
        assert all(c["clone"] == f"rbd/{DRILL_NAMESPACE}/water-{c['source'].split('/')[-1]}"
                   f"-run{RUN_ID}" for c in clones)
        assert max(c["ready_at"] for c in clones) == cloned.facts["clones_ready_at"]
        assert sum("(cloned by an earlier attempt)" in line for line in again.lines) == \
            len(images), "a repeated clone step makes nothing twice"

        verdicts = verified.facts["verdicts"]
        assert len(verdicts) == len(images)
        assert all(v["verified"] and v["bad_sectors"] == 0 for v in verdicts.values())
        for clone in clones:
            if clone["mode"] == "snapshot":  # snapshot mode copies the snapshot exactly
                verdict = verdicts[clone["clone"]]
                assert verdict["sha256"] == verdict["source_sha256"]
        assert f"all {len(images)} clones on b verified" in verified.lines

        assert sorted(cleaned.facts["clones_removed"]) == sorted(c["clone"] for c in clones)
        assert cleaned_again.facts["clones_removed"] == []
        assert _await_empty(lab, RUN_ID, images, timeout=0) == [], \
            "nothing of the drill is left on a, b or c once the clean-up has succeeded"
        kept = _leftovers(lab, other_run, images)
        assert f"b: clone water-{images[0]}-run{other_run}" in kept, \
            "the other run's clone was left alone"
        assert f"a: {images[0]}@drd-drill-run{other_run}" in kept

        # Mirroring went on: b kept receiving throughout (its mirror status lags by up to
        # 30 s, so the data says it), and b still holds exactly what a wrote.
        assert all(stall < STALL_BOUND_SECONDS for stall in stalls.values()), stalls
        for name in images:
            with pool(b, NAMESPACE) as ioctx, rbd.Image(ioctx, name, read_only=True) as copy:
                info = copy.mirror_image_get_info()
                assert info["state"] == rbd.RBD_MIRROR_IMAGE_ENABLED and not info["primary"]
            if _mode(name) == "snapshot":
                with pool(a, NAMESPACE) as ioctx, rbd.Image(ioctx, name) as image:
                    image.mirror_image_create_snapshot()
            wait_for_checksum(b, name, image_sha256(a, name, NAMESPACE), namespace=NAMESPACE)
    finally:
        with contextlib.suppress(StepFailed):
            _run(CLEANUP, other)
        sites.close()
    assert _await_empty(lab, other_run, images) == []


def test_a_clone_changed_after_cloning_fails_verification_and_is_named(
        lab: LabDescription, images: list[str]) -> None:
    b = lab.sites["b"]
    assert b.drd_config is not None
    sites = ConfiguredSites(load_site_config(b.drd_config))
    run_id = RUN_ID + 2
    pair = [images[0], images[-1]]  # one in snapshot mode, one in journal mode
    drill = _context(sites, run_id, pair)
    try:
        planned = asyncio.run(EXECUTORS["drill_clone"].plan(CLONE, drill))
        assert [line.strip() for line in planned[1:]] == [
            f"rbd/{NAMESPACE}/{name}@drd-drill-run{run_id} -> "
            f"rbd/{DRILL_NAMESPACE}/water-{name}-run{run_id}" for name in sorted(pair)]
        assert _leftovers(lab, run_id, pair) == [], "a plan changes nothing"
        cloned, _ = _run(CLONE, drill)
        damaged = next(c["clone"] for c in cloned.facts["clones"] if c["mode"] == "journal")
        with pool(b, DRILL_NAMESPACE) as ioctx, \
                rbd.Image(ioctx, damaged.rsplit("/", 1)[1]) as image:
            image.write(b"\xee" * 4096, 5 * MiB)
        with pytest.raises(StepFailed) as failed:
            _run(VERIFY, drill)
        assert str(failed.value) == f"1 of 2 clones on b failed verification: {damaged}"
        lines = drill.output.lines
        assert any(line.startswith(f"{damaged}: FAILED: 8 sectors of 512 bytes differ from "
                                   f"a:rbd/{NAMESPACE}/{images[-1]}@drd-drill-run{run_id}, "
                                   f"the first at byte {5 * MiB}") for line in lines), lines
        healthy = next(c["clone"] for c in cloned.facts["clones"] if c["clone"] != damaged)
        assert any(line.startswith(f"{healthy}: verified") for line in lines), lines

        # A hook sees each clone through the replica's ceph.conf; what it checks is its
        # own business (here only that the image opens), and it passes both.
        hook = DrillVerifyStep(name="hook", type="drill_verify", params=DrillVerifyParams(
            site="target", method=DrillVerify.HOOK,
            hook=("sh", "-c", 'rbd -c "$DRD_DRILL_CONF" info "$DRD_DRILL_IMAGE"')))
        hooked, _ = _run(hook, drill)
        assert {f"{clone}: verified, sh exited 0" for clone in (damaged, healthy)} <= \
            set(hooked.lines), hooked.lines
        assert any(f"rbd image '{damaged.rsplit('/', 1)[1]}'" in line
                   for line in hooked.lines), hooked.lines
    finally:
        _run(CLEANUP, drill)
        sites.close()
    assert _await_empty(lab, run_id, pair) == []
