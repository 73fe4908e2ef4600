"""The state store's backup job history: one row per run of a tenant's backup, forget, prune,
check or restore test, written when the run starts and again when it ends.

A run is recorded as running before it acts, so a crash leaves a trace that the next start
turns into a failure; nothing here can record a failed or cancelled run without its reason.
"""

import sqlite3
from abc import ABC, abstractmethod
from contextlib import AbstractContextManager
from datetime import datetime, timedelta

from drd.domain.backup_jobs import JobKey, JobKind
from drd.state import rows
from drd.state.errors import AlreadyFinished, RecordNotFound
from drd.state.records import BackupJobRecord, BackupUsage, RunState, to_microseconds

_INSERT = (
    "INSERT INTO backup_jobs (tenant, kind, source, repository, started_at_us, state)"
    " VALUES (?, ?, ?, ?, ?, 'running') RETURNING *"
)
_FINISH = (
    "UPDATE backup_jobs SET state = ?, finished_at_us = ?, reason = ?, bytes_added = ?,"
    " snapshot_id = ?, duration_us = ?, interrupted = ? WHERE id = ? RETURNING *"
)
_MARK_INTERRUPTED = (
    "UPDATE backup_jobs SET state = 'failed', finished_at_us = ?, reason = ?, interrupted = 1"
    " WHERE state = 'running' RETURNING *"
)
_LAST = (
    "SELECT * FROM backup_jobs WHERE tenant = ?1 AND kind = ?2 AND source IS ?3"
    " AND (?4 IS NULL OR state = ?4) ORDER BY id DESC LIMIT 1"
)
# Ids grow in the order runs start, so the greatest id of a group is its latest run.
_LATEST_PER_JOB = (
    "SELECT * FROM backup_jobs WHERE id IN ("
    " SELECT max(id) FROM backup_jobs WHERE (?1 IS NULL OR tenant = ?1)"
    " AND (?2 IS NULL OR kind = ?2) AND (?3 IS NULL OR state = ?3) AND (?4 OR NOT interrupted)"
    " GROUP BY tenant, kind, source)"
    " ORDER BY tenant, kind, source"
)
_HISTORY = (
    "SELECT * FROM backup_jobs WHERE tenant = ?1 AND (?2 IS NULL OR kind = ?2)"
    " AND (?3 IS NULL OR source = ?3) ORDER BY id DESC LIMIT ?4"
)
_USAGE = (
    "SELECT count(*) AS runs, coalesce(sum(state = 'succeeded'), 0) AS succeeded,"
    " coalesce(sum(state = 'cancelled'), 0) AS cancelled,"
    " coalesce(sum(bytes_added), 0) AS bytes_added FROM backup_jobs"
    " WHERE tenant = ?1 AND kind = 'backup' AND state <> 'running'"
    " AND (?2 IS NULL OR started_at_us >= ?2)"
)

_ONE_MICROSECOND = timedelta(microseconds=1)


def _check_finish(
    state: RunState,
    reason: str | None,
    bytes_added: int | None,
    duration: timedelta | None,
    interrupted: bool,
) -> None:
    rows.require_final(state)
    if state is not RunState.SUCCEEDED and not reason:
        raise ValueError(f"a {state.value} run must say why: give a reason")
    if interrupted and state is RunState.SUCCEEDED:
        raise ValueError("an interrupted run did not succeed")
    if bytes_added is not None and bytes_added < 0:
        raise ValueError(f"bytes_added cannot be negative, not {bytes_added}")
    if duration is not None and duration < timedelta(0):
        raise ValueError(f"a duration cannot be negative, not {duration}")


class BackupHistory(ABC):
    """Backup job history queries; StateStore supplies the transactions."""

    @abstractmethod
    def _reading(self) -> AbstractContextManager[sqlite3.Connection]: ...

    @abstractmethod
    def _writing(self) -> AbstractContextManager[sqlite3.Connection]: ...

    def start_backup_job(self, job: JobKey, now: datetime) -> BackupJobRecord:
        """Record that `job` starts now; call it before the job acts."""
        values = (job.tenant, job.kind.value, job.source, job.repository, to_microseconds(now))
        with self._writing() as connection:
            return rows.backup_job_from_row(connection.execute(_INSERT, values).fetchall()[0])

    def finish_backup_job(
        self,
        job_id: int,
        state: RunState,
        now: datetime,
        *,
        reason: str | None = None,
        bytes_added: int | None = None,
        snapshot_id: str | None = None,
        duration: timedelta | None = None,
        interrupted: bool = False,
    ) -> BackupJobRecord:
        """Record how a run ended, once; a failed or cancelled run needs its `reason`."""
        _check_finish(state, reason, bytes_added, duration, interrupted)
        values = (
            state.value,
            to_microseconds(now),
            reason or None,
            bytes_added,
            snapshot_id or None,
            None if duration is None else duration // _ONE_MICROSECOND,
            int(interrupted),
            job_id,
        )
        with self._writing() as connection:
            current = connection.execute(
                "SELECT state FROM backup_jobs WHERE id = ?", (job_id,)
            ).fetchone()
            if current is None:
                raise RecordNotFound(f"there is no backup job {job_id}")
            if current["state"] != RunState.RUNNING:
                was = RunState(current["state"])
                raise AlreadyFinished(f"backup job {job_id} already finished as {was.value}",
                                      state=was)
            return rows.backup_job_from_row(connection.execute(_FINISH, values).fetchall()[0])

    def mark_interrupted_backup_jobs(self, now: datetime, reason: str) -> list[BackupJobRecord]:
        """Fail every run still recorded as running, because the daemon stopped during it.

        Call it on start, before any job runs: a row still running then was left by a daemon
        that died, and it must never stay 'running' nor look like a success.
        """
        rows.require_text(reason=reason)
        with self._writing() as connection:
            marked = connection.execute(_MARK_INTERRUPTED, (to_microseconds(now), reason))
            return sorted((rows.backup_job_from_row(r) for r in marked), key=lambda r: r.id)

    def get_backup_job(self, job_id: int) -> BackupJobRecord | None:
        with self._reading() as connection:
            row = connection.execute("SELECT * FROM backup_jobs WHERE id = ?",
                                     (job_id,)).fetchone()
            return None if row is None else rows.backup_job_from_row(row)

    def last_backup_job(
        self, tenant: str, kind: JobKind, source: str | None, *, state: RunState | None = None
    ) -> BackupJobRecord | None:
        """The latest run of one job, optionally the latest that ended in `state`.

        The last successful backup of a source is `state=SUCCEEDED` with kind BACKUP; the
        last time it was verified restorable, the same with kind RESTORE_TEST.
        """
        values = (tenant, kind.value, source, None if state is None else state.value)
        with self._reading() as connection:
            row = connection.execute(_LAST, values).fetchone()
            return None if row is None else rows.backup_job_from_row(row)

    def latest_backup_jobs(
        self,
        *,
        tenant: str | None = None,
        kind: JobKind | None = None,
        state: RunState | None = None,
        include_interrupted: bool = True,
    ) -> list[BackupJobRecord]:
        """The latest run of every job (tenant, kind, source) matching the filters.

        `state` picks the latest run that ended so, per job. Without `include_interrupted`,
        runs the daemon's stop cut short are passed over: the scheduler's last real run.
        """
        values = (
            tenant,
            None if kind is None else kind.value,
            None if state is None else state.value,
            include_interrupted,
        )
        with self._reading() as connection:
            return [rows.backup_job_from_row(r)
                    for r in connection.execute(_LATEST_PER_JOB, values)]

    def backup_history(
        self,
        tenant: str,
        limit: int,
        *,
        kind: JobKind | None = None,
        source: str | None = None,
    ) -> list[BackupJobRecord]:
        """A tenant's runs, newest first, optionally of one kind or one source."""
        rows.require_limit(limit)
        values = (tenant, None if kind is None else kind.value, source, limit)
        with self._reading() as connection:
            return [rows.backup_job_from_row(r) for r in connection.execute(_HISTORY, values)]

    def backup_usage(self, tenant: str, since: datetime | None = None) -> BackupUsage:
        """A tenant's finished backup runs and the bytes they added, optionally since a time.

        Bytes count from every run that recorded some, failed ones included: restic stored
        that data in the repository either way.
        """
        since_us = None if since is None else to_microseconds(since)
        with self._reading() as connection:
            row = connection.execute(_USAGE, (tenant, since_us)).fetchone()
        return BackupUsage(tenant=tenant, backup_runs=row["runs"],
                           succeeded_runs=row["succeeded"], bytes_added=row["bytes_added"],
                           cancelled_runs=row["cancelled"])
