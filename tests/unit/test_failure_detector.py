"""A peer is lost only when its daemon and its Ceph both fail, several times in a row."""

from datetime import UTC, datetime, timedelta

import pytest

from drd.domain.failure_detector import (
    DetectorSettings,
    PeerState,
    Signal,
    SignalTrack,
    judge,
)

T0 = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
SETTINGS = DetectorSettings(suspect_after=2, lost_after=3)


def failed(times: int, start: datetime = T0, detail: str = "timed out") -> SignalTrack:
    track = SignalTrack().ok(start - timedelta(seconds=1))
    for n in range(times):
        track = track.failed(start + timedelta(seconds=n), detail)
    return track


def test_one_lost_heartbeat_leaves_the_peer_alive() -> None:
    verdict = judge({Signal.API: failed(1), Signal.CEPH: failed(0)}, SETTINGS)
    assert verdict.state is PeerState.ALIVE


def test_a_silent_daemon_with_its_ceph_answering_is_only_suspect() -> None:
    verdict = judge({Signal.API: failed(10), Signal.CEPH: failed(0)}, SETTINGS)
    assert verdict.state is PeerState.SUSPECT
    assert "api failed 10 times" in verdict.reason


def test_unreachable_ceph_with_the_daemon_answering_is_only_suspect() -> None:
    verdict = judge({Signal.API: failed(0), Signal.CEPH: failed(10)}, SETTINGS)
    assert verdict.state is PeerState.SUSPECT


def test_daemon_and_ceph_both_failing_long_enough_is_lost_since_the_later_began() -> None:
    later = T0 + timedelta(seconds=4)
    verdict = judge({Signal.API: failed(3), Signal.CEPH: failed(3, start=later)}, SETTINGS)
    assert verdict.state is PeerState.LOST
    assert verdict.since == later
    assert "api failed 3 times" in verdict.reason and "ceph failed 3 times" in verdict.reason


def test_one_success_resets_a_signal() -> None:
    track = failed(5).ok(T0 + timedelta(seconds=6))
    assert judge({Signal.API: track, Signal.CEPH: failed(5)}, SETTINGS).state \
        is PeerState.SUSPECT
    assert track.failures == 0 and track.failing_since is None


def test_a_peer_never_probed_is_not_lost() -> None:
    assert judge({Signal.API: failed(9)}, SETTINGS).state is PeerState.SUSPECT
    assert judge({}, SETTINGS).state is PeerState.ALIVE


@pytest.mark.parametrize(("suspect", "lost"), [(0, 3), (4, 3)])
def test_settings_must_order_suspect_before_lost(suspect: int, lost: int) -> None:
    with pytest.raises(ValueError, match="suspect_after"):
        DetectorSettings(suspect_after=suspect, lost_after=lost)
