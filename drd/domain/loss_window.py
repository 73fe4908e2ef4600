"""What an unplanned failover may have lost: how far each copy had replayed the lost
primary when it was force-promoted. Pure.

A copy is known to hold the primary's writes up to some instant: in snapshot mode the
newest mirror snapshot it holds complete (rbd-mirror creates the copy's snapshot a few
seconds after the primary's, so the bound is that much generous), in journal mode the
moment rbd-mirror last reported it caught up with the primary's journal. Writes the lost
site acknowledged after that instant may be lost, so the window is at most the time from
the oldest such instant to the promotion; the lost site may have died sooner, which
only makes the real loss smaller.
"""

import json
from dataclasses import dataclass
from datetime import datetime

from drd.domain.rbd_step_decisions import MirrorStatus
from drd.domain.rpo import MirrorSnapshot


@dataclass(frozen=True)
class HeldUpTo:
    as_of: datetime | None  # None: not known
    detail: str


def snapshot_copy_held(snapshots: list[MirrorSnapshot]) -> HeldUpTo:
    complete = [s for s in snapshots if not s.primary and s.complete]
    if not complete:
        return HeldUpTo(None, "holds no complete mirror snapshot of the primary")
    newest = max(complete, key=lambda s: s.created)
    return HeldUpTo(newest.created, f"holds the primary's mirror snapshot "
                                    f"{newest.primary_snap_id}, copied at "
                                    f"{newest.created:%H:%M:%S}")


def journal_copy_held(status: MirrorStatus | None) -> HeldUpTo:
    if status is None or status.reported_at is None:
        return HeldUpTo(None, "rbd-mirror never reported on this copy")
    behind = entries_behind(status.description)
    at = f"{status.reported_at:%H:%M:%S}"
    if behind == 0:
        return HeldUpTo(status.reported_at, f"had replayed the whole journal when rbd-mirror "
                                            f"last reported, at {at}")
    if behind is None:
        return HeldUpTo(None, f"rbd-mirror's last report ({status.state}, at {at}) does not "
                              f"say how far behind the copy was")
    return HeldUpTo(None, f"{behind} journal entries behind the primary at {at}")


def entries_behind(description: str) -> int | None:
    """`entries_behind_primary` from a journal copy's status: `replaying, {json}`."""
    _, _, detail = description.partition(", ")
    try:
        value = json.loads(detail).get("entries_behind_primary")
    except (ValueError, AttributeError):
        return None
    return value if isinstance(value, int) else None


def loss_window(held: list[HeldUpTo], writable_at: datetime) -> tuple[float | None, str]:
    """At most how many seconds of the lost primary's writes may be lost, and why."""
    if not held:
        return 0.0, "nothing was promoted, so nothing was lost"
    unknown = [h for h in held if h.as_of is None]
    if unknown:
        return None, (f"data-loss window unknown for {len(unknown)} image(s): "
                      f"{unknown[0].detail}")
    oldest = min(h.as_of for h in held if h.as_of is not None)
    seconds = round((writable_at - oldest).total_seconds(), 3)
    return seconds, (f"data-loss window: at most {seconds:.1f} s of writes acknowledged on "
                     f"the lost site (the oldest copy held its data as of {oldest:%H:%M:%S})")
