"""The daemon's state store: one SQLite database in WAL mode under the state dir.

Every write is a single BEGIN IMMEDIATE transaction, so it lands whole or not at all, and a
compare-and-set on an epoch cannot interleave with another writer, in this process or any
other. The store never reads the clock: callers pass `now`.
"""

import sqlite3
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from drd.state import rows
from drd.state.backup_history import BackupHistory
from drd.state.backup_images import BackupImages
from drd.state.backup_storage import BackupStorage
from drd.state.database_file import connect_existing, create_database, database_path
from drd.state.errors import AlreadyFinished, EpochConflict, RecordNotFound, StateStoreError
from drd.state.records import (
    AuditRecord,
    AuditResult,
    EpochRecord,
    JobRecord,
    RunRecord,
    RunState,
    to_microseconds,
)

_INSERT_RUN = (
    "INSERT INTO runs (kind, subject, started_at_us, state, detail)"
    " VALUES (?, ?, ?, 'running', ?) RETURNING *"
)
_INSERT_JOB = (
    "INSERT INTO jobs (run_id, name, started_at_us, state, detail)"
    " VALUES (?, ?, ?, 'running', ?) RETURNING *"
)
_INSERT_AUDIT = (
    "INSERT INTO audit (at_us, actor, role, action, target, result, detail)"
    " VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING *"
)
_FINISH_RUN = (
    "UPDATE runs SET state = ?, finished_at_us = ?, detail = ? WHERE id = ? RETURNING *"
)
_FINISH_JOB = (
    "UPDATE jobs SET state = ?, finished_at_us = ?, detail = ? WHERE id = ? RETURNING *"
)
_UPSERT_EPOCH = (
    "INSERT INTO epochs (protection_group, epoch, primary_site, updated_at_us, updated_by)"
    " VALUES (?, ?, ?, ?, ?)"
    " ON CONFLICT (protection_group) DO UPDATE SET epoch = excluded.epoch,"
    " primary_site = excluded.primary_site, updated_at_us = excluded.updated_at_us,"
    " updated_by = excluded.updated_by"
    " RETURNING *"
)


class StateStore(BackupHistory, BackupStorage, BackupImages):
    """Run and job history, backup job history, metering samples and image backups, the
    audit log and protection-group epochs of one site.

    Safe to share between threads (the daemon calls it through asyncio.to_thread): one
    connection, used under one lock.
    """

    def __init__(self, connection: sqlite3.Connection, path: Path, site_name: str) -> None:
        """Use `initialise` or `open`; this only wraps an already checked connection."""
        self._connection: sqlite3.Connection | None = connection
        self._lock = threading.Lock()
        self.path = path
        self.site_name = site_name

    @classmethod
    def initialise(cls, state_dir: Path, site_name: str) -> Self:
        """Create the state database of a new site and open it; refuses if one exists."""
        create_database(database_path(state_dir), site_name)
        return cls.open(state_dir, site_name)

    @classmethod
    def open(cls, state_dir: Path, site_name: str) -> Self:
        """Open, check and migrate this site's existing state database."""
        path = database_path(state_dir)
        return cls(connect_existing(path, site_name), path, site_name)

    def close(self) -> None:
        """Close the database; later calls raise StateStoreError. Closing twice is fine."""
        with self._lock:
            if self._connection is not None:
                self._connection.close()
                self._connection = None

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    # -- transactions -------------------------------------------------------------------

    def _live_connection(self) -> sqlite3.Connection:
        if self._connection is None:
            raise StateStoreError(f"the state store {self.path} is closed")
        return self._connection

    @contextmanager
    def _reading(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            try:
                yield self._live_connection()
            except sqlite3.Error as error:
                raise StateStoreError(f"reading {self.path} failed: {error}") from error

    @contextmanager
    def _writing(self) -> Iterator[sqlite3.Connection]:
        """One IMMEDIATE transaction: committed if the block completes, rolled back if not."""
        with self._lock:
            connection = self._live_connection()
            try:
                connection.execute("BEGIN IMMEDIATE")
                yield connection
                connection.execute("COMMIT")
            except BaseException as error:
                # SQLite rolls back by itself on some errors (disk full, I/O), so ask first.
                if connection.in_transaction:
                    connection.execute("ROLLBACK")
                if isinstance(error, sqlite3.Error):
                    raise StateStoreError(f"writing {self.path} failed: {error}") from error
                raise

    # -- runs and jobs ------------------------------------------------------------------

    def start_run(
        self, kind: str, subject: str, now: datetime, detail: Mapping[str, Any] | None = None
    ) -> RunRecord:
        """Record that a run (drill, failover, backup, ...) started."""
        rows.require_text(kind=kind)
        values = (kind, subject, to_microseconds(now), rows.encode_detail(detail))
        with self._writing() as connection:
            return rows.run_from_row(connection.execute(_INSERT_RUN, values).fetchall()[0])

    def finish_run(
        self,
        run_id: int,
        state: RunState,
        now: datetime,
        detail: Mapping[str, Any] | None = None,
    ) -> RunRecord:
        """Record how a run ended; `detail` is merged over the detail it started with."""
        rows.require_final(state)
        finished_at_us = to_microseconds(now)
        rows.encode_detail(detail)  # refuse bad detail before touching the database
        with self._writing() as connection:
            current = connection.execute("SELECT * FROM runs WHERE id = ?", (run_id,)).fetchone()
            merged = self._merge_for_finish(current, f"run {run_id}", detail)
            values = (state.value, finished_at_us, merged, run_id)
            return rows.run_from_row(connection.execute(_FINISH_RUN, values).fetchall()[0])

    def get_run(self, run_id: int) -> RunRecord | None:
        with self._reading() as connection:
            row = connection.execute("SELECT * FROM runs WHERE id = ?", (run_id,)).fetchone()
            return None if row is None else rows.run_from_row(row)

    def list_runs(
        self,
        limit: int,
        kind: str | None = None,
        *,
        subject: str | None = None,
        state: RunState | None = None,
    ) -> list[RunRecord]:
        """The latest runs first, optionally only of one kind, subject or state."""
        rows.require_limit(limit)
        query = (
            "SELECT * FROM runs WHERE (?1 IS NULL OR kind = ?1) AND (?2 IS NULL OR subject = ?2)"
            " AND (?3 IS NULL OR state = ?3) ORDER BY id DESC LIMIT ?4"
        )
        values = (kind, subject, None if state is None else state.value, limit)
        with self._reading() as connection:
            return [rows.run_from_row(row) for row in connection.execute(query, values)]

    def start_job(
        self,
        name: str,
        now: datetime,
        run_id: int | None = None,
        detail: Mapping[str, Any] | None = None,
    ) -> JobRecord:
        """Record that a job started, on its own or as part of run `run_id`."""
        rows.require_text(name=name)
        values = (run_id, name, to_microseconds(now), rows.encode_detail(detail))
        with self._writing() as connection:
            if run_id is not None and self._run_row(connection, run_id) is None:
                raise RecordNotFound(f"there is no run {run_id} to attach job {name!r} to")
            return rows.job_from_row(connection.execute(_INSERT_JOB, values).fetchall()[0])

    def finish_job(
        self,
        job_id: int,
        state: RunState,
        now: datetime,
        detail: Mapping[str, Any] | None = None,
    ) -> JobRecord:
        """Record how a job ended; `detail` is merged over the detail it started with."""
        rows.require_final(state)
        finished_at_us = to_microseconds(now)
        rows.encode_detail(detail)
        with self._writing() as connection:
            current = connection.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
            merged = self._merge_for_finish(current, f"job {job_id}", detail)
            values = (state.value, finished_at_us, merged, job_id)
            return rows.job_from_row(connection.execute(_FINISH_JOB, values).fetchall()[0])

    def list_jobs(self, limit: int, run_id: int | None = None) -> list[JobRecord]:
        """The latest jobs first, optionally only those of one run."""
        rows.require_limit(limit)
        query = "SELECT * FROM jobs WHERE (?1 IS NULL OR run_id = ?1) ORDER BY id DESC LIMIT ?2"
        with self._reading() as connection:
            return [rows.job_from_row(row) for row in connection.execute(query, (run_id, limit))]

    @staticmethod
    def _run_row(connection: sqlite3.Connection, run_id: int) -> sqlite3.Row | None:
        row: sqlite3.Row | None = connection.execute(
            "SELECT * FROM runs WHERE id = ?", (run_id,)
        ).fetchone()
        return row

    @staticmethod
    def _merge_for_finish(
        current: sqlite3.Row | None, what: str, detail: Mapping[str, Any] | None
    ) -> str:
        """The detail to store when finishing `current`, or why it cannot be finished."""
        if current is None:
            raise RecordNotFound(f"there is no {what}")
        if current["state"] != RunState.RUNNING:
            state = RunState(current["state"])
            raise AlreadyFinished(f"{what} already finished as {state.value}", state=state)
        return rows.encode_detail({**rows.decode_detail(current["detail"]), **(detail or {})})

    # -- audit log ----------------------------------------------------------------------

    def audit(
        self,
        *,
        actor: str,
        role: str,
        action: str,
        target: str,
        result: AuditResult,
        now: datetime,
        detail: Mapping[str, Any] | None = None,
    ) -> AuditRecord:
        """Append one operator action to the audit log."""
        rows.require_text(actor=actor, action=action)
        values = (
            to_microseconds(now), actor, role, action, target, result.value,
            rows.encode_detail(detail),
        )
        with self._writing() as connection:
            return rows.audit_from_row(connection.execute(_INSERT_AUDIT, values).fetchall()[0])

    def audit_log(self, limit: int, since: datetime | None = None) -> list[AuditRecord]:
        """The latest audit entries first, optionally only those at or after `since`."""
        rows.require_limit(limit)
        since_us = None if since is None else to_microseconds(since)
        query = "SELECT * FROM audit WHERE (?1 IS NULL OR at_us >= ?1) ORDER BY id DESC LIMIT ?2"
        with self._reading() as connection:
            return [rows.audit_from_row(r) for r in connection.execute(query, (since_us, limit))]

    # -- epochs -------------------------------------------------------------------------

    def epoch(self, group: str) -> EpochRecord | None:
        """The stored epoch of a protection group, or None if it never had one."""
        with self._reading() as connection:
            return self._epoch_in(connection, group)

    def epochs(self) -> list[EpochRecord]:
        """Every protection group's epoch, by group name."""
        with self._reading() as connection:
            query = "SELECT * FROM epochs ORDER BY protection_group"
            return [rows.epoch_from_row(row) for row in connection.execute(query)]

    def advance_epoch(
        self,
        group: str,
        *,
        expected_epoch: int | None,
        new_primary: str,
        now: datetime,
        by: str,
    ) -> EpochRecord:
        """Make `new_primary` primary at the next epoch, if the epoch is still `expected_epoch`.

        A compare-and-set: `expected_epoch` None means the group has no epoch yet. When another
        writer got there first, raises EpochConflict carrying what is stored now.
        """
        rows.require_text(group=group, new_primary=new_primary, by=by)
        now_us = to_microseconds(now)
        with self._writing() as connection:
            current = self._epoch_in(connection, group)
            stored = None if current is None else current.epoch
            if stored != expected_epoch:
                raise EpochConflict(
                    f"protection group {group!r} is at epoch {stored}, not the expected "
                    f"{expected_epoch}; another promotion happened first",
                    current=current,
                )
            values = (group, (stored or 0) + 1, new_primary, now_us, by)
            return rows.epoch_from_row(connection.execute(_UPSERT_EPOCH, values).fetchall()[0])

    def accept_epoch(
        self, group: str, *, epoch: int, primary: str, now: datetime, by: str
    ) -> bool:
        """Store an epoch learnt from a peer if it is newer than ours; return whether it was.

        The same epoch naming a different primary means two sites promoted from the same
        epoch, which the quorum must never allow: that raises EpochConflict, loudly.
        """
        rows.require_text(group=group, primary=primary, by=by)
        if epoch < 1:
            raise ValueError(f"epochs start at 1, not {epoch}")
        now_us = to_microseconds(now)
        with self._writing() as connection:
            current = self._epoch_in(connection, group)
            if current is not None and epoch <= current.epoch:
                if epoch == current.epoch and primary != current.primary_site:
                    raise EpochConflict(
                        f"protection group {group!r}: epoch {epoch} names {primary!r} as "
                        f"primary, but this site holds epoch {epoch} with "
                        f"{current.primary_site!r}; two sites promoted from the same epoch",
                        current=current,
                    )
                return False
            connection.execute(_UPSERT_EPOCH, (group, epoch, primary, now_us, by)).fetchall()
            return True

    @staticmethod
    def _epoch_in(connection: sqlite3.Connection, group: str) -> EpochRecord | None:
        query = "SELECT * FROM epochs WHERE protection_group = ?"
        row = connection.execute(query, (group,)).fetchone()
        return None if row is None else rows.epoch_from_row(row)
