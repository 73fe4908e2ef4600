"""Unplanned failover and failback on a lab of its own (its production site is killed):
with every Ceph daemon of site a gone, `drd failover` makes b writable and reports the
data-loss window; once a is back, `drd failback` pauses until an operator confirms b as
the winner, then resyncs a's stale copies and switches back, with b's writes intact.

The lab's OSDs keep their data in memory (memstore), written out only by a clean stop,
so a's OSD is stopped with SIGTERM (first, while its monitor still answers) and every
other Ceph daemon of a is killed with SIGKILL: to clients the site is as gone as if it
had lost power, and it can come back with its stale copies for the failback."""

import json
import os
import uuid
from collections.abc import Iterator

import psutil
import pytest

from drd.lab.description import DaemonRole, LabDescription
from tests.integration.own_lab import booted, replicated_images, stop
from tests.integration.rbd_images import MiB, random_bytes, wait_for_checksum, write
from tests.integration.runbook_helpers import (
    NAMESPACE,
    api,
    checksums,
    is_primary,
    kill,
    pids,
    restart_dead,
    steps_told,
    take_mirror_snapshots,
    wait_answers,
    wait_ended,
)
from tests.integration.test_replication import drd

pytestmark = pytest.mark.timeout(1200)

BLOCK = os.environ.get("DRD_TEST_FAILOVER_BLOCK", "78")
RUN = uuid.uuid4().hex[:6]
IMAGES = [f"fo-{RUN}-j{n}" for n in range(2)] + [f"fo-{RUN}-s{n}" for n in range(2)]
SNAPSHOT = [name for name in IMAGES if "-s" in name]
SIZE = 16 * MiB
CEPH_KILLED = {DaemonRole.MON, DaemonRole.MGR, DaemonRole.RBD_MIRROR, DaemonRole.RGW}
POLICY = f"""\
tenant: water
protection:
  block:
    - {{name: failover-journal, pool: rbd, namespace: water, images: ["fo-{RUN}-j*"],
       same_city: {{mode: journal, rpo_target: 10s}},
       remote: {{mode: snapshot, interval: 1m, rpo_target: 5m}}}}
    - {{name: failover-snapshot, pool: rbd, namespace: water, images: ["fo-{RUN}-s*"],
       same_city: {{mode: snapshot, interval: 1m, rpo_target: 2m}},
       remote: {{mode: snapshot, interval: 1m, rpo_target: 5m}}}}
"""


@pytest.fixture(scope="module")
def own_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabDescription]:
    """A lab this module may break: production is killed in it."""
    yield from booted(tmp_path_factory.mktemp("failover") / "lab", BLOCK)


@pytest.fixture(scope="module")
def replicated(own_lab: LabDescription, tmp_path_factory: pytest.TempPathFactory
               ) -> dict[str, str]:
    """The images on a, whole on b; their checksums."""
    policy = tmp_path_factory.mktemp("failover-policy") / "water.yaml"
    policy.write_text(POLICY)
    return replicated_images(own_lab, IMAGES, SIZE, policy, SNAPSHOT)


def test_failover_with_production_killed_then_failback_with_the_winner_confirmed(
        own_lab: LabDescription, replicated: dict[str, str]) -> None:
    lab = own_lab
    stop(pids(lab.dir, "a", {DaemonRole.OSD}))
    kill(pids(lab.dir, "a", CEPH_KILLED))  # site a's Ceph is gone; its drd keeps running

    started = drd(lab, "failover", "--tenant", "water", "--from", "a", "--to", "b",
                  "--json", "--no-wait", site="b")
    assert started.returncode == 0, started.stderr + started.stdout
    view = wait_ended(lab, "b", json.loads(started.stdout)["id"], timeout=300)
    assert view["state"] == "succeeded", steps_told(view)
    assert all(is_primary(lab.sites["b"], name) for name in IMAGES)
    assert checksums(lab.sites["b"], IMAGES) == replicated  # nothing was lost here
    report = view["report"]
    print("\n" + steps_told(view), report)  # the figures, shown with -s
    assert report["rto_seconds"] < 60, steps_told(view)
    assert report["loss_window_seconds"] is None or report["loss_window_seconds"] >= 0
    promote = next(s for s in view["steps"] if s["name"] == "force-promote-target")
    assert any("data-loss window" in line for line in promote["output"]), promote
    assert any("cannot be reached" in line for line in promote["output"]), promote
    # With a's cluster dead, b's rbd-mirror kept the journal copies locked for its replay
    # (measured: for good); drd fenced it and restarted it, so b can replicate again.
    if any("(osd blocklist): this site's rbd-mirror" in line for line in promote["output"]):
        assert any("restarted the lab's rbd-mirror of site b" in line
                   for line in promote["output"]), promote
    replayers = pids(lab.dir, "b", {DaemonRole.RBD_MIRROR})
    assert replayers and all(psutil.pid_exists(pid) for pid in replayers)
    # c pulled from a; it now pulls from b, its copies resynced from there.
    follow = next(s for s in view["steps"] if s["name"] == "remote-follows-target")
    assert follow["state"] == "succeeded", steps_told(view)
    for name in IMAGES:
        wait_for_checksum(lab.sites["c"], name, replicated[name], timeout=180,
                          namespace=NAMESPACE)
    # Protected again: within the policy's RPO at c; a, lost, is reported unprotected.
    rpo = next(s for s in view["steps"] if s["name"] == "rpo-back-within-target")
    assert rpo["state"] == "succeeded", steps_told(view)
    told = "\n".join(rpo["output"])
    assert f"{len(IMAGES)} image(s) have no copy that follows them at a" in told, told
    assert all(f"{name} at c: RPO" in told for name in IMAGES), told

    # b serves the tenant now; its writes must survive the way back.
    for number, name in enumerate(IMAGES):
        write(lab.sites["b"], name, 2 * MiB, random_bytes(500 + number, MiB), NAMESPACE)
    take_mirror_snapshots(lab.sites["b"], SNAPSHOT)
    on_b = checksums(lab.sites["b"], IMAGES)

    restart_dead(lab)  # a returns, its copies still claiming to be primary
    wait_answers(lab, "a")
    started = drd(lab, "failback", "--tenant", "water", "--from", "b", "--to", "a",
                  "--json", "--no-wait", site="b")
    assert started.returncode == 0, started.stderr
    paused = wait_ended(lab, "b", json.loads(started.stdout)["id"], timeout=300)
    assert paused["state"] == "paused", steps_told(paused)
    waiting = next(s for s in paused["steps"] if s["name"] == "resync-stale-copies")
    assert "--confirm-winner b" in (waiting["error"] or ""), waiting
    assert all(is_primary(lab.sites["b"], name) for name in IMAGES)  # nothing discarded

    resumed = drd(lab, "runbook", "resume", str(paused["id"]), "--confirm-winner", "b",
                  "--json", "--no-wait", site="b")
    assert resumed.returncode == 0, resumed.stderr
    view = wait_ended(lab, "b", paused["id"], timeout=600)
    assert view["state"] == "succeeded", steps_told(view)
    assert all(is_primary(lab.sites["a"], name) for name in IMAGES)
    assert not any(is_primary(lab.sites["b"], name) for name in IMAGES)
    assert checksums(lab.sites["a"], IMAGES) == on_b  # b's writes intact on a
    back = next(s for s in view["steps"] if s["name"] == "remote-follows-returning")
    assert back["state"] == "succeeded", steps_told(view)
    rpo = next(s for s in view["steps"] if s["name"] == "rpo-back-within-target")
    assert rpo["state"] == "succeeded", steps_told(view)
    for name in IMAGES:  # c follows a again, with b's writes
        wait_for_checksum(lab.sites["c"], name, on_b[name], timeout=180, namespace=NAMESPACE)
    audit = api(lab, "b", "/v1/audit")["entries"]
    assert {"POST /v1/runs/{run}/resume"} <= {e["action"] for e in audit}
