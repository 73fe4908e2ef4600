"""The data-loss window of a forced promotion, from what each copy held."""

from datetime import UTC, datetime, timedelta

from drd.domain.loss_window import (
    HeldUpTo,
    entries_behind,
    journal_copy_held,
    loss_window,
    snapshot_copy_held,
)
from drd.domain.rbd_step_decisions import MirrorStatus
from drd.domain.rpo import MirrorSnapshot

T0 = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)


def copy(snap_id: int, at: float, *, complete: bool = True) -> MirrorSnapshot:
    return MirrorSnapshot(snap_id=snap_id, created=T0 + timedelta(seconds=at), primary=False,
                          complete=complete, primary_snap_id=snap_id + 100, demoted=False)


def test_a_snapshot_copy_holds_its_newest_complete_snapshot() -> None:
    held = snapshot_copy_held([copy(1, 0), copy(2, 60), copy(3, 120, complete=False)])
    assert held.as_of == T0 + timedelta(seconds=60)
    assert snapshot_copy_held([copy(3, 120, complete=False)]).as_of is None


def test_a_journal_copy_is_known_only_when_rbd_mirror_said_it_had_caught_up() -> None:
    caught_up = MirrorStatus("replaying", 'replaying, {"entries_behind_primary":0,'
                             '"entries_per_second":0.0}', True, T0)
    assert journal_copy_held(caught_up).as_of == T0
    behind = MirrorStatus("replaying", 'replaying, {"entries_behind_primary":7}', True, T0)
    assert journal_copy_held(behind).as_of is None
    assert "7 journal entries behind" in journal_copy_held(behind).detail
    assert entries_behind("stopped") is None
    assert journal_copy_held(None).as_of is None


def test_the_window_runs_from_the_oldest_copy_to_the_promotion_and_unknown_is_unknown(
        ) -> None:
    writable = T0 + timedelta(seconds=90)
    seconds, line = loss_window([HeldUpTo(T0 + timedelta(seconds=60), ""),
                                 HeldUpTo(T0 + timedelta(seconds=30), "")], writable)
    assert seconds == 60.0 and "at most 60.0 s" in line
    unknown, why = loss_window([HeldUpTo(T0, ""), HeldUpTo(None, "never reported")],
                               writable)
    assert unknown is None and "never reported" in why
