"""How far a copy has replayed its primary, from snapshots and journal positions, as
measured on Ceph 16.2.15 around a planned switchover and a split-brain."""

from datetime import UTC, datetime

from drd.domain.journal_position import JournalClient, Position
from drd.domain.replay_progress import (
    journal_in_sync,
    journal_replaying,
    snapshot_in_sync,
    snapshot_replaying,
)
from drd.domain.rpo import MirrorSnapshot

AT = datetime(2026, 11, 22, 9, 36, 8, tzinfo=UTC)
B = "99436b8c-peer-b"


def own(snap_id: int, demoted: bool = False) -> MirrorSnapshot:
    return MirrorSnapshot(snap_id, AT, primary=True, complete=True, primary_snap_id=None,
                          demoted=demoted)


def copy(snap_id: int, of: int, complete: bool = True, demoted: bool = False) -> MirrorSnapshot:
    return MirrorSnapshot(snap_id, AT, primary=False, complete=complete, primary_snap_id=of,
                          demoted=demoted)


def clients(master: tuple[int, int] | None, peer: tuple[int, int] | None) -> list[JournalClient]:
    return [JournalClient("", None if master is None else Position(*master)),
            JournalClient(B, None if peer is None else Position(*peer))]


def test_a_copy_is_in_sync_once_it_holds_the_demotion_snapshot_complete() -> None:
    # As read on the lab: a's snapshots 10 and demotion snapshot 12; b copies 12 as 13.
    primary = [own(10), own(12, demoted=True)]
    assert not snapshot_in_sync(primary, [copy(11, 10)]).done
    copying = snapshot_in_sync(primary, [copy(11, 10), copy(13, 12, complete=False)])
    assert (copying.done, copying.detail) == (False, "is copying demotion snapshot 12")
    done = snapshot_in_sync(primary, [copy(11, 10), copy(13, 12, demoted=True)])
    assert (done.done, done.detail) == (True, "holds a complete copy of demotion snapshot 12")


def test_a_copy_that_never_started_says_what_it_holds() -> None:
    found = snapshot_in_sync([own(10), own(12, demoted=True)], [copy(11, 10)])
    assert found.detail == ("has not started copying demotion snapshot 12 "
                            "(newest copy: of primary snapshot 10, complete)")


def test_the_demoted_side_replays_once_it_copies_a_snapshot_of_the_new_primary() -> None:
    # After the switchover b holds a's demotion snapshot 12 as 13 and promotes (15).
    new_primary = [copy(13, 12, demoted=True), own(15)]
    assert not snapshot_replaying(new_primary, [own(10), own(12, demoted=True)]).done
    replaying = snapshot_replaying(new_primary, [own(10), own(12, demoted=True), copy(14, 15)])
    assert (replaying.done, replaying.detail) == \
        (True, "holds a complete copy of primary snapshot 15")


def test_a_split_brained_copy_holds_no_copy_of_the_new_primary() -> None:
    # As read on the lab: the two sides' snapshots share no history since the force.
    winner = [own(32, demoted=True), own(37), own(40)]
    assert not snapshot_replaying(winner, [own(30), own(33, demoted=True)]).done


def test_a_journal_copy_is_in_sync_at_the_primary_position() -> None:
    assert not journal_in_sync(clients((6, 0), (4, 65)), B).done
    done = journal_in_sync(clients((6, 0), (6, 0)), B)
    assert (done.done, done.detail) == (True, "replayed to the primary's position 6/0")
    assert journal_in_sync(clients(None, None), B).done, "nothing was ever written"


def test_a_journal_copy_replays_once_its_position_is_in_the_promotion_tag() -> None:
    # As read on the lab: b promoted at tag 11; a's client moved from 7/0 to 11/0 in 1 s.
    assert not journal_replaying(clients((11, 0), (7, 0)), B).done
    assert journal_replaying(clients((11, 0), (11, 0)), B).done
    # Split-brain: a's client stays in the old tag.
    stuck = journal_replaying(clients((16, 64), (13, 0)), B)
    assert stuck.detail == "has not replayed past the promotion (at 13/0, primary at 16/64)"


def test_a_copy_not_registered_with_the_journal_is_not_in_sync() -> None:
    found = journal_in_sync([JournalClient("", Position(3, 1))], B)
    assert (found.done, found.detail) == (False, "is not registered with the primary's journal")
