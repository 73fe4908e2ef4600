"""The state store's backup job history: recorded before and after, never green when failed."""

import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from drd.domain.backup_jobs import JobKey, JobKind
from drd.state import (
    AlreadyFinished,
    RecordNotFound,
    RunState,
    StateStore,
    StateStoreError,
    schema,
)

NOW = datetime(2026, 3, 1, 2, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)

DB = JobKey("water", JobKind.BACKUP, "rbd/water/db", "sftp:c/water")
WEB = JobKey("water", JobKind.BACKUP, "rbd/water/web", "sftp:c/water")
DB_RESTORE_TEST = JobKey("water", JobKind.RESTORE_TEST, "rbd/water/db", "sftp:c/water")
PRUNE = JobKey("water", JobKind.PRUNE, None, "sftp:c/water")
THEIR_DB = JobKey("transport", JobKind.BACKUP, "rbd/water/db", "sftp:c/transport")


@pytest.fixture
def store(tmp_path: Path) -> Iterator[StateStore]:
    with StateStore.initialise(tmp_path / "state", "c") as store:
        yield store


def ran(
    store: StateStore,
    job: JobKey,
    at: datetime,
    state: RunState,
    *,
    reason: str | None = None,
    bytes_added: int | None = None,
    snapshot_id: str | None = None,
    interrupted: bool = False,
) -> int:
    """Record one whole run of `job` starting at `at` and lasting ten minutes."""
    started = store.start_backup_job(job, at)
    if state is not RunState.SUCCEEDED and reason is None:
        reason = "restic exited 1"
    store.finish_backup_job(
        started.id, state, at + timedelta(minutes=10), reason=reason, bytes_added=bytes_added,
        snapshot_id=snapshot_id, interrupted=interrupted,
    )
    return started.id


def state_of(store: StateStore, job_id: int) -> RunState:
    record = store.get_backup_job(job_id)
    assert record is not None
    return record.state


def test_a_run_is_recorded_running_when_it_starts_and_with_its_result_when_it_ends(
    store: StateStore,
) -> None:
    started = store.start_backup_job(DB, NOW)
    assert (started.job, started.state, started.started_at, started.finished_at) == (
        DB, RunState.RUNNING, NOW, None,
    )
    finished = store.finish_backup_job(
        started.id, RunState.SUCCEEDED, NOW + HOUR, bytes_added=1 << 20,
        snapshot_id="4f2a9c1e", duration=timedelta(minutes=59, seconds=58.5),
    )
    assert (finished.state, finished.finished_at, finished.reason) == (
        RunState.SUCCEEDED, NOW + HOUR, None,
    )
    assert (finished.bytes_added, finished.snapshot_id, finished.interrupted) == (
        1 << 20, "4f2a9c1e", False,
    )
    assert finished.duration == timedelta(minutes=59, seconds=58.5)
    assert store.get_backup_job(started.id) == finished
    assert store.get_backup_job(started.id + 1) is None


def test_a_failed_or_cancelled_run_must_say_why(store: StateStore) -> None:
    started = store.start_backup_job(DB, NOW)
    for state in (RunState.FAILED, RunState.CANCELLED):
        with pytest.raises(ValueError, match=f"a {state.value} run must say why"):
            store.finish_backup_job(started.id, state, NOW + HOUR)
    assert state_of(store, started.id) is RunState.RUNNING
    failed = store.finish_backup_job(started.id, RunState.FAILED, NOW + HOUR,
                                     reason="wrong password (restic exit 12)")
    assert failed.reason == "wrong password (restic exit 12)"


def test_the_schema_itself_refuses_a_failure_without_reason_or_a_successful_interruption(
    store: StateStore,
) -> None:
    started = store.start_backup_job(DB, NOW)
    connection = sqlite3.connect(store.path, isolation_level=None)
    try:
        for update in (
            "UPDATE backup_jobs SET state = 'failed', finished_at_us = 1",
            "UPDATE backup_jobs SET state = 'succeeded', finished_at_us = 1, interrupted = 1",
            "UPDATE backup_jobs SET bytes_added = -1",
        ):
            with pytest.raises(sqlite3.IntegrityError, match="CHECK constraint failed"):
                connection.execute(update)
    finally:
        connection.close()
    assert state_of(store, started.id) is RunState.RUNNING


def test_a_run_ends_once_with_a_final_state_and_sensible_figures(store: StateStore) -> None:
    started = store.start_backup_job(DB, NOW)
    with pytest.raises(ValueError, match="final state"):
        store.finish_backup_job(started.id, RunState.RUNNING, NOW)
    with pytest.raises(ValueError, match="an interrupted run did not succeed"):
        store.finish_backup_job(started.id, RunState.SUCCEEDED, NOW, interrupted=True)
    with pytest.raises(ValueError, match="bytes_added cannot be negative"):
        store.finish_backup_job(started.id, RunState.SUCCEEDED, NOW, bytes_added=-1)
    with pytest.raises(RecordNotFound, match="there is no backup job 99"):
        store.finish_backup_job(99, RunState.SUCCEEDED, NOW)
    store.finish_backup_job(started.id, RunState.FAILED, NOW, reason="timed out")
    with pytest.raises(AlreadyFinished, match="already finished as failed") as raised:
        store.finish_backup_job(started.id, RunState.SUCCEEDED, NOW)
    assert raised.value.state is RunState.FAILED
    with pytest.raises(ValueError, match="no timezone"):
        store.start_backup_job(DB, datetime(2026, 3, 1, 2, 0))
    assert len(store.backup_history("water", 10)) == 1


def test_runs_left_running_by_a_dead_daemon_are_marked_failed_and_interrupted(
    store: StateStore,
) -> None:
    done = ran(store, WEB, NOW - HOUR, RunState.SUCCEEDED)
    left = [store.start_backup_job(DB, NOW).id, store.start_backup_job(PRUNE, NOW).id]
    marked = store.mark_interrupted_backup_jobs(NOW + HOUR, "daemon stopped during the run")
    assert [r.id for r in marked] == left
    for record in marked:
        assert (record.state, record.reason, record.interrupted) == (
            RunState.FAILED, "daemon stopped during the run", True,
        )
        assert (record.finished_at, record.duration) == (NOW + HOUR, None)
    assert state_of(store, done) is RunState.SUCCEEDED
    assert store.mark_interrupted_backup_jobs(NOW + HOUR, "again") == []


def test_last_backup_job_finds_the_latest_run_or_the_latest_that_ended_so(
    store: StateStore,
) -> None:
    good = ran(store, DB, NOW, RunState.SUCCEEDED, bytes_added=10, snapshot_id="aa")
    bad = ran(store, DB, NOW + HOUR, RunState.FAILED, reason="repository is locked")
    ran(store, THEIR_DB, NOW + 2 * HOUR, RunState.SUCCEEDED)
    prune = ran(store, PRUNE, NOW + 2 * HOUR, RunState.SUCCEEDED)

    def last(job: JobKey, state: RunState | None = None) -> int | None:
        record = store.last_backup_job(job.tenant, job.kind, job.source, state=state)
        return None if record is None else record.id

    assert last(DB) == bad
    assert last(DB, RunState.SUCCEEDED) == good
    assert last(DB, RunState.CANCELLED) is None
    assert last(DB_RESTORE_TEST) is None
    assert last(PRUNE) == prune  # a job on a whole repository has no source


def test_latest_per_source_answers_last_backed_up_and_last_verified_restorable(
    store: StateStore,
) -> None:
    ran(store, DB, NOW, RunState.SUCCEEDED)
    db_last_good = ran(store, DB, NOW + HOUR, RunState.SUCCEEDED)
    ran(store, DB, NOW + 2 * HOUR, RunState.FAILED)
    web_good = ran(store, WEB, NOW, RunState.SUCCEEDED)
    verified = ran(store, DB_RESTORE_TEST, NOW, RunState.SUCCEEDED)
    ran(store, DB_RESTORE_TEST, NOW + HOUR, RunState.FAILED, reason="sha256 differs")
    ran(store, THEIR_DB, NOW, RunState.SUCCEEDED)

    backed_up = store.latest_backup_jobs(tenant="water", kind=JobKind.BACKUP,
                                         state=RunState.SUCCEEDED)
    assert [(r.source, r.id) for r in backed_up] == [
        ("rbd/water/db", db_last_good), ("rbd/water/web", web_good),
    ]
    restorable = store.latest_backup_jobs(tenant="water", kind=JobKind.RESTORE_TEST,
                                          state=RunState.SUCCEEDED)
    assert [r.id for r in restorable] == [verified]
    latest = store.latest_backup_jobs()
    assert {(r.tenant, r.kind, r.source): r.state for r in latest} == {
        ("transport", JobKind.BACKUP, "rbd/water/db"): RunState.SUCCEEDED,
        ("water", JobKind.BACKUP, "rbd/water/db"): RunState.FAILED,
        ("water", JobKind.BACKUP, "rbd/water/web"): RunState.SUCCEEDED,
        ("water", JobKind.RESTORE_TEST, "rbd/water/db"): RunState.FAILED,
    }


def test_latest_runs_can_pass_over_runs_the_daemon_cut_short(store: StateStore) -> None:
    real = ran(store, DB, NOW, RunState.FAILED, reason="restic exited 3")
    ran(store, DB, NOW + HOUR, RunState.CANCELLED, reason="daemon stopping", interrupted=True)
    store.start_backup_job(DB, NOW + 2 * HOUR)
    store.mark_interrupted_backup_jobs(NOW + 3 * HOUR, "daemon stopped during the run")
    assert [r.id for r in store.latest_backup_jobs(include_interrupted=False)] == [real]
    assert [r.interrupted for r in store.latest_backup_jobs()] == [True]


def test_history_lists_a_tenants_runs_newest_first(store: StateStore) -> None:
    first = ran(store, DB, NOW, RunState.SUCCEEDED)
    prune = ran(store, PRUNE, NOW + HOUR, RunState.SUCCEEDED)
    web = ran(store, WEB, NOW + 2 * HOUR, RunState.FAILED)
    ran(store, THEIR_DB, NOW, RunState.SUCCEEDED)
    assert [r.id for r in store.backup_history("water", 10)] == [web, prune, first]
    assert [r.id for r in store.backup_history("water", 2)] == [web, prune]
    assert [r.id for r in store.backup_history("water", 10, kind=JobKind.BACKUP)] == [web, first]
    assert [r.id for r in store.backup_history("water", 10, source="rbd/water/db")] == [first]
    assert store.backup_history("sewage", 10) == []
    with pytest.raises(ValueError, match="limit must be at least 1"):
        store.backup_history("water", 0)


def test_usage_counts_a_tenants_finished_backups_and_the_bytes_they_added(
    store: StateStore,
) -> None:
    ran(store, DB, NOW, RunState.SUCCEEDED, bytes_added=1000)
    ran(store, WEB, NOW + HOUR, RunState.SUCCEEDED, bytes_added=200)
    # restic stored what a failed run added; metering counts it.
    ran(store, DB, NOW + 2 * HOUR, RunState.FAILED, bytes_added=30)
    ran(store, PRUNE, NOW + 2 * HOUR, RunState.SUCCEEDED)
    ran(store, THEIR_DB, NOW, RunState.SUCCEEDED, bytes_added=7)
    store.start_backup_job(WEB, NOW + 3 * HOUR)  # still running: not counted yet

    usage = store.backup_usage("water")
    assert (usage.backup_runs, usage.succeeded_runs, usage.bytes_added) == (3, 2, 1230)
    since = store.backup_usage("water", since=NOW + HOUR)
    assert (since.backup_runs, since.succeeded_runs, since.bytes_added) == (2, 1, 230)
    nothing = store.backup_usage("sewage")
    assert (nothing.backup_runs, nothing.succeeded_runs, nothing.bytes_added) == (0, 0, 0)


def test_usage_tells_cancelled_runs_from_failed_ones(store: StateStore) -> None:
    ran(store, DB, NOW, RunState.SUCCEEDED, bytes_added=10)
    ran(store, DB, NOW + HOUR, RunState.FAILED, bytes_added=5)
    ran(store, WEB, NOW + HOUR, RunState.CANCELLED, reason="cancelled: the daemon is stopping",
        interrupted=True)
    usage = store.backup_usage("water")
    assert (usage.backup_runs, usage.succeeded_runs, usage.failed_runs,
            usage.cancelled_runs, usage.bytes_added) == (3, 1, 1, 1, 15)


def test_the_history_survives_reopening(store: StateStore, tmp_path: Path) -> None:
    run = ran(store, DB, NOW, RunState.SUCCEEDED, bytes_added=5, snapshot_id="ab12")
    before = store.get_backup_job(run)
    store.close()
    with StateStore.open(tmp_path / "state", "c") as reopened:
        assert reopened.get_backup_job(run) == before
    with pytest.raises(StateStoreError, match="is closed"):
        store.backup_history("water", 1)


def test_a_database_from_before_backup_history_gains_it_on_open_and_keeps_its_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with monkeypatch.context() as older_drd:
        older_drd.setattr(schema, "MIGRATIONS", schema.MIGRATIONS[:1])
        with StateStore.initialise(tmp_path / "state", "c") as old:
            drill = old.start_run("drill", "water", NOW)
    with StateStore.open(tmp_path / "state", "c") as store:
        assert store.get_run(drill.id) == drill
        run = ran(store, DB, NOW, RunState.SUCCEEDED, bytes_added=1)
        assert store.backup_usage("water").bytes_added == 1
        assert store.get_backup_job(run) is not None
