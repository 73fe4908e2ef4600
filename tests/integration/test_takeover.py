"""Automatic takeover on a lab of its own: production's drd alone killed, nothing moves;
every process of production killed, the same-city site takes over by itself (lease,
quorum and witness), its copies writable with every byte, the remote site following it;
production, returning with its stale epoch, demotes itself and waits for a failback; the
operator's failback hands the lease back to it."""

import json
import os
import time
import uuid
from collections.abc import Callable, Iterator
from functools import partial
from typing import Any

import psutil
import pytest
import rbd

from drd.lab.description import DaemonRole, LabDescription
from drd.lab.lab_store import load_description
from tests.integration.conftest import run_drd
from tests.integration.rbd_images import MiB, pool, random_bytes, wait_for_checksum
from tests.integration.runbook_helpers import (
    NAMESPACE,
    api,
    checksums,
    is_primary,
    kill,
    mirroring_enabled,
    pids,
    restart_dead,
    take_mirror_snapshots,
    wait_answers,
    wait_ended,
)
from tests.integration.test_replication import drd, eventually
from tests.integration.test_runbook_failover import steps_told, stop

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
    lab_dir = tmp_path_factory.mktemp("takeover") / "lab"
    up = run_drd("lab", "up", "--dir", str(lab_dir), "--block", BLOCK, timeout=600)
    assert up.returncode == 0, up.stderr
    description = load_description(lab_dir)
    assert description is not None
    try:
        yield description
    finally:
        down = run_drd("lab", "down", "--dir", str(lab_dir))
        assert down.returncode == 0, down.stderr


@pytest.fixture(scope="module")
def replicated(own_lab: LabDescription, tmp_path_factory: pytest.TempPathFactory
               ) -> dict[str, str]:
    lab = own_lab
    with pool(lab.sites["a"], NAMESPACE) as ioctx:
        for number, name in enumerate(IMAGES):
            rbd.RBD().create(ioctx, name, 16 * MiB, old_format=False)
            with rbd.Image(ioctx, name) as image:
                image.write(random_bytes(number, 16 * MiB), 0)
    policy = tmp_path_factory.mktemp("takeover-policy") / "water.yaml"
    policy.write_text(POLICY)
    for site in ("a", "b", "c"):
        applied = drd(lab, "policy", "apply", str(policy), site=site)
        assert applied.returncode == 0, applied.stderr
    eventually(lambda: all(mirroring_enabled(lab.sites["a"], n) for n in IMAGES), 120,
               "drd enabled mirroring of every image")
    take_mirror_snapshots(lab.sites["a"], SNAPSHOT)
    expected = checksums(lab.sites["a"], IMAGES)
    for name in IMAGES:
        wait_for_checksum(lab.sites["b"], name, expected[name], timeout=180,
                          namespace=NAMESPACE)
    return expected


def leases(lab: LabDescription, site: str) -> dict[str, dict[str, Any]]:
    return {lease["group"]: lease for lease in api(lab, site, "/v1/status")["leases"]}


def held_by(lab: LabDescription, site: str, holder: str, epoch: int) -> bool:
    seen = leases(lab, site)
    return all(seen.get(group, {}).get("holder") == holder
               and seen[group].get("epoch") == epoch for group in GROUPS)


def wait(check: Callable[[], bool], timeout: float, what: str) -> float:
    started = time.monotonic()
    while not check():
        assert time.monotonic() - started < timeout, f"not within {timeout} s: {what}"
        time.sleep(0.2)
    return time.monotonic() - started


def detector(lab: LabDescription, site: str, peer: str) -> str:
    peers = api(lab, site, "/v1/status")["peers"]
    return str(next(p for p in peers if p["name"] == peer)["detector"])


def primaries(lab: LabDescription, site: str) -> list[str]:
    return [name for name in IMAGES if is_primary(lab.sites[site], name)]


def test_production_lost_is_taken_over_by_the_same_city_site_and_fenced_on_return(
        own_lab: LabDescription, replicated: dict[str, str]) -> None:
    lab = own_lab
    for site in "abc":
        wait(partial(held_by, lab, site, "a", 1), 60, f"{site} promised a epoch 1")
    assert leases(lab, "a")[GROUPS[0]]["move"] == "renew"

    # Only a's drd dies: its Ceph serves on, so b suspects a but never takes over.
    kill(pids(lab.dir, "a", {DaemonRole.DRD}))
    wait(lambda: detector(lab, "b", "a") == "suspect", 30, "b suspects a")
    time.sleep(15)  # well past the lease (6 s) and the detector (about 6 s)
    assert primaries(lab, "a") == IMAGES and primaries(lab, "b") == []
    assert all(lease["move"] == "stay" for lease in leases(lab, "b").values())
    restart_dead(lab)
    wait_answers(lab, "a")
    wait(lambda: leases(lab, "a").get(GROUPS[0], {}).get("move") == "renew", 60,
         "a renews again")

    # Every process of a dies.
    killed_at = time.monotonic()  # from the OSD's stop: an upper bound
    stop(pids(lab.dir, "a", {DaemonRole.OSD}))  # SIGTERM: memstore keeps a's data
    kill(pids(lab.dir, "a", CEPH | {DaemonRole.DRD}))
    wait(lambda: primaries(lab, "b") == IMAGES, 90, "b took over")
    promoted = time.monotonic() - killed_at
    wait(lambda: all(lease["takeover"].get("running") is False
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
        wait(lambda: all("demoted" in lease["fenced"] for lease in leases(lab, "a").values()),
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
        wait(partial(held_by, lab, site, "a", 3), 30, f"{site} promised a epoch 3")
    assert all(lease["fenced"] == "" for lease in leases(lab, "a").values())


def log_of(lab: LabDescription, site: str) -> list[str]:
    """The site drd's log lines about leases, fencing and takeovers."""
    lines = []
    for path in (lab.dir / site / "log").glob("drd*"):
        lines += [line[:400] for line in path.read_text(errors="replace").splitlines()
                  if any(word in line for word in ("lease", "fenc", "taking over"))]
    return lines[-40:]
