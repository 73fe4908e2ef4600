"""The state store's records: runs, jobs, the append-only audit log and epochs that only rise."""

import sqlite3
import subprocess
import sys
import textwrap
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta, timezone
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from drd.state import (
    AlreadyFinished,
    AuditResult,
    EpochConflict,
    EpochRecord,
    RecordNotFound,
    RunState,
    StateStore,
    StateStoreError,
    rows,
)

NOW = datetime(2026, 3, 1, 9, 30, tzinfo=UTC)
LATER = NOW + timedelta(minutes=5)


@pytest.fixture
def state_dir(tmp_path: Path) -> Path:
    return tmp_path / "state"


@pytest.fixture
def store(state_dir: Path) -> Iterator[StateStore]:
    with StateStore.initialise(state_dir, "a") as store:
        yield store


def raw_connection(store: StateStore) -> sqlite3.Connection:
    """A plain connection to the store's file, as an operator's sqlite3 shell would have."""
    return sqlite3.connect(store.path, isolation_level=None)


# -- runs and jobs ------------------------------------------------------------------------


def test_a_run_starts_running_and_finishes_once(store: StateStore) -> None:
    run = store.start_run("drill", "tenant-yancheng", NOW, {"runbook": "failover-same-city"})
    assert (run.kind, run.subject, run.state, run.started_at, run.finished_at) == (
        "drill", "tenant-yancheng", RunState.RUNNING, NOW, None,
    )
    finished = store.finish_run(run.id, RunState.FAILED, LATER, {"reason": "promote timed out"})
    assert finished.state is RunState.FAILED
    assert finished.finished_at == LATER
    assert dict(finished.detail) == {"runbook": "failover-same-city", "reason": "promote timed out"}
    assert store.get_run(run.id) == finished

    with pytest.raises(AlreadyFinished, match=f"run {run.id} already finished as failed") as raised:
        store.finish_run(run.id, RunState.SUCCEEDED, LATER)
    assert raised.value.state is RunState.FAILED
    assert store.get_run(run.id) == finished


def test_finishing_needs_a_known_run_and_a_final_state(store: StateStore) -> None:
    with pytest.raises(RecordNotFound, match="there is no run 42"):
        store.finish_run(42, RunState.SUCCEEDED, NOW)
    run = store.start_run("backup", "tenant-a", NOW)
    with pytest.raises(ValueError, match="final state"):
        store.finish_run(run.id, RunState.RUNNING, NOW)


def test_runs_list_newest_first_and_filter_by_kind_subject_and_state(store: StateStore) -> None:
    drill = store.start_run("drill", "t1", NOW)
    backup = store.start_run("backup", "t1", NOW)
    second_drill = store.start_run("drill", "t2", NOW)
    store.finish_run(drill.id, RunState.SUCCEEDED, LATER)

    assert [r.id for r in store.list_runs(10)] == [second_drill.id, backup.id, drill.id]
    assert [r.id for r in store.list_runs(1)] == [second_drill.id]
    assert [r.id for r in store.list_runs(10, kind="drill")] == [second_drill.id, drill.id]
    assert [r.id for r in store.list_runs(10, subject="t1")] == [backup.id, drill.id]
    assert [r.id for r in store.list_runs(10, "drill", subject="t1")] == [drill.id]
    running = store.list_runs(10, state=RunState.RUNNING)
    assert [r.id for r in running] == [second_drill.id, backup.id]
    with pytest.raises(ValueError, match="limit"):
        store.list_runs(0)


def test_jobs_belong_to_a_run_or_stand_alone(store: StateStore) -> None:
    run = store.start_run("failover", "pg-1", NOW)
    demote = store.start_job("demote site a", NOW, run_id=run.id)
    scrub = store.start_job("restic check", NOW)
    store.finish_job(demote.id, RunState.SUCCEEDED, LATER, {"took_s": 3.2})

    assert [j.name for j in store.list_jobs(10, run_id=run.id)] == ["demote site a"]
    assert [j.id for j in store.list_jobs(10)] == [scrub.id, demote.id]
    finished = store.list_jobs(10, run_id=run.id)[0]
    assert (finished.state, finished.finished_at, dict(finished.detail)) == (
        RunState.SUCCEEDED, LATER, {"took_s": 3.2},
    )
    with pytest.raises(RecordNotFound, match="no run 99"):
        store.start_job("orphan", NOW, run_id=99)
    with pytest.raises(AlreadyFinished):
        store.finish_job(demote.id, RunState.FAILED, LATER)


# -- times --------------------------------------------------------------------------------


def test_times_are_stored_as_integers_and_come_back_aware_in_utc(store: StateStore) -> None:
    beijing = timezone(timedelta(hours=8))
    started = datetime(2026, 3, 1, 17, 30, 0, 123456, tzinfo=beijing)
    run = store.start_run("drill", "t1", started)
    assert run.started_at == started
    assert run.started_at.tzinfo is UTC
    connection = raw_connection(store)
    stored = connection.execute("SELECT typeof(started_at_us), started_at_us FROM runs").fetchone()
    connection.close()
    assert stored == ("integer", 1772357400123456)


def test_naive_times_are_refused_before_anything_is_written(store: StateStore) -> None:
    with pytest.raises(ValueError, match="no timezone"):
        store.start_run("drill", "t1", datetime(2026, 3, 1, 9, 30))
    assert store.list_runs(10) == []


def test_detail_that_is_not_json_is_refused(store: StateStore) -> None:
    with pytest.raises(ValueError, match="JSON-serialisable"):
        store.start_run("drill", "t1", NOW, {"when": NOW})
    with pytest.raises(ValueError, match="JSON-serialisable"):
        store.audit(actor="op", role="admin", action="drill", target="t1",
                    result=AuditResult.OK, now=NOW, detail={"ratio": float("nan")})
    assert store.list_runs(10) == []
    assert store.audit_log(10) == []


# -- audit log ----------------------------------------------------------------------------


def test_audit_log_lists_newest_first_and_since_a_time(store: StateStore) -> None:
    store.audit(actor="li.wei", role="operator", action="drill run", target="tenant-a",
                result=AuditResult.OK, now=NOW, detail={"run_id": 1})
    refused = store.audit(actor="guest", role="tenant", action="failover", target="pg-1",
                          result=AuditResult.REFUSED, now=LATER)
    entries = store.audit_log(10)
    assert [e.action for e in entries] == ["failover", "drill run"]
    assert entries[0] == refused
    assert (refused.actor, refused.role, refused.target, refused.at) == (
        "guest", "tenant", "pg-1", LATER,
    )
    assert store.audit_log(10, since=NOW + timedelta(seconds=1)) == [refused]


def test_audit_rows_cannot_be_changed_or_removed_even_by_hand(store: StateStore) -> None:
    store.audit(actor="li.wei", role="operator", action="switchover", target="pg-1",
                result=AuditResult.FAILED, now=NOW)
    connection = raw_connection(store)
    try:
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            connection.execute("UPDATE audit SET result = 'ok'")
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            connection.execute("DELETE FROM audit")
        connection.execute("PRAGMA recursive_triggers = ON")
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            connection.execute(
                "INSERT OR REPLACE INTO audit (id, at_us, actor, role, action, target, result,"
                " detail) VALUES (1, 0, 'x', 'x', 'x', 'x', 'ok', '{}')"
            )
    finally:
        connection.close()
    assert [e.result for e in store.audit_log(10)] == [AuditResult.FAILED]


# -- epochs -------------------------------------------------------------------------------


def test_advance_epoch_is_a_compare_and_set(store: StateStore) -> None:
    assert store.epoch("pg-1") is None
    first = store.advance_epoch("pg-1", expected_epoch=None, new_primary="a", now=NOW, by="a")
    assert first == EpochRecord("pg-1", 1, "a", NOW, "a")
    second = store.advance_epoch("pg-1", expected_epoch=1, new_primary="b", now=LATER, by="b")
    assert (second.epoch, second.primary_site) == (2, "b")

    with pytest.raises(EpochConflict, match="at epoch 2, not the expected 1") as raised:
        store.advance_epoch("pg-1", expected_epoch=1, new_primary="c", now=LATER, by="c")
    assert raised.value.current == second
    with pytest.raises(EpochConflict, match="at epoch None, not the expected 3") as missing:
        store.advance_epoch("pg-2", expected_epoch=3, new_primary="c", now=LATER, by="c")
    assert missing.value.current is None
    assert store.epoch("pg-1") == second
    assert store.epochs() == [second]


def race(contenders: list[Callable[[], Any]]) -> tuple[list[Any], list[BaseException]]:
    """Start every contender at the same moment; return what they returned and raised."""
    barrier = threading.Barrier(len(contenders))
    results: list[Any] = []
    errors: list[BaseException] = []

    def run(contender: Callable[[], Any]) -> None:
        barrier.wait()
        try:
            results.append(contender())
        except BaseException as error:  # the race's loser is collected, not lost
            errors.append(error)

    threads = [threading.Thread(target=run, args=(c,)) for c in contenders]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results, errors


@pytest.mark.parametrize("connections", ["one shared store", "a store per thread"])
def test_concurrent_promotions_from_the_same_epoch_have_exactly_one_winner(
    store: StateStore, state_dir: Path, connections: str
) -> None:
    stores = [store] * 4
    if connections == "a store per thread":  # separate connections, as separate processes
        stores = [store, *(StateStore.open(state_dir, "a") for _ in range(3))]
    try:
        for round_number in range(20):
            expected = None if round_number == 0 else round_number
            results, errors = race([
                partial(contender.advance_epoch, "pg-1", expected_epoch=expected,
                        new_primary=site, now=NOW, by=site)
                for contender, site in zip(stores, "abcd", strict=True)
            ])
            assert len(results) == 1, errors
            assert len(errors) == 3
            assert all(isinstance(e, EpochConflict) for e in errors)
            assert results[0].epoch == round_number + 1
            assert store.epoch("pg-1") == results[0]
    finally:
        for other in stores[1:]:
            if other is not store:
                other.close()


def test_accept_epoch_only_moves_forward(store: StateStore) -> None:
    assert store.accept_epoch("pg-1", epoch=3, primary="b", now=NOW, by="peer b")
    assert not store.accept_epoch("pg-1", epoch=2, primary="c", now=LATER, by="peer c")
    assert not store.accept_epoch("pg-1", epoch=3, primary="b", now=LATER, by="peer c")
    assert store.epoch("pg-1") == EpochRecord("pg-1", 3, "b", NOW, "peer b")
    assert store.accept_epoch("pg-1", epoch=5, primary="c", now=LATER, by="peer c")
    current = store.epoch("pg-1")
    assert current is not None
    assert (current.epoch, current.primary_site) == (5, "c")
    with pytest.raises(ValueError, match="start at 1"):
        store.accept_epoch("pg-1", epoch=0, primary="a", now=LATER, by="peer a")


def test_the_same_epoch_with_another_primary_is_split_brain_and_raises(store: StateStore) -> None:
    store.advance_epoch("pg-1", expected_epoch=None, new_primary="a", now=NOW, by="a")
    with pytest.raises(EpochConflict, match="two sites promoted from the same epoch") as raised:
        store.accept_epoch("pg-1", epoch=1, primary="b", now=LATER, by="peer b")
    assert raised.value.current == EpochRecord("pg-1", 1, "a", NOW, "a")


def test_epochs_cannot_be_lowered_or_forgotten_even_by_hand(store: StateStore) -> None:
    store.advance_epoch("pg-1", expected_epoch=None, new_primary="a", now=NOW, by="a")
    store.advance_epoch("pg-1", expected_epoch=1, new_primary="b", now=NOW, by="b")
    connection = raw_connection(store)
    try:
        for statement in ("UPDATE epochs SET epoch = 1", "UPDATE epochs SET primary_site = 'c'",
                          "DELETE FROM epochs"):
            with pytest.raises(sqlite3.IntegrityError, match="epoch"):
                connection.execute(statement)
    finally:
        connection.close()
    current = store.epoch("pg-1")
    assert current is not None
    assert (current.epoch, current.primary_site) == (2, "b")


# -- atomicity and durability -------------------------------------------------------------


def test_an_error_inside_a_write_leaves_nothing_half_written(
    store: StateStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = store.start_run("drill", "t1", NOW, {"step": "plan"})

    def fail_after_the_update(row: sqlite3.Row) -> Any:
        raise RuntimeError("crash after the UPDATE ran, before COMMIT")

    monkeypatch.setattr(rows, "run_from_row", fail_after_the_update)
    with pytest.raises(RuntimeError, match="before COMMIT"):
        store.finish_run(run.id, RunState.SUCCEEDED, LATER, {"step": "done"})
    with pytest.raises(RuntimeError, match="before COMMIT"):
        store.start_run("drill", "t2", NOW)
    monkeypatch.undo()

    assert store.list_runs(10) == [run]
    assert store.finish_run(run.id, RunState.SUCCEEDED, LATER).state is RunState.SUCCEEDED


def test_a_process_killed_mid_transaction_leaves_nothing_half_written(
    store: StateStore, state_dir: Path
) -> None:
    store.advance_epoch("pg-1", expected_epoch=None, new_primary="a", now=NOW, by="a")
    # The child writes a run, then dies without COMMIT or cleanup, as under SIGKILL.
    child = textwrap.dedent(f"""
        import os
        from datetime import UTC, datetime
        from pathlib import Path
        from drd.state import StateStore, rows
        store = StateStore.open(Path({str(state_dir)!r}), "a")
        rows.run_from_row = lambda row: os._exit(17)
        store.start_run("failover", "pg-1", datetime(2026, 3, 1, tzinfo=UTC), {{"x": "y" * 9000}})
    """)
    outcome = subprocess.run([sys.executable, "-c", child], check=False, timeout=60)
    assert outcome.returncode == 17

    assert store.list_runs(10) == []
    store.close()
    with StateStore.open(state_dir, "a") as reopened:
        assert reopened.list_runs(10) == []
        assert reopened.epoch("pg-1") == EpochRecord("pg-1", 1, "a", NOW, "a")
        assert reopened.start_run("failover", "pg-1", LATER).id >= 1


def test_reopening_after_close_keeps_everything(store: StateStore, state_dir: Path) -> None:
    run = store.start_run("backup", "tenant-a", NOW)
    job = store.start_job("restic backup", NOW, run_id=run.id)
    entry = store.audit(actor="li.wei", role="operator", action="backup run", target="tenant-a",
                        result=AuditResult.OK, now=NOW)
    epoch = store.advance_epoch("pg-1", expected_epoch=None, new_primary="a", now=NOW, by="a")
    store.close()
    store.close()  # closing twice is harmless
    with pytest.raises(StateStoreError, match="is closed"):
        store.list_runs(10)

    with StateStore.open(state_dir, "a") as reopened:
        assert reopened.list_runs(10) == [run]
        assert reopened.list_jobs(10) == [job]
        assert reopened.audit_log(10) == [entry]
        assert reopened.epoch("pg-1") == epoch
