"""One run of a backup job, between its two history records.

The start is recorded before the job acts and the end after it stops, whatever stopped it:
success, failure, its deadline or the daemon's stop. Only an action that returns a
JobOutcome in time, uncancelled, is a success; every other ending is failed or cancelled,
with a reason an operator can act on.
"""

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import TypeVar

import structlog

from drd.domain.backup_jobs import JobKey
from drd.state import BackupJobRecord, RunState, StateStore

log = structlog.get_logger()
T = TypeVar("T")
Clock = Callable[[], datetime]

CANCELLED_REASON = "cancelled: the daemon is stopping"


@dataclass(frozen=True, slots=True)
class JobOutcome:
    """What a successful job reports: what a backup added, and the snapshot it made."""

    bytes_added: int | None = None
    snapshot_id: str | None = None


class JobFailed(Exception):
    """A job's own failure, with restic's reason and whatever it did before failing."""

    def __init__(
        self, reason: str, *, bytes_added: int | None = None, snapshot_id: str | None = None
    ) -> None:
        super().__init__(reason)
        self.reason = reason or "failed without a reason"
        self.bytes_added = bytes_added
        self.snapshot_id = snapshot_id


# The work itself, supplied by the restic adapter's jobs. It returns on success and raises
# on failure (JobFailed for the failures it understands); when cancelled it stops its
# processes and cleans up (RBD snapshots, scratch images) before re-raising.
JobAction = Callable[[], Awaitable[JobOutcome]]


@dataclass(frozen=True, slots=True)
class ScheduledJob:
    """A job the scheduler may run: its key, its work, and how long it may take."""

    key: JobKey
    action: JobAction
    timeout: timedelta

    def __post_init__(self) -> None:
        if self.timeout <= timedelta(0):
            raise ValueError(f"{self.key}: a job's timeout must be positive, not {self.timeout}")


@dataclass(frozen=True, slots=True)
class _Ending:
    state: RunState
    reason: str | None = None
    bytes_added: int | None = None
    snapshot_id: str | None = None
    interrupted: bool = False


_STOPPED = _Ending(RunState.CANCELLED, CANCELLED_REASON, interrupted=True)


async def run_recorded(job: ScheduledJob, store: StateStore, clock: Clock) -> BackupJobRecord:
    """Record the start of `job`, run it under its timeout, record how it ended.

    Cancelling this (the daemon stopping) cancels the job, records it as cancelled, then
    re-raises. A StateStoreError from the start record means the job did not run.
    """
    started, cancelled = await _see_through(partial(store.start_backup_job, job.key, clock()))
    if cancelled:
        await _record_end(store, clock, started, _STOPPED, None)
        raise asyncio.CancelledError
    log.info("backup job started", job=str(job.key), repository=job.key.repository,
             run=started.id)
    began = time.monotonic()
    try:
        ending = await _run_under_deadline(job)
    except asyncio.CancelledError:
        await _record_end(store, clock, started, _STOPPED, time.monotonic() - began)
        raise
    return await _record_end(store, clock, started, ending, time.monotonic() - began)


async def _run_under_deadline(job: ScheduledJob) -> _Ending:
    seconds = job.timeout.total_seconds()
    timed_out = f"timed out after {seconds:g} s"
    deadline = asyncio.timeout(seconds)
    try:
        async with deadline:
            outcome = await job.action()
    except JobFailed as failure:
        reason = f"{timed_out}: {failure.reason}" if deadline.expired() else failure.reason
        return _Ending(RunState.FAILED, reason, failure.bytes_added, failure.snapshot_id)
    except TimeoutError as error:
        if deadline.expired():
            return _Ending(RunState.FAILED, timed_out)
        return _unexpected(job, error)
    except Exception as error:
        return _unexpected(job, error)
    if deadline.expired():
        # The action swallowed the cancellation its deadline sent and returned anyway: it
        # still did not finish in time, whatever it returned.
        return _Ending(RunState.FAILED, timed_out)
    current = asyncio.current_task()
    if current is not None and current.cancelling():
        # Likewise for the daemon's stop: a swallowed cancellation is still a stop.
        raise asyncio.CancelledError
    if not isinstance(outcome, JobOutcome):
        return _Ending(RunState.FAILED, f"the job returned {outcome!r}, not an outcome")
    return _Ending(RunState.SUCCEEDED, None, outcome.bytes_added, outcome.snapshot_id)


def _unexpected(job: ScheduledJob, error: Exception) -> _Ending:
    # Not a failure the job understood, so the log keeps the traceback for whoever fixes it.
    log.error("backup job raised", job=str(job.key), exc_info=error)
    text = str(error)
    return _Ending(RunState.FAILED, f"{type(error).__name__}: {text}" if text
                   else type(error).__name__)


async def _record_end(
    store: StateStore,
    clock: Clock,
    started: BackupJobRecord,
    ending: _Ending,
    seconds: float | None,
) -> BackupJobRecord:
    finish = partial(
        store.finish_backup_job, started.id, ending.state, clock(), reason=ending.reason,
        bytes_added=ending.bytes_added, snapshot_id=ending.snapshot_id,
        duration=None if seconds is None else timedelta(seconds=seconds),
        interrupted=ending.interrupted,
    )
    finished, cancelled = await _see_through(finish)
    fields = {"job": str(finished.job), "run": finished.id, "result": finished.state.value}
    if finished.state is RunState.SUCCEEDED:
        log.info("backup job succeeded", **fields, bytes_added=finished.bytes_added,
                 snapshot_id=finished.snapshot_id)
    elif finished.state is RunState.CANCELLED:
        log.warning("backup job cancelled", **fields, reason=finished.reason)
    else:
        log.error("backup job failed", **fields, reason=finished.reason)
    if cancelled:
        raise asyncio.CancelledError
    return finished


async def _see_through(call: Callable[[], T]) -> tuple[T, bool]:
    """Run a state store call in a worker thread and wait for it even through cancellation.

    Returns its result and whether a cancellation arrived meanwhile, which the caller then
    honours: a stop that comes a few milliseconds late is better than a history row that
    the daemon wrote but no longer knows about, left 'running'.
    """
    task = asyncio.ensure_future(asyncio.to_thread(call))
    cancelled = False
    while not task.done():
        try:
            await asyncio.shield(task)
        except asyncio.CancelledError:
            cancelled = True
    return task.result(), cancelled
