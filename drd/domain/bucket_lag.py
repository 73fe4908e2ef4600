"""A bucket's sync lag at a destination zone, and which of its shards are stuck. Pure.

The source zone logs every change of a bucket in its index log, one log per shard; a
destination applies each shard's log in order and records how far it got. So a
destination holds every change made before the oldest entry it has not applied, and the
bucket's lag is the age of that entry. When every shard has applied the source's newest
entry, the destination held everything the source had when drd read the source's
markers, which drd reads first for that reason: the reading is an upper bound.
"""

from dataclasses import dataclass, field
from datetime import datetime, timedelta

INCREMENTAL = "incremental-sync"


@dataclass(frozen=True)
class ShardPosition:
    """How far a destination has applied one shard of the source's index log."""

    state: str  # init, full-sync or incremental-sync
    marker: str  # the last entry applied; "" before the first
    applied_at: datetime | None  # when that entry was made on the source


@dataclass(frozen=True)
class BucketLag:
    measured: timedelta | None
    data_as_of: datetime | None  # the destination holds every change made before this
    behind: tuple[int, ...]  # shards with changes not applied yet
    detail: str


def unapplied_shards(newest: dict[int, str],
                     positions: dict[int, ShardPosition]) -> dict[int, str]:
    """Shards whose newest source entry the destination has not applied, each with the
    marker to read the source's log after. A shard with nothing logged is never behind."""
    behind = {}
    for shard, marker in sorted(newest.items()):
        position = positions.get(shard)
        if marker and (position is None or position.marker != marker):
            behind[shard] = position.marker if position is not None else ""
    return behind


def in_full_sync(positions: dict[int, ShardPosition], behind: dict[int, str]) -> list[int]:
    """Behind shards still being copied whole: their log position says nothing yet."""
    return [shard for shard in behind
            if shard in positions and positions[shard].state != INCREMENTAL]


def bucket_lag(sources_read_at: datetime, oldest_unapplied: dict[int, datetime | None],
               full_sync: list[int], now: datetime) -> BucketLag:
    """The lag from the oldest unapplied entry of each behind shard.

    A behind shard whose log shows nothing after the destination's position caught up
    between the two reads; it counts as applied at `sources_read_at`.
    """
    behind = tuple(sorted(oldest_unapplied))
    if full_sync:
        return BucketLag(None, None, behind,
                         f"full sync of shard(s) {_shards(full_sync)} in progress")
    pending = [at for at in oldest_unapplied.values() if at is not None]
    if not pending:
        return BucketLag(max(now - sources_read_at, timedelta(0)), sources_read_at, (),
                         "caught up")
    oldest = min(pending)
    waiting = tuple(shard for shard, at in sorted(oldest_unapplied.items()) if at is not None)
    return BucketLag(max(now - oldest, timedelta(0)), oldest, waiting,
                     f"behind on shard(s) {_shards(list(waiting))}; oldest change not "
                     f"applied from {oldest:%Y-%m-%d %H:%M:%S} UTC")


def _shards(shards: list[int]) -> str:
    return ",".join(str(shard) for shard in sorted(shards))


@dataclass
class _Waiting:
    marker: str
    since: datetime


@dataclass
class StuckShards:
    """Shards that stay behind at the same position for `after`: sync is not moving them,
    as when the destination's sync stopped or an entry keeps failing."""

    after: timedelta
    _waiting: dict[tuple[str, str, int], _Waiting] = field(default_factory=dict)

    def observe(self, bucket: str, destination: str, behind: dict[int, str],
                now: datetime) -> tuple[int, ...]:
        """Record one reading of a bucket at a destination; the shards stuck now."""
        stuck = []
        for shard, marker in behind.items():
            key = (bucket, destination, shard)
            waiting = self._waiting.get(key)
            if waiting is None or waiting.marker != marker:
                self._waiting[key] = _Waiting(marker, now)
            elif now - waiting.since >= self.after:
                stuck.append(shard)
        for key in [k for k in self._waiting
                    if k[:2] == (bucket, destination) and k[2] not in behind]:
            del self._waiting[key]
        return tuple(sorted(stuck))

    def forget_except(self, live: set[tuple[str, str]]) -> None:
        """Drop buckets and destinations no longer watched."""
        for key in [k for k in self._waiting if k[:2] not in live]:
            del self._waiting[key]
