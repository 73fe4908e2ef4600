"""Measured RPO from snapshots and from journal commit positions."""

import struct
from datetime import UTC, datetime, timedelta

import pytest

from drd.domain.journal_position import (
    JournalClient,
    JournalRpoTracker,
    Position,
    decode_client_list,
    encode_client_list_request,
)
from drd.domain.rpo import MirrorSnapshot, RpoState, judge_rpo, snapshot_rpo

NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
PEER = "4b79dd5d-peer"


def primary_snap(snap_id: int, seconds_ago: float) -> MirrorSnapshot:
    return MirrorSnapshot(snap_id, NOW - timedelta(seconds=seconds_ago), primary=True,
                          complete=True, primary_snap_id=None, demoted=False)


def copy_of(snap_id: int, primary_id: int, complete: bool = True) -> MirrorSnapshot:
    return MirrorSnapshot(snap_id, NOW, primary=False, complete=complete,
                          primary_snap_id=primary_id, demoted=False)


@pytest.mark.parametrize(("measured", "state"), [
    (None, RpoState.UNKNOWN), (4, RpoState.OK), (5, RpoState.OK), (6, RpoState.WARN),
    (10, RpoState.WARN), (11, RpoState.BREACH)])
def test_states_follow_the_target_and_twice_the_target(measured: int | None,
                                                       state: RpoState) -> None:
    reading = None if measured is None else timedelta(seconds=measured)
    assert judge_rpo(reading, timedelta(seconds=5)) is state


def test_snapshot_rpo_is_dated_by_the_primary_snapshot_the_peer_holds_complete() -> None:
    primary = [primary_snap(10, 90), primary_snap(12, 30)]
    peer = [copy_of(3, 10), copy_of(4, 12, complete=False)]
    reading = snapshot_rpo(primary, peer, NOW)
    assert reading.measured == timedelta(seconds=90), "the copy of 12 is still syncing"
    assert reading.detail == "syncing a newer snapshot"
    done = snapshot_rpo(primary, [copy_of(3, 10), copy_of(4, 12)], NOW)
    assert done.measured == timedelta(seconds=30) and done.detail == "idle"


def test_snapshot_rpo_is_unknown_until_a_first_sync_completes() -> None:
    reading = snapshot_rpo([primary_snap(10, 5)], [copy_of(3, 10, complete=False)], NOW)
    assert reading.measured is None and reading.detail == "first sync in progress"


def _encode_client(client_id: str, positions: list[tuple[int, int, int]]) -> bytes:
    def struct_(payload: bytes) -> bytes:
        return struct.pack("<BBI", 1, 1, len(payload)) + payload

    encoded_positions = b"".join(struct_(struct.pack("<QQQ", *p)) for p in positions)
    position_set = struct_(struct.pack("<I", len(positions)) + encoded_positions)
    raw_id = client_id.encode()
    body = (struct.pack("<I", len(raw_id)) + raw_id + struct.pack("<I", 3) + b"xyz"
            + position_set + b"\x00")
    return struct_(body)


def test_client_list_bytes_decode_to_each_clients_newest_position() -> None:
    data = struct.pack("<I", 2) + _encode_client("", [(1, 3, 1), (0, 3, 0), (3, 2, 3)]) \
        + _encode_client(PEER, [])
    assert decode_client_list(data) == [JournalClient("", Position(3, 1)),
                                        JournalClient(PEER, None)]
    assert encode_client_list_request() == struct.pack("<I", 0) + struct.pack("<Q", 1024)


def test_a_caught_up_peer_has_zero_rpo_and_a_lagging_one_is_dated_by_samples() -> None:
    tracker = JournalRpoTracker()
    at = [NOW + timedelta(seconds=s) for s in range(4)]
    master = [Position(1, 10), Position(1, 20), Position(1, 30), Position(1, 40)]
    caught_up = tracker.observe(at[0], [JournalClient("", master[0]),
                                        JournalClient(PEER, master[0])], PEER)
    assert caught_up.measured == timedelta(0) and caught_up.detail == "caught up"
    tracker.observe(at[1], [JournalClient("", master[1]), JournalClient(PEER, master[1])],
                    PEER)
    tracker.observe(at[2], [JournalClient("", master[2]), JournalClient(PEER, master[1])],
                    PEER)
    behind = tracker.observe(at[3], [JournalClient("", master[3]),
                                     JournalClient(PEER, Position(1, 25))], PEER)
    assert behind.measured == timedelta(seconds=2), "the peer holds what the primary had at 1 s"
    assert behind.data_as_of == at[1]


def test_an_unchanged_primary_position_stays_fresh_until_it_moves() -> None:
    tracker = JournalRpoTracker()
    idle = Position(1, 10)
    for second in range(10):
        tracker.observe(NOW + timedelta(seconds=second),
                        [JournalClient("", idle), JournalClient(PEER, idle)], PEER)
    written = tracker.observe(NOW + timedelta(seconds=10),
                              [JournalClient("", Position(1, 11)), JournalClient(PEER, idle)],
                              PEER)
    assert written.measured == timedelta(seconds=1), \
        "the peer lacks only what was written since the last idle sample"


def test_the_writers_commit_interval_bounds_every_reading_from_above() -> None:
    # The primary's header trails its appends by up to the writer's commit interval,
    # so a peer level with the header may still lack that much of the newest writes.
    tracker = JournalRpoTracker(writer_commit_age=timedelta(seconds=0.2))
    level = tracker.observe(NOW, [JournalClient("", Position(1, 10)),
                                  JournalClient(PEER, Position(1, 10))], PEER)
    assert level.measured == timedelta(seconds=0.2)
    behind = tracker.observe(NOW + timedelta(seconds=1),
                             [JournalClient("", Position(1, 20)),
                              JournalClient(PEER, Position(1, 10))], PEER)
    assert behind.measured == timedelta(seconds=1.2)
    assert behind.data_as_of == NOW - timedelta(seconds=0.2)


def test_a_peer_missing_from_the_journal_is_unknown() -> None:
    reading = JournalRpoTracker().observe(NOW, [JournalClient("", Position(1, 1))], PEER)
    assert reading.measured is None


def test_split_brain_names_the_side_with_the_newer_snapshot() -> None:
    here = [primary_snap(10, 90)]
    there = [MirrorSnapshot(7, NOW - timedelta(seconds=30), primary=True, complete=True,
                            primary_snap_id=None, demoted=False)]
    reading = snapshot_rpo(here, there, NOW)
    assert reading.measured is None
    assert reading.detail.startswith("split-brain: both sites are primary")
    assert reading.detail.endswith("the peer holds the newer data")
    demoted = [MirrorSnapshot(7, NOW, primary=True, complete=True, primary_snap_id=None,
                              demoted=True)]
    assert not snapshot_rpo(here, demoted, NOW).detail.startswith("split-brain")


def test_an_old_primary_demoted_by_a_switchover_is_no_split_brain() -> None:
    # As read on the lab after a switchover a -> b, from b: a still holds its primary
    # snapshot 10 and its demotion snapshot 12, and already a copy (14) of b's 15.
    here = [MirrorSnapshot(13, NOW - timedelta(seconds=40), primary=False, complete=True,
                           primary_snap_id=12, demoted=True), primary_snap(15, 30)]
    there = [primary_snap(10, 60),
             MirrorSnapshot(12, NOW - timedelta(seconds=40), primary=True, complete=True,
                            primary_snap_id=None, demoted=True),
             copy_of(14, 15)]
    reading = snapshot_rpo(here, there, NOW)
    assert (reading.measured, reading.detail) == (timedelta(seconds=30), "idle")
    before_copy = snapshot_rpo(here, there[:2], NOW)
    assert before_copy.detail == "no snapshot fully synced to the peer yet"
