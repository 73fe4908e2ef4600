"""The in-process backup scheduler: starts tenants' restic jobs when due, under the
repository lock model, and keeps their history in the state store.

One loop, on the event loop thread:
- on start, runs still recorded as running were cut short by a daemon that died: they are
  recorded as failed, and the last real run of every job is read back;
- a job is due when `next_due(job, last run, now)` has passed. The last run is when the
  job last started, so however many slots passed while the daemon was down, the job runs
  once on start, and its next slot is counted from then;
- due jobs queue in order of due time; `admit` (drd.domain.repository_locks) decides which
  start; each runs as its own task with its timeout (drd.backup.job_run).

Stopping is cancelling `run`: every running job is cancelled and recorded as cancelled
before `run` returns. A job cut short like that (or by a crash) runs again on the next
start instead of waiting for its next slot.
"""

import asyncio
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from typing import Protocol

import structlog

from drd.backup.job_run import Clock, ScheduledJob, run_recorded
from drd.domain.backup_jobs import JobKey, JobKind
from drd.domain.repository_locks import Admission, AdmissionLimits, Verdict, admit
from drd.state import BackupJobRecord, StateStore, StateStoreError

log = structlog.get_logger()

INTERRUPTED_REASON = "daemon stopped during the run"
# The loop wakes at least this often, so a wall clock that jumps is noticed within it.
POLL_SECONDS = 30.0

_HistoryKey = tuple[str, JobKind, str | None]
# Told of every run that ended and was recorded (metering, alerts); not of cancelled ones.
FinishedHook = Callable[[BackupJobRecord], Awaitable[None]]


class NextDue(Protocol):
    """When a job is next due, given when it last ran; None if it has no schedule.

    `last_run` is when the job last started (None if it never ran), so the answer is the
    first slot after it: a job whose slots passed while the daemon was down is due once,
    not once per slot. Jitter belongs inside: the same inputs must give the same time.
    """

    def __call__(self, job: JobKey, last_run: datetime | None, now: datetime) -> datetime | None:
        ...


@dataclass(frozen=True, slots=True)
class SchedulerView:
    """What the scheduler is doing, for the API: what runs, what waits and why, what is next."""

    running: tuple[JobKey, ...]
    waiting: tuple[Verdict, ...]
    next_due: Mapping[JobKey, datetime | None]


def utc_now() -> datetime:
    return datetime.now(UTC)


def _history_key(job: JobKey) -> _HistoryKey:
    # History is per job and not per repository: moving a source to a new repository does
    # not make its backup due at once.
    return (job.tenant, job.kind, job.source)


def _queue_order(item: tuple[JobKey, datetime]) -> tuple[datetime, str, str, str]:
    job, due = item
    return (due, job.tenant, job.kind.value, job.source or "")


class BackupScheduler:
    """Runs tenants' backup jobs when due, no more at once than the lock model admits."""

    def __init__(
        self,
        store: StateStore,
        limits: AdmissionLimits,
        next_due: NextDue,
        *,
        clock: Clock = utc_now,
        poll_seconds: float = POLL_SECONDS,
        on_finished: FinishedHook | None = None,
    ) -> None:
        self._store = store
        self._limits = limits
        self._next_due = next_due
        self._clock = clock
        self._poll_seconds = poll_seconds
        self._on_finished = on_finished
        self._jobs: dict[JobKey, ScheduledJob] = {}
        self._last_run: dict[_HistoryKey, datetime] = {}
        self._due: dict[JobKey, datetime | None] = {}
        self._queue: list[JobKey] = []
        self._running: dict[JobKey, ScheduledJob] = {}
        self._admission = Admission(())
        self._history_loaded = False
        self._wake = asyncio.Event()

    def set_jobs(self, jobs: Iterable[ScheduledJob]) -> None:
        """Replace the scheduled jobs (on start and on reload).

        A queued job that is gone leaves the queue; a running one finishes its run.
        """
        self._jobs = {job.key: job for job in jobs}
        self._queue = [key for key in self._queue if key in self._jobs]
        if self._history_loaded:
            self._refresh_due(self._clock())
        self._wake.set()

    def request(self, key: JobKey) -> bool:
        """Queue a job to run now, outside its schedule; False if it is queued or running."""
        if key not in self._jobs:
            raise KeyError(f"there is no scheduled job {key} in repository {key.repository}")
        if key in self._queue or key in self._running:
            return False
        self._queue.append(key)
        self._wake.set()
        return True

    def job_keys(self) -> tuple[JobKey, ...]:
        """Every job scheduled, due or not."""
        return tuple(self._jobs)

    def view(self) -> SchedulerView:
        return SchedulerView(
            running=tuple(self._running),
            waiting=self._admission.waiting,
            next_due=dict(self._due),
        )

    async def run(self) -> None:
        """Recover from the last stop, then schedule until cancelled."""
        await self._recover()
        async with asyncio.TaskGroup() as group:
            while True:
                self._wake.clear()
                now = self._clock()
                self._enqueue_due(now)
                self._start_admitted(group, now)
                await self._sleep(now)

    async def _recover(self) -> None:
        now = self._clock()
        interrupted = await asyncio.to_thread(
            self._store.mark_interrupted_backup_jobs, now, INTERRUPTED_REASON)
        for record in interrupted:
            log.error("backup job was running when the daemon stopped; recorded as failed",
                      job=str(record.job), run=record.id, started_at=record.started_at)
        latest = await asyncio.to_thread(
            partial(self._store.latest_backup_jobs, include_interrupted=False))
        self._last_run = {_history_key(r.job): r.started_at for r in latest}
        self._history_loaded = True
        self._refresh_due(now)

    def _refresh_due(self, now: datetime) -> None:
        self._due = {key: self._next_due(key, self._last_run.get(_history_key(key)), now)
                     for key in self._jobs}

    def _enqueue_due(self, now: datetime) -> None:
        due = [(key, at) for key, at in self._due.items()
               if at is not None and at <= now
               and key not in self._running and key not in self._queue]
        self._queue.extend(key for key, _ in sorted(due, key=_queue_order))

    def _start_admitted(self, group: asyncio.TaskGroup, now: datetime) -> None:
        previous = {v.job: v.reason for v in self._admission.waiting}
        self._admission = admit(list(self._running), self._queue, self._limits)
        for verdict in self._admission.verdicts:
            if verdict.starts:
                self._start(group, self._jobs[verdict.job], now, verdict.reason)
            elif previous.get(verdict.job) != verdict.reason:
                log.info("backup job waits", job=str(verdict.job), reason=verdict.reason)

    def _start(self, group: asyncio.TaskGroup, job: ScheduledJob, now: datetime,
               reason: str) -> None:
        log.info("backup job admitted", job=str(job.key), reason=reason)
        self._queue.remove(job.key)
        self._running[job.key] = job
        # Counted from now, so the slots this run covers are not due again after it.
        self._last_run[_history_key(job.key)] = now
        self._due[job.key] = self._next_due(job.key, now, now)
        group.create_task(self._execute(job), name=f"backup job: {job.key}")

    async def _execute(self, job: ScheduledJob) -> None:
        try:
            record = await run_recorded(job, self._store, self._clock)
            if self._on_finished is not None:
                await self._on_finished(record)
        except StateStoreError:
            # Without its start on record the job did not run; without its end the next
            # start records it as failed. Either way no success is claimed.
            log.exception("backup job history could not be written", job=str(job.key))
        finally:
            del self._running[job.key]
            self._wake.set()

    async def _sleep(self, now: datetime) -> None:
        upcoming = [at for key, at in self._due.items()
                    if at is not None and key not in self._running and key not in self._queue]
        seconds = self._poll_seconds
        if upcoming:
            seconds = min(seconds, max((min(upcoming) - now).total_seconds(), 0.0))
        try:
            async with asyncio.timeout(seconds):
                await self._wake.wait()
        except TimeoutError:
            pass
