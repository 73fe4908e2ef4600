"""Bucket sync lag from index-log markers, and stuck shards: the pure rules."""

from datetime import UTC, datetime, timedelta

from drd.ceph.rgw_bucket_sync import parse_rgw_time
from drd.domain.bucket_lag import (
    ShardPosition,
    StuckShards,
    bucket_lag,
    in_full_sync,
    unapplied_shards,
)

T0 = datetime(2026, 11, 22, 4, 0, 0, tzinfo=UTC)


def at(marker: str, state: str = "incremental-sync") -> ShardPosition:
    return ShardPosition(state=state, marker=marker, applied_at=T0)


def test_a_shard_is_behind_until_it_has_applied_the_sources_newest_entry() -> None:
    newest = {0: "00000000001.6.6", 1: "00000000001.5.6", 2: "", 3: "00000000002.9.6"}
    positions = {0: at("00000000001.6.6"), 1: at("00000000001.4.6"), 2: at("")}
    # Shard 2 has logged nothing; shard 3 has no position at the destination yet.
    assert unapplied_shards(newest, positions) == {1: "00000000001.4.6", 3: ""}


def test_caught_up_means_as_fresh_as_the_moment_the_source_was_read() -> None:
    lag = bucket_lag(T0, {}, [], T0 + timedelta(seconds=3))
    assert lag.measured == timedelta(seconds=3)
    assert lag.data_as_of == T0
    assert lag.detail == "caught up"


def test_the_oldest_unapplied_change_of_any_shard_sets_the_lag() -> None:
    oldest = {1: T0 - timedelta(seconds=40), 4: T0 - timedelta(seconds=5), 7: None}
    lag = bucket_lag(T0, oldest, [], T0 + timedelta(seconds=2))
    assert lag.measured == timedelta(seconds=42)
    assert lag.data_as_of == T0 - timedelta(seconds=40)
    # Shard 7 caught up between the reads: it is not reported behind.
    assert lag.behind == (1, 4)
    assert "shard(s) 1,4" in lag.detail


def test_a_shard_in_full_sync_leaves_the_lag_unknown() -> None:
    positions = {0: at("", state="full-sync")}
    behind = unapplied_shards({0: "00000000001.1.6"}, positions)
    full = in_full_sync(positions, behind)
    assert full == [0]
    lag = bucket_lag(T0, {}, full, T0)
    assert lag.measured is None
    assert "full sync" in lag.detail


def test_a_shard_is_stuck_only_after_staying_at_one_position_for_the_whole_period() -> None:
    stuck = StuckShards(after=timedelta(minutes=5))
    assert stuck.observe("docs", "b", {3: "m1"}, T0) == ()
    assert stuck.observe("docs", "b", {3: "m1"}, T0 + timedelta(minutes=4)) == ()
    assert stuck.observe("docs", "b", {3: "m1"}, T0 + timedelta(minutes=5)) == (3,)
    # It moves: the clock starts again.
    assert stuck.observe("docs", "b", {3: "m2"}, T0 + timedelta(minutes=6)) == ()
    assert stuck.observe("docs", "b", {3: "m2"}, T0 + timedelta(minutes=10)) == ()
    assert stuck.observe("docs", "b", {3: "m2"}, T0 + timedelta(minutes=11)) == (3,)


def test_a_shard_that_caught_up_in_between_starts_afresh() -> None:
    stuck = StuckShards(after=timedelta(minutes=5))
    stuck.observe("docs", "b", {3: "m1"}, T0)
    stuck.observe("docs", "b", {}, T0 + timedelta(minutes=1))
    assert stuck.observe("docs", "b", {3: "m1"}, T0 + timedelta(minutes=5)) == ()


def test_buckets_and_destinations_are_tracked_apart() -> None:
    stuck = StuckShards(after=timedelta(minutes=1))
    stuck.observe("docs", "b", {0: "m"}, T0)
    stuck.observe("docs", "c", {0: "m"}, T0 + timedelta(minutes=1))
    assert stuck.observe("docs", "b", {0: "m"}, T0 + timedelta(minutes=1)) == (0,)
    assert stuck.observe("docs", "c", {0: "m"}, T0 + timedelta(minutes=1)) == ()
    stuck.forget_except({("docs", "c")})
    assert stuck.observe("docs", "b", {0: "m"}, T0 + timedelta(minutes=2)) == ()


def test_rgw_times_are_read_to_the_microsecond_in_utc() -> None:
    assert parse_rgw_time("2026-11-22T03:55:10.399423051Z") == datetime(
        2026, 11, 22, 3, 55, 10, 399423, tzinfo=UTC)
    assert parse_rgw_time("2026-11-22T03:55:20.570402+0000") == datetime(
        2026, 11, 22, 3, 55, 20, 570402, tzinfo=UTC)
    assert parse_rgw_time("0.000000") is None
    assert parse_rgw_time("") is None
