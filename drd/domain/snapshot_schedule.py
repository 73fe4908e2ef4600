"""When each snapshot-mode image takes its next mirror snapshot. Pure.

Images get fixed slots, `interval` apart, each image offset by a hash of its id.
That spreads a thousand images with one interval evenly over it instead of in one
burst, keeps each image's rhythm across daemon restarts, and never lets more than
one interval pass between two snapshots of an image.
"""

import hashlib
from datetime import UTC, datetime, timedelta

EPOCH = datetime(2000, 1, 1, tzinfo=UTC)


def slot_offset(key: str, interval: timedelta) -> timedelta:
    """A stable offset in [0, interval) derived from `key` (the image id)."""
    digest = int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big")
    micros = int(interval / timedelta(microseconds=1))
    return timedelta(microseconds=digest % micros)


def next_snapshot_due(key: str, interval: timedelta, last: datetime | None,
                      now: datetime) -> datetime:
    """The first slot of `key` after its last snapshot (or now, when it has none)."""
    if interval <= timedelta(0):
        raise ValueError("a snapshot interval must be positive")
    after = last if last is not None else now - interval
    offset = slot_offset(key, interval)
    slots_passed = (after - EPOCH - offset) // interval
    due = EPOCH + offset + (slots_passed + 1) * interval
    return due


def is_due(key: str, interval: timedelta, last: datetime | None, now: datetime) -> bool:
    return next_snapshot_due(key, interval, last, now) <= now
