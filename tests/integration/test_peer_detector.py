"""The failure detector in the running daemons, on the real lab: every peer alive with
its Ceph probed; site c with only its drd frozen is suspect, never lost (its Ceph still
answers); c frozen whole (drd, monitor and OSD) is lost within the configured probes;
resumed, it is alive again."""

import time
from functools import partial
from typing import Any

import pytest

from drd.lab.description import DaemonRole, LabDescription
from tests.integration.runbook_helpers import api, pids, wait_until
from tests.integration.test_site_probe import frozen

pytestmark = pytest.mark.integration
# 3 failed probes 2 s apart, each given 2 s, and the heartbeat's own 1.5 s timeout.
LOST_WITHIN = 3 * 2.0 + 2.0 + 1.5 + 4.0


def peer_of(lab: LabDescription, site: str, peer: str) -> dict[str, Any]:
    status = api(lab, site, "/v1/status")
    found: dict[str, Any] = next(p for p in status["peers"] if p["name"] == peer)
    return found


def sees(lab: LabDescription, site: str, peer: str, state: str) -> bool:
    return bool(peer_of(lab, site, peer)["detector"] == state)


def test_a_peer_is_lost_only_when_its_daemon_and_its_ceph_both_fail(
        lab: LabDescription) -> None:
    for site, peer in (("a", "b"), ("a", "c"), ("b", "a"), ("c", "a")):
        wait_until(partial(sees, lab, site, peer, "alive"), 30, f"{site} sees {peer} alive")
        assert peer_of(lab, site, peer)["ceph_probe"].startswith(f"quorum 1/1 ({peer})")

    with frozen(pids(lab.dir, "c", {DaemonRole.DRD})):
        wait_until(lambda: peer_of(lab, "a", "c")["detector"] == "suspect", 20,
                 "a suspects c, whose drd is frozen")
        time.sleep(LOST_WITHIN)
        seen = peer_of(lab, "a", "c")
        assert seen["detector"] == "suspect", seen
        assert "api failed" in seen["detector_reason"], seen
        assert seen["ceph_probe"].startswith("quorum 1/1 (c)"), seen

    wait_until(lambda: peer_of(lab, "a", "c")["detector"] == "alive", 20, "c alive again")
    with frozen(pids(lab.dir, "c", {DaemonRole.DRD, DaemonRole.MON, DaemonRole.OSD})):
        took = wait_until(lambda: peer_of(lab, "a", "c")["detector"] == "lost", LOST_WITHIN,
                        "a sees c lost, frozen whole")
        seen = peer_of(lab, "a", "c")
        assert "api failed" in seen["detector_reason"] and "ceph failed" in \
            seen["detector_reason"], seen
        assert seen["lost_since"] is not None
        print(f"\na judged c lost {took:.1f} s after c froze")
        assert peer_of(lab, "a", "b")["detector"] == "alive"
    wait_until(lambda: peer_of(lab, "a", "c")["detector"] == "alive", 30,
             "c alive again once resumed")
