"""Is a peer site lost? Decided from independent probes, with hysteresis. Pure.

Each probe of a peer is one signal: its daemon's API heartbeat, and its Ceph cluster
(mon quorum and a small RADOS write and read, with a deadline). A signal counts
consecutive failures; one success resets it, so one lost packet only ever makes a
peer *suspect*. A peer is *lost* only when every confirming signal has failed
`lost_after` times in a row: its daemon silent *and* its Ceph unreachable. The daemon
alone silent (drd killed, Ceph serving) or the Ceph alone unreachable (a path to its
monitors cut, the daemon answering) is not a lost site, and nothing takes over.

Whether a takeover may happen is the lease's business (drd.domain.lease): it also asks
the witness site, whose own detector must agree.
"""

from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum


class Signal(StrEnum):
    API = "api"  # the peer's drd answers, or calls us
    CEPH = "ceph"  # the peer's Ceph answers: mon quorum, a RADOS write and read


CONFIRMING = (Signal.API, Signal.CEPH)


class PeerState(StrEnum):
    ALIVE = "alive"
    SUSPECT = "suspect"  # some probe failing: watched, never acted on
    LOST = "lost"  # every confirming probe failing for long enough


@dataclass(frozen=True)
class SignalTrack:
    """The run of outcomes of one signal of one peer."""

    failures: int = 0  # consecutive
    failing_since: datetime | None = None
    last_ok: datetime | None = None
    detail: str = "not probed yet"

    def ok(self, at: datetime, detail: str = "answers") -> "SignalTrack":
        return SignalTrack(0, None, at, detail)

    def failed(self, at: datetime, detail: str) -> "SignalTrack":
        return replace(self, failures=self.failures + 1,
                       failing_since=self.failing_since or at, detail=detail)


@dataclass(frozen=True)
class DetectorSettings:
    suspect_after: int = 2  # consecutive failures of any signal
    lost_after: int = 3  # consecutive failures of every confirming signal

    def __post_init__(self) -> None:
        if not 1 <= self.suspect_after <= self.lost_after:
            raise ValueError("need 1 <= suspect_after <= lost_after")


@dataclass(frozen=True)
class PeerVerdict:
    state: PeerState
    reason: str
    since: datetime | None = None  # lost: when the last confirming signal began failing


def judge(tracks: dict[Signal, SignalTrack], settings: DetectorSettings) -> PeerVerdict:
    """The peer's state from its signals' runs. A signal never probed counts as failing
    nothing: a peer is not lost for want of looking."""
    failing = {signal: track for signal, track in tracks.items()
               if track.failures >= settings.suspect_after}
    confirmed = [tracks.get(signal, SignalTrack()) for signal in CONFIRMING]
    if all(track.failures >= settings.lost_after for track in confirmed):
        since = max(track.failing_since for track in confirmed
                    if track.failing_since is not None)
        return PeerVerdict(PeerState.LOST, "; ".join(
            f"{signal} failed {tracks[signal].failures} times: {tracks[signal].detail}"
            for signal in CONFIRMING), since)
    if failing:
        return PeerVerdict(PeerState.SUSPECT, "; ".join(
            f"{signal} failed {track.failures} times: {track.detail}"
            for signal, track in sorted(failing.items()))
            + f" (lost once {' and '.join(CONFIRMING)} have each failed "
              f"{settings.lost_after} times in a row)")
    return PeerVerdict(PeerState.ALIVE, "every probe answers")
