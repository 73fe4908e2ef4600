"""The backup scheduler with real asyncio and a real state store; only the jobs are fakes.

Time: the scheduler's wall clock is a FakeClock the tests move by hand; timeouts and polls
are real and short.
"""

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from drd.backup.job_run import JobFailed, JobOutcome, ScheduledJob
from drd.backup.scheduler import BackupScheduler
from drd.domain.backup_jobs import JobKey, JobKind
from drd.domain.repository_locks import AdmissionLimits
from drd.state import BackupJobRecord, RunState, StateStore

START = datetime(2026, 3, 1, 8, 30, tzinfo=UTC)
HOUR = timedelta(hours=1)
LONG = timedelta(minutes=5)  # a timeout no test reaches

DB = JobKey("water", JobKind.BACKUP, "rbd/water/db", "repo-water")
WEB = JobKey("water", JobKind.BACKUP, "rbd/water/web", "repo-water")
PRUNE = JobKey("water", JobKind.PRUNE, None, "repo-water")
BUSES = JobKey("transport", JobKind.BACKUP, "rbd/transport/buses", "repo-transport")


@dataclass
class FakeClock:
    now: datetime = START

    def __call__(self) -> datetime:
        return self.now


@dataclass
class HourlyOnTheHour:
    """The test double for the schedule rule: slots on every hour; never run means due now."""

    asked: list[tuple[JobKey, datetime | None]] = field(default_factory=list)

    def __call__(self, job: JobKey, last_run: datetime | None, now: datetime) -> datetime:
        self.asked.append((job, last_run))
        if last_run is None:
            return now
        return last_run.replace(minute=0, second=0, microsecond=0) + HOUR


class FakeJob:
    """A job action the test controls: it counts its runs and can be held until released."""

    def __init__(self, outcome: JobOutcome | Exception | None = None, *, hold: bool = False,
                 swallow_cancel: bool = False) -> None:
        self.outcome = JobOutcome() if outcome is None else outcome
        self.runs = 0
        self.started = asyncio.Event()
        self.release = asyncio.Event()
        self.cleaned_up = 0
        self.swallow_cancel = swallow_cancel
        if not hold:
            self.release.set()

    async def __call__(self) -> JobOutcome:
        self.runs += 1
        self.started.set()
        try:
            await self.release.wait()
        except asyncio.CancelledError:
            if not self.swallow_cancel:
                raise
        finally:
            self.cleaned_up += 1
        if isinstance(self.outcome, Exception):
            raise self.outcome
        return self.outcome


@pytest.fixture
def store(tmp_path: Path) -> Iterator[StateStore]:
    with StateStore.initialise(tmp_path / "state", "c") as store:
        yield store


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def schedule() -> HourlyOnTheHour:
    return HourlyOnTheHour()


def make_scheduler(store: StateStore, clock: FakeClock, schedule: HourlyOnTheHour,
                   max_jobs: int = 4, per_repository: int = 2) -> BackupScheduler:
    return BackupScheduler(store, AdmissionLimits(max_jobs, per_repository), schedule,
                           clock=clock, poll_seconds=0.01)


@contextlib.asynccontextmanager
async def running(scheduler: BackupScheduler) -> AsyncIterator[asyncio.Task[None]]:
    """The scheduler's loop as the daemon runs it; leaving stops it as the daemon's stop does."""
    task = asyncio.create_task(scheduler.run())
    try:
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def eventually(check: Callable[[], bool], seconds: float = 2.0) -> None:
    """Wait until `check` holds; for what the state database shows, which sends no event."""
    async with asyncio.timeout(seconds):
        while not check():  # noqa: ASYNC110
            await asyncio.sleep(0.005)


async def started(*jobs: FakeJob, seconds: float = 2.0) -> None:
    async with asyncio.timeout(seconds):
        for fake in jobs:
            await fake.started.wait()


async def settle() -> None:
    """Give the loop a few polls to do anything it was going to do."""
    await asyncio.sleep(0.05)


def history(store: StateStore, tenant: str = "water") -> list[BackupJobRecord]:
    return list(reversed(store.backup_history(tenant, 100)))


def job(key: JobKey, action: Callable[[], Awaitable[JobOutcome]],
        timeout: timedelta = LONG) -> ScheduledJob:
    return ScheduledJob(key, action, timeout)


def finished(store: StateStore, count: int, tenant: str = "water") -> Callable[[], bool]:
    return lambda: sum(r.state is not RunState.RUNNING for r in history(store, tenant)) >= count


# -- a run's history ------------------------------------------------------------------------


async def test_a_run_is_on_record_as_running_before_it_acts_and_with_its_result_after(
    store: StateStore, clock: FakeClock, schedule: HourlyOnTheHour,
) -> None:
    seen_while_running: list[BackupJobRecord] = []

    async def backup() -> JobOutcome:
        seen_while_running.extend(history(store))
        clock.now += timedelta(minutes=3)
        return JobOutcome(bytes_added=4096, snapshot_id="5e1f0a9b")

    scheduler = make_scheduler(store, clock, schedule)
    scheduler.set_jobs([job(DB, backup)])
    async with running(scheduler):
        await eventually(finished(store, 1))
    [before] = seen_while_running
    [after] = history(store)
    assert (before.job, before.state, before.started_at) == (DB, RunState.RUNNING, START)
    assert (after.id, after.state, after.reason, after.interrupted) == (
        before.id, RunState.SUCCEEDED, None, False,
    )
    assert (after.bytes_added, after.snapshot_id) == (4096, "5e1f0a9b")
    assert after.finished_at == START + timedelta(minutes=3)
    assert after.duration is not None and timedelta(0) <= after.duration < timedelta(seconds=1)


@pytest.mark.parametrize(
    ("raised", "reason", "bytes_added"),
    [
        (JobFailed("wrong password (restic exit 12)"), "wrong password (restic exit 12)", None),
        (JobFailed("incomplete snapshot (restic exit 3)", bytes_added=77),
         "incomplete snapshot (restic exit 3)", 77),
        (RuntimeError("rbd export died"), "RuntimeError: rbd export died", None),
        (TimeoutError(), "TimeoutError", None),  # the job's own, not its deadline
    ],
)
async def test_a_job_that_raises_is_recorded_failed_with_its_reason(
    store: StateStore, clock: FakeClock, schedule: HourlyOnTheHour,
    *, raised: Exception, reason: str, bytes_added: int | None,
) -> None:
    scheduler = make_scheduler(store, clock, schedule)
    scheduler.set_jobs([job(DB, FakeJob(raised))])
    async with running(scheduler):
        await eventually(finished(store, 1))
    [record] = history(store)
    assert (record.state, record.reason, record.bytes_added) == (
        RunState.FAILED, reason, bytes_added,
    )


async def test_a_job_past_its_timeout_is_cancelled_and_recorded_failed(
    store: StateStore, clock: FakeClock, schedule: HourlyOnTheHour,
) -> None:
    hung = FakeJob(hold=True)
    scheduler = make_scheduler(store, clock, schedule)
    scheduler.set_jobs([job(DB, hung, timeout=timedelta(seconds=0.05))])
    async with running(scheduler):
        await eventually(finished(store, 1))
    [record] = history(store)
    assert (record.state, record.reason) == (RunState.FAILED, "timed out after 0.05 s")
    assert hung.cleaned_up == 1
    assert record.duration is not None and record.duration >= timedelta(seconds=0.05)


async def test_a_job_that_ignores_its_deadline_and_returns_is_still_not_a_success(
    store: StateStore, clock: FakeClock, schedule: HourlyOnTheHour,
) -> None:
    stubborn = FakeJob(JobOutcome(bytes_added=1), hold=True, swallow_cancel=True)
    scheduler = make_scheduler(store, clock, schedule)
    scheduler.set_jobs([job(DB, stubborn, timeout=timedelta(seconds=0.05))])
    async with running(scheduler):
        await eventually(finished(store, 1))
    [record] = history(store)
    assert (record.state, record.reason) == (RunState.FAILED, "timed out after 0.05 s")


# -- stopping and starting ------------------------------------------------------------------


async def test_stopping_cancels_running_jobs_and_records_them_cancelled(
    store: StateStore, clock: FakeClock, schedule: HourlyOnTheHour,
) -> None:
    db, buses = FakeJob(hold=True), FakeJob(hold=True, swallow_cancel=True)
    scheduler = make_scheduler(store, clock, schedule)
    scheduler.set_jobs([job(DB, db), job(BUSES, buses)])
    async with running(scheduler):
        await started(db, buses)
    # Stopped: nothing is left running, nothing claims success, and the jobs cleaned up.
    records = history(store) + history(store, "transport")
    assert [(r.job, r.state, r.reason, r.interrupted) for r in records] == [
        (DB, RunState.CANCELLED, "cancelled: the daemon is stopping", True),
        (BUSES, RunState.CANCELLED, "cancelled: the daemon is stopping", True),
    ]
    assert (db.cleaned_up, buses.cleaned_up) == (1, 1)


async def test_runs_a_crashed_daemon_left_running_are_failed_on_start_and_run_again_once(
    store: StateStore, clock: FakeClock, schedule: HourlyOnTheHour,
) -> None:
    # The last daemon ran db at 08:00 and died during the run.
    left = store.start_backup_job(DB, START.replace(minute=0))
    backup = FakeJob()
    scheduler = make_scheduler(store, clock, schedule)
    scheduler.set_jobs([job(DB, backup)])
    async with running(scheduler):
        await eventually(finished(store, 2))
        await settle()
    crashed, again = history(store)
    assert crashed.id == left.id
    assert (crashed.state, crashed.reason, crashed.interrupted) == (
        RunState.FAILED, "daemon stopped during the run", True,
    )
    assert crashed.finished_at == START
    # Its 08:00 slot never completed, so it runs on start, once, not waiting for 09:00.
    assert (again.state, again.started_at, backup.runs) == (RunState.SUCCEEDED, START, 1)


async def test_missed_slots_run_once_on_start_then_the_schedule_resumes(
    store: StateStore, clock: FakeClock, schedule: HourlyOnTheHour,
) -> None:
    # Last run at 03:00; the daemon was down for the 04:00 to 08:00 slots.
    previous = store.start_backup_job(DB, START.replace(hour=3, minute=0))
    store.finish_backup_job(previous.id, RunState.SUCCEEDED, START.replace(hour=3, minute=5))
    backup = FakeJob()
    scheduler = make_scheduler(store, clock, schedule)
    scheduler.set_jobs([job(DB, backup)])
    async with running(scheduler):
        await eventually(lambda: backup.runs == 1)
        await settle()
        assert backup.runs == 1
        assert (DB, START.replace(hour=3, minute=0)) in schedule.asked
        assert scheduler.view().next_due[DB] == START.replace(hour=9, minute=0)
        clock.now = START.replace(hour=9, minute=0)
        await eventually(lambda: backup.runs == 2)
        await settle()
    assert backup.runs == 2
    assert [r.started_at for r in history(store)][1:] == [START, START.replace(hour=9, minute=0)]


async def test_a_job_that_is_not_due_waits_for_its_slot(
    store: StateStore, clock: FakeClock, schedule: HourlyOnTheHour,
) -> None:
    previous = store.start_backup_job(DB, START - timedelta(minutes=10))
    store.finish_backup_job(previous.id, RunState.SUCCEEDED, START - timedelta(minutes=5))
    backup = FakeJob()
    scheduler = make_scheduler(store, clock, schedule)
    scheduler.set_jobs([job(DB, backup)])
    async with running(scheduler):
        await settle()
        assert backup.runs == 0
        clock.now = START.replace(hour=9, minute=0)
        await eventually(lambda: backup.runs == 1)


async def test_a_job_that_cannot_be_put_on_record_does_not_run(
    store: StateStore, clock: FakeClock, schedule: HourlyOnTheHour,
) -> None:
    backup = FakeJob()
    scheduler = make_scheduler(store, clock, schedule)
    async with running(scheduler):
        await settle()  # recovered and read its history; now the database goes away
        store.close()
        scheduler.set_jobs([job(DB, backup)])
        await settle()
    assert backup.runs == 0


# -- admission ------------------------------------------------------------------------------


async def test_the_lock_model_decides_what_runs_together(
    store: StateStore, clock: FakeClock, schedule: HourlyOnTheHour,
) -> None:
    for key in (WEB, PRUNE):  # ran ten minutes ago, so not due before 09:00
        ran_before = store.start_backup_job(key, START - timedelta(minutes=10))
        store.finish_backup_job(ran_before.id, RunState.SUCCEEDED, START)
    db, web, buses, prune = (FakeJob(hold=True) for _ in range(4))
    scheduler = make_scheduler(store, clock, schedule, per_repository=1)
    scheduler.set_jobs([job(DB, db), job(WEB, web), job(BUSES, buses), job(PRUNE, prune)])
    async with running(scheduler):
        # buses, on a repository of its own, runs beside db.
        await started(db, buses)
        assert scheduler.request(PRUNE) and scheduler.request(WEB)
        await eventually(lambda: len(scheduler.view().waiting) == 2)
        assert set(scheduler.view().running) == {DB, BUSES}
        assert [(v.job, v.reason) for v in scheduler.view().waiting] == [
            (PRUNE, "waits: needs repository repo-water to itself; 1 job still running on it"),
            (WEB, "waits behind prune of water, queued earlier on repository repo-water, "
                  "so that it is not starved"),
        ]
        db.release.set()
        await started(prune)
        await settle()
        assert not web.started.is_set()  # the prune holds the repository alone
        prune.release.set()
        await started(web)
        web.release.set()
        buses.release.set()
        await eventually(finished(store, 5))
    assert all(r.state is RunState.SUCCEEDED for r in history(store))


async def test_the_global_limit_holds_across_repositories(
    store: StateStore, clock: FakeClock, schedule: HourlyOnTheHour,
) -> None:
    db, buses = FakeJob(hold=True), FakeJob(hold=True)
    scheduler = make_scheduler(store, clock, schedule, max_jobs=1)
    scheduler.set_jobs([job(DB, db), job(BUSES, buses)])
    async with running(scheduler):
        await started(buses)
        await settle()
        assert not db.started.is_set()
        [waiting] = scheduler.view().waiting
        assert waiting.reason == "waits: 1 of 1 jobs are running, the limit across all repositories"
        buses.release.set()
        await started(db)
        db.release.set()


async def test_a_job_can_be_run_now_once_and_never_beside_itself(
    store: StateStore, clock: FakeClock, schedule: HourlyOnTheHour,
) -> None:
    backup = FakeJob(hold=True)
    scheduler = make_scheduler(store, clock, schedule)
    scheduler.set_jobs([job(DB, backup)])
    async with running(scheduler):
        await started(backup)
        assert scheduler.request(DB) is False  # running already
        backup.release.set()
        await eventually(finished(store, 1))
        await settle()
        assert backup.runs == 1  # not due again before 09:00
        assert scheduler.request(DB) is True
        await eventually(lambda: backup.runs == 2)
        with pytest.raises(KeyError, match="no scheduled job backup of water/rbd/water/web"):
            scheduler.request(WEB)


async def test_a_job_dropped_on_reload_leaves_the_queue(
    store: StateStore, clock: FakeClock, schedule: HourlyOnTheHour,
) -> None:
    db, web = FakeJob(hold=True), FakeJob()
    scheduler = make_scheduler(store, clock, schedule, per_repository=1)
    scheduler.set_jobs([job(DB, db), job(WEB, web)])
    async with running(scheduler):
        await started(db)
        scheduler.set_jobs([job(DB, db)])
        db.release.set()
        await eventually(finished(store, 1))
        await settle()
    assert web.runs == 0


async def test_a_reload_does_not_make_a_job_that_just_ran_due_again(
    store: StateStore, clock: FakeClock, schedule: HourlyOnTheHour,
) -> None:
    backup = FakeJob()
    scheduler = make_scheduler(store, clock, schedule)
    scheduler.set_jobs([job(DB, backup)])
    async with running(scheduler):
        await eventually(finished(store, 1))
        scheduler.set_jobs([job(DB, backup), job(WEB, FakeJob())])
        await eventually(finished(store, 2))
        await settle()
    assert backup.runs == 1
    assert scheduler.view().next_due[DB] == START.replace(hour=9, minute=0)
