"""Measured RPO: how old the newest data known to be on a peer is. Pure.

Snapshot mode is measured from the snapshots themselves: the newest mirror snapshot
the peer holds complete, dated by the primary's own snapshot. Journal mode is read
from rbd-mirror's replay status: positions behind the primary, and how fresh that
report is. That report can lag by seconds, so a journal reading is an upper bound.
"""

import json
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


def snapshot_rpo(primary: list[MirrorSnapshot], peer: list[MirrorSnapshot],
                 now: datetime) -> RpoReading:
    """From the peer's newest complete copy of a primary snapshot, dated on the primary."""
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


@dataclass(frozen=True)
class JournalReplay:
    entries_behind: int
    entries_per_second: float
    reported_at: datetime


def parse_journal_replay(description: str, reported_at: datetime) -> JournalReplay | None:
    """rbd-mirror's status description: `replaying, {"entries_behind_primary": ...}`."""
    _, _, payload = description.partition(", ")
    try:
        fields = json.loads(payload)
        return JournalReplay(int(fields["entries_behind_primary"]),
                             float(fields.get("entries_per_second", 0.0)), reported_at)
    except (ValueError, KeyError, TypeError):
        return None


def journal_rpo(replay: JournalReplay | None, now: datetime) -> RpoReading:
    """Caught up at the time of the report: data as of then is on the peer."""
    if replay is None:
        return RpoReading(None, None, "no replay status from the peer yet")
    if replay.entries_behind == 0:
        return RpoReading(max(now - replay.reported_at, timedelta(0)), replay.reported_at,
                          "caught up at the last replay report")
    backlog = (timedelta(seconds=replay.entries_behind / replay.entries_per_second)
               if replay.entries_per_second > 0 else None)
    if backlog is None:
        return RpoReading(None, None, f"{replay.entries_behind} entries behind, not replaying")
    as_of = replay.reported_at - backlog
    return RpoReading(max(now - as_of, timedelta(0)), as_of,
                      f"{replay.entries_behind} entries behind")
