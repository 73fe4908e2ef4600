"""Automatic takeover on a lab of its own: production's drd alone killed, nothing moves;
every process of production killed, the same-city site takes over by itself (lease,
quorum and witness), its copies writable with every byte, the remote site following it;
production, returning with its stale epoch, demotes itself and waits for a failback; the
operator's failback hands the lease back to it."""

import json
import os
import time
import uuid
from collections.abc import Iterator
from functools import partial
from typing import Any

import psutil
import pytest

from drd.lab.description import DaemonRole, LabDescription
from tests.integration.own_lab import booted, replicated_images, steps_told, stop
from tests.integration.rbd_images import MiB, wait_for_checksum
from tests.integration.runbook_helpers import (
    NAMESPACE,
    api,
    checksums,
    is_primary,
    kill,
    pids,
    restart_dead,
    wait_answers,
    wait_ended,
    wait_until,
)
from tests.integration.test_replication import drd

pytestmark = pytest.mark.integration
BLOCK = os.environ.get("DRD_TEST_TAKEOVER_BLOCK", "79")
RUN = uuid.uuid4().hex[:6]
IMAGES = [f"to-{RUN}-j{n}" for n in range(2)] + [f"to-{RUN}-s{n}" for n in range(2)]
SNAPSHOT = [name for name in IMAGES if "-s" in name]
GROUPS = ["water/takeover-journal", "water/takeover-snapshot"]
POLICY = f"""\
tenant: water
protection:
  block:
    - {{name: takeover-journal, pool: rbd, namespace: water, images: ["to-{RUN}-j*"],
       same_city: {{mode: journal, rpo_target: 10s}},
       remote: {{mode: snapshot, interval: 1m, rpo_target: 5m}}, takeover: automatic}}
    - {{name: takeover-snapshot, pool: rbd, namespace: water, images: ["to-{RUN}-s*"],
       same_city: {{mode: snapshot, interval: 1m, rpo_target: 2m}},
       remote: {{mode: snapshot, interval: 1m, rpo_target: 5m}}, takeover: automatic}}
"""
CEPH = {DaemonRole.MON, DaemonRole.MGR, DaemonRole.RBD_MIRROR, DaemonRole.RGW}


@pytest.fixture(scope="module")
def own_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabDescription]:
    """A lab this module may break: production is killed in it."""
    yield from booted(tmp_path_factory.mktemp("takeover") / "lab", BLOCK)


@pytest.fixture(scope="module")
def replicated(own_lab: LabDescription, tmp_path_factory: pytest.TempPathFactory
               ) -> dict[str, str]:
    """The images on a, whole on b; their checksums."""
    policy = tmp_path_factory.mktemp("takeover-policy") / "water.yaml"
    policy.write_text(POLICY)
    return replicated_images(own_lab, IMAGES, 16 * MiB, policy, SNAPSHOT)


def leases(lab: LabDescription, site: str) -> dict[str, dict[str, Any]]:
    return {lease["group"]: lease for lease in api(lab, site, "/v1/status")["leases"]}


def held_by(lab: LabDescription, site: str, holder: str, epoch: int) -> bool:
    seen = leases(lab, site)
    return all(seen.get(group, {}).get("holder") == holder
               and seen[group].get("epoch") == epoch for group in GROUPS)


def detector(lab: LabDescription, site: str, peer: str) -> str:
    peers = api(lab, site, "/v1/status")["peers"]
    return str(next(p for p in peers if p["name"] == peer)["detector"])


def primaries(lab: LabDescription, site: str) -> list[str]:
    return [name for name in IMAGES if is_primary(lab.sites[site], name)]


def test_production_lost_is_taken_over_by_the_same_city_site_and_fenced_on_return(
        own_lab: LabDescription, replicated: dict[str, str]) -> None:
    lab = own_lab
    for site in "abc":
        wait_until(partial(held_by, lab, site, "a", 1), 60, f"{site} promised a epoch 1")
    assert leases(lab, "a")[GROUPS[0]]["move"] == "renew"

    # Only a's drd dies: its Ceph serves on, so b suspects a but never takes over.
    kill(pids(lab.dir, "a", {DaemonRole.DRD}))
    wait_until(lambda: detector(lab, "b", "a") == "suspect", 30, "b suspects a")
    time.sleep(15)  # well past the lease (6 s) and the detector (about 6 s)
    assert primaries(lab, "a") == IMAGES and primaries(lab, "b") == []
    assert all(lease["move"] == "stay" for lease in leases(lab, "b").values())
    restart_dead(lab)
    wait_answers(lab, "a")
    wait_until(lambda: leases(lab, "a").get(GROUPS[0], {}).get("move") == "renew", 60,
         "a renews again")

    # Every process of a dies.
    killed_at = time.monotonic()  # from the OSD's stop: an upper bound
    stop(pids(lab.dir, "a", {DaemonRole.OSD}))  # SIGTERM: memstore keeps a's data
    kill(pids(lab.dir, "a", CEPH | {DaemonRole.DRD}))
    wait_until(lambda: primaries(lab, "b") == IMAGES, 90, "b took over")
    promoted = time.monotonic() - killed_at
    wait_until(lambda: all(lease["takeover"].get("running") is False
                     for lease in leases(lab, "b").values()), 300, "the takeover run ended")
    taken = leases(lab, "b")[GROUPS[0]]["takeover"]
    print(f"\nb primary {promoted:.1f} s after a was killed; takeover: "
          f"{json.dumps(taken, default=str)}")
    assert taken["run_state"] == "succeeded", taken
    assert taken["from"] == "a" and taken["epoch"] == 2 and set(taken["groups"]) == set(GROUPS)
    assert checksums(lab.sites["b"], IMAGES) == replicated  # nothing acknowledged was lost
    assert held_by(lab, "b", "b", 2) and held_by(lab, "c", "b", 2)
    for name in IMAGES:  # the remote site follows the new primary
        wait_for_checksum(lab.sites["c"], name, replicated[name], timeout=180,
                          namespace=NAMESPACE)

    # a returns with epoch 1: told of epoch 2, it demotes its copies and stays fenced.
    restart_dead(lab)
    wait_answers(lab, "a")
    try:
        wait_until(lambda: all("demoted" in lease["fenced"] for lease in leases(lab, "a").values()),
             60, "a fenced itself")
    except AssertionError as error:
        raise AssertionError(f"{error}; a's log:\n" + "\n".join(log_of(lab, "a"))) from None
    seen = leases(lab, "a")
    assert all("newer than this site's 1" in lease["fenced"] for lease in seen.values()), seen
    assert primaries(lab, "a") == []
    assert held_by(lab, "a", "b", 2)
    assert primaries(lab, "b") == IMAGES  # never two primaries
    assert all(psutil.pid_exists(pid) for pid in pids(lab.dir, "b", {DaemonRole.DRD}))

    # The operator fails back; b, its images demoted, hands the lease over and a claims
    # it at epoch 3, no longer fenced.
    started = drd(lab, "failback", "--tenant", "water", "--from", "b", "--to", "a",
                  "--json", "--no-wait", site="b")
    assert started.returncode == 0, started.stderr
    paused = wait_ended(lab, "b", json.loads(started.stdout)["id"], timeout=300)
    assert paused["state"] == "paused", steps_told(paused)
    resumed = drd(lab, "runbook", "resume", str(paused["id"]), "--confirm-winner", "b",
                  "--json", "--no-wait", site="b")
    assert resumed.returncode == 0, resumed.stderr
    view = wait_ended(lab, "b", paused["id"], timeout=600)
    assert view["state"] == "succeeded", steps_told(view)
    assert primaries(lab, "a") == IMAGES and primaries(lab, "b") == []
    for site in "abc":
        wait_until(partial(held_by, lab, site, "a", 3), 30, f"{site} promised a epoch 3")
    assert all(lease["fenced"] == "" for lease in leases(lab, "a").values())


def log_of(lab: LabDescription, site: str) -> list[str]:
    """The site drd's log lines about leases, fencing and takeovers."""
    lines = []
    for path in (lab.dir / site / "log").glob("drd*"):
        lines += [line[:400] for line in path.read_text(errors="replace").splitlines()
                  if any(word in line for word in ("lease", "fenc", "taking over"))]
    return lines[-40:]
