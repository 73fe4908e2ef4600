"""Is a peer site's daemon alive? Decided from heartbeats in both directions. Pure.

One lost packet must never make a peer look lost: a peer is lost only after
`lost_after_missed` whole heartbeat intervals without any proof of life.
"""

from dataclasses import dataclass, replace
from datetime import datetime


@dataclass(frozen=True)
class PeerObservation:
    """Everything this site has seen of one peer."""

    last_heartbeat_received: datetime | None = None  # the peer called us
    last_heartbeat_answered: datetime | None = None  # the peer answered our call
    round_trip_ms: float | None = None
    last_error: str = ""
    peer_ceph_health: str = "unknown"
    peer_version: str = ""

    @property
    def last_seen(self) -> datetime | None:
        seen = [t for t in (self.last_heartbeat_received, self.last_heartbeat_answered) if t]
        return max(seen) if seen else None

    def answered(self, at: datetime, round_trip_ms: float, ceph_health: str,
                 version: str) -> "PeerObservation":
        return replace(self, last_heartbeat_answered=at, round_trip_ms=round_trip_ms,
                       last_error="", peer_ceph_health=ceph_health, peer_version=version)

    def received(self, at: datetime, ceph_health: str, version: str) -> "PeerObservation":
        return replace(self, last_heartbeat_received=at, peer_ceph_health=ceph_health,
                       peer_version=version)

    def failed(self, error: str) -> "PeerObservation":
        return replace(self, last_error=error)


@dataclass(frozen=True)
class PeerLiveness:
    reachable: bool
    missed: int
    reason: str


def judge_peer(observation: PeerObservation, now: datetime, interval_seconds: float,
               lost_after_missed: int) -> PeerLiveness:
    """Reachable unless `lost_after_missed` intervals passed without proof of life."""
    seen = observation.last_seen
    if seen is None:
        return PeerLiveness(False, 0, "never heard from")
    silent = max(0.0, (now - seen).total_seconds())
    missed = int(silent // interval_seconds)
    if missed >= lost_after_missed:
        detail = f": {observation.last_error}" if observation.last_error else ""
        return PeerLiveness(False, missed, f"silent for {silent:.1f} s{detail}")
    return PeerLiveness(True, missed, f"seen {silent:.1f} s ago")
