"""Measured RPO: how old the newest data known to be on a peer is. Pure.

Snapshot mode is measured from the snapshots themselves: the newest mirror snapshot
the peer holds complete, dated by the primary's own snapshot. Journal mode is measured
from journal commit positions (drd.domain.journal_position). rbd-mirror's status
reports lag by 5-30 s, so neither trusts them.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum


class RpoState(StrEnum):
    OK = "OK"  # within the target
    WARN = "WARN"  # over the target
    BREACH = "BREACH"  # over twice the target
    UNKNOWN = "UNKNOWN"  # nothing measured yet, or the peer is unreadable


@dataclass(frozen=True)
class MirrorSnapshot:
    snap_id: int
    created: datetime
    primary: bool  # a primary snapshot here, or a non-primary copy of one
    complete: bool
    primary_snap_id: int | None  # for a non-primary copy: the primary's snapshot id
    demoted: bool


@dataclass(frozen=True)
class RpoReading:
    measured: timedelta | None
    data_as_of: datetime | None  # the newest point in time known to be on the peer
    detail: str


def judge_rpo(measured: timedelta | None, target: timedelta) -> RpoState:
    if measured is None:
        return RpoState.UNKNOWN
    if measured > 2 * target:
        return RpoState.BREACH
    if measured > target:
        return RpoState.WARN
    return RpoState.OK


def split_brain_verdict(primary: list[MirrorSnapshot],
                        peer: list[MirrorSnapshot]) -> str | None:
    """When the peer's copy is primary too, which side holds the newer data, by the
    timestamps of each side's newest primary snapshot; None when it is not.

    The peer is primary when its newest mirror snapshot is a primary one, as librbd
    decides: a demoted old primary keeps its older primary snapshots until they are
    pruned, and is not primary for them (seen on the lab after every switchover)."""
    newest_peer = max(peer, key=lambda s: s.snap_id, default=None)
    if newest_peer is None or not newest_peer.primary or newest_peer.demoted:
        return None
    theirs = [s.created for s in peer if s.primary and not s.demoted]
    ours = [s.created for s in primary if s.primary and not s.demoted]
    newest_theirs = max(theirs)
    if not ours:
        return f"split-brain: the peer is primary too (newest snapshot {newest_theirs:%F %T})"
    newest_ours = max(ours)
    newer = "this site" if newest_ours >= newest_theirs else "the peer"
    return (f"split-brain: both sites are primary; newest snapshot here {newest_ours:%F %T}, "
            f"on the peer {newest_theirs:%F %T}: {newer} holds the newer data")


def snapshot_rpo(primary: list[MirrorSnapshot], peer: list[MirrorSnapshot],
                 now: datetime) -> RpoReading:
    """From the peer's newest complete copy of a primary snapshot, dated on the primary."""
    verdict = split_brain_verdict(primary, peer)
    if verdict is not None:
        return RpoReading(None, None, verdict)
    dated = {snap.snap_id: snap.created for snap in primary if snap.primary}
    synced = [snap for snap in peer if not snap.primary and snap.complete
              and snap.primary_snap_id in dated]
    if not synced:
        syncing = any(not snap.primary and not snap.complete for snap in peer)
        return RpoReading(None, None, "first sync in progress" if syncing
                          else "no snapshot fully synced to the peer yet")
    newest = max(synced, key=lambda snap: dated[snap.primary_snap_id or 0])
    as_of = dated[newest.primary_snap_id or 0]
    pending = [s for s in peer if not s.primary and not s.complete]
    detail = "syncing a newer snapshot" if pending else "idle"
    return RpoReading(max(now - as_of, timedelta(0)), as_of, detail)
