"""Metering with a real state store; restic is a fake at its Protocol boundary (the real
`restic stats` is compared in tests/integration/test_repository_jobs.py)."""

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import generate_latest

from drd.api.metrics import DaemonMetrics
from drd.backup.metering import Metering, usage_body
from drd.backup.restic import ResticError
from drd.backup.restic_argv import ALL_SNAPSHOTS, SnapshotFilter
from drd.backup.restic_messages import RawDataStats
from drd.backup.restic_outcome import Outcome, OutcomeKind
from drd.domain.backup_jobs import JobKey, JobKind
from drd.state import RunState, StateStore

NOW = datetime(2026, 3, 1, 2, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)
REPO = "/srv/restic/water"
DB = JobKey("water", JobKind.BACKUP, "db", REPO)
PRUNE = JobKey("water", JobKind.PRUNE, None, REPO)


class FakeStats:
    def __init__(self, answer: RawDataStats | ResticError) -> None:
        self.answer = answer
        self.asked: list[SnapshotFilter] = []

    async def stats_raw_data(self, selection: SnapshotFilter = ALL_SNAPSHOTS) -> RawDataStats:
        self.asked.append(selection)
        if isinstance(self.answer, ResticError):
            raise self.answer
        return self.answer

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"metering must not call restic's {name}")


@pytest.fixture
def store(tmp_path: Path) -> Iterator[StateStore]:
    with StateStore.initialise(tmp_path / "state", "c") as store:
        yield store


def ran(store: StateStore, job: JobKey, at: datetime, state: RunState,
        bytes_added: int | None = None) -> None:
    record = store.start_backup_job(job, at)
    store.finish_backup_job(record.id, state, at + timedelta(minutes=10), bytes_added=bytes_added,
                            reason=None if state is RunState.SUCCEEDED else "restic exited 1",
                            snapshot_id="ab12cd34" if state is RunState.SUCCEEDED else None,
                            interrupted=state is RunState.CANCELLED)


def exported(metrics: DaemonMetrics) -> dict[str, float]:
    return {line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
            for line in generate_latest(metrics.registry).decode().splitlines()
            if line.startswith(("drd_backup_stored", "drd_backup_added", "drd_backup_runs",
                                "drd_backup_snapshots"))}


async def test_a_measurement_is_recorded_exported_and_survives_a_restart(
        store: StateStore) -> None:
    ran(store, DB, NOW, RunState.SUCCEEDED, 1000)
    ran(store, DB, NOW + HOUR, RunState.FAILED, 30)
    ran(store, DB, NOW + 2 * HOUR, RunState.CANCELLED)
    ran(store, PRUNE, NOW, RunState.SUCCEEDED)
    metrics = DaemonMetrics("c", "remote", "test")
    metering = Metering(store, metrics, clock=lambda: NOW + 3 * HOUR)
    restic = FakeStats(RawDataStats(total_size=5000, total_uncompressed_size=9000,
                                    total_blob_count=4, snapshots_count=2))
    record = await metering.measure("water", REPO, restic)
    assert record is not None and record.stored_bytes == 5000
    assert restic.asked == [SnapshotFilter(tags=("drd:tenant=water",))]
    await metering.runs_changed("water")
    expected = {
        'drd_backup_stored_bytes{tenant="water"}': 5000,
        'drd_backup_snapshots{tenant="water"}': 2,
        'drd_backup_stored_measured_timestamp_seconds{tenant="water"}':
            (NOW + 3 * HOUR).timestamp(),
        'drd_backup_added_bytes_total{tenant="water"}': 1030,
        'drd_backup_runs_total{result="cancelled",tenant="water"}': 1,
        'drd_backup_runs_total{result="failed",tenant="water"}': 1,
        'drd_backup_runs_total{result="succeeded",tenant="water"}': 1,
    }
    assert exported(metrics) == expected

    restarted = DaemonMetrics("c", "remote", "test")
    await Metering(store, restarted).load(["water"])  # no restic asked
    assert exported(restarted) == expected


async def test_a_failed_measurement_keeps_the_last_one_and_says_why(store: StateStore) -> None:
    metrics = DaemonMetrics("c", "remote", "test")
    metering = Metering(store, metrics, clock=lambda: NOW)
    good = FakeStats(RawDataStats(100, 100, 1, 1))
    await metering.measure("water", REPO, good)
    locked = FakeStats(ResticError(Outcome(OutcomeKind.LOCKED, 11, "restic stats could not "
                                           "lock the repository")))
    assert await metering.measure("water", REPO, locked) is None
    usage = await metering.usage("water")
    assert usage.stored is not None and usage.stored.stored_bytes == 100
    assert usage.stored_error == "restic stats could not lock the repository"
    assert exported(metrics)['drd_backup_stored_bytes{tenant="water"}'] == 100
    await metering.measure("water", REPO, good)
    assert (await metering.usage("water")).stored_error is None


async def test_the_usage_body(store: StateStore) -> None:
    ran(store, DB, NOW, RunState.SUCCEEDED, 1000)
    ran(store, DB, NOW + HOUR, RunState.FAILED, 30)
    metering = Metering(store, DaemonMetrics("c", "remote", "test"), clock=lambda: NOW)
    assert usage_body(await metering.usage("sewage")).model_dump(mode="json") == {
        "tenant": "sewage", "stored": None, "stored_error": None,
        "backups": {"since": None, "runs": 0, "succeeded": 0, "failed": 0, "cancelled": 0,
                    "bytes_added": 0},
        "recent_runs": []}
    await metering.measure("water", REPO, FakeStats(RawDataStats(500, 600, 3, 1)))
    body = usage_body(await metering.usage("water", since=NOW + HOUR, recent=1))
    assert json.loads(body.model_dump_json()) == {
        "tenant": "water",
        "stored": {"repository": REPO, "stored_bytes": 500, "uncompressed_bytes": 600,
                   "snapshots": 1, "measured_at": "2026-03-01T02:00:00Z"},
        "stored_error": None,
        "backups": {"since": "2026-03-01T03:00:00Z", "runs": 1, "succeeded": 0, "failed": 1,
                    "cancelled": 0, "bytes_added": 30},
        "recent_runs": [{"id": 2, "source": "db", "started_at": "2026-03-01T03:00:00Z",
                         "finished_at": "2026-03-01T03:10:00Z", "state": "failed",
                         "bytes_added": 30, "snapshot_id": None}],
    }
