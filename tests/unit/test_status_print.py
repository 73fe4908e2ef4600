"""`drd status` as people read it: a site that took over shows its lease, the takeover
with how long the group stayed unprotected, each group's protection and each service
probe, in words."""

import re
from datetime import UTC, datetime, timedelta

import pytest

from drd.api.schemas import (
    CephView,
    LeaseView,
    PeerView,
    ProtectionView,
    ServiceProbeView,
    SiteStatus,
)
from drd.cli.site_cmds import _print_status
from drd.domain.site import SiteKind


def test_a_site_after_a_takeover_says_what_is_unprotected_and_why(
        capsys: pytest.CaptureFixture[str]) -> None:
    now = datetime.now(UTC)
    status = SiteStatus(
        site="b", kind=SiteKind.SAME_CITY, version="1", started_at=now, uptime_seconds=60,
        config_loaded_at=now, ceph=CephView(reachable=True, health="HEALTH_OK"),
        peers=[PeerView(name="a", kind=SiteKind.PRODUCTION, url="http://127.0.1.1:8470",
                        reachable=False, missed=9, detector="lost",
                        detector_reason="no heartbeat and no Ceph answer")],
        leases=[LeaseView(group="water/db", holder="b", epoch=2, remaining_seconds=5.5,
                          move="renew", reason="this site holds epoch 2",
                          takeover={"from": "a", "epoch": 2, "run": 7,
                                    "run_state": "succeeded", "report": {"rto_seconds": 4.4},
                                    "protection": "degraded",
                                    "protected_again_seconds": 81.0}),
                LeaseView(group="transport/tickets", holder="a", epoch=1,
                          remaining_seconds=0.0, move="stay",
                          reason="a is lost to drd, but the tenant's service still answers")],
        protection=[
            ProtectionView(group="water/db", state="degraded",
                           reason="every image has a copy within target, not at every "
                                  "destination: same_city (a): unknown",
                           protected_again_seconds=81.0),
            ProtectionView(group="water/vol", state="unprotected",
                           reason="1 of 1 image(s) have no copy within target anywhere",
                           unprotected_since=now - timedelta(seconds=30))],
        service_probes=[ServiceProbeView(
            tenant="transport", probe="ticketing", site_kind=SiteKind.PRODUCTION,
            endpoint="tcp://10.20.0.5:443", answering=True, result="connected in 2 ms",
            seconds_since_answer=1.2)])
    _print_status(status)
    said = " ".join(capsys.readouterr().out.split())
    assert "last takeover: from a at epoch 2, run 7 succeeded, rto 4.4 s, protected again " \
           "81.0 s after" in said
    assert "group water/db: degraded; last unprotected for 81.0 s: every image" in said
    assert re.search(r"group water/vol: UNPROTECTED since \d\d:\d\d:\d\d \(3\d\.\d s ago\)",
                     said), said
    assert "service transport/ticketing at production (tcp://10.20.0.5:443): answers: " \
           "connected in 2 ms" in said
    assert "lease transport/tickets: a at epoch 1" in said and "still answers" in said
