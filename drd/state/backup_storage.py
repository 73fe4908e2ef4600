"""The state store's metering samples: each measurement of what a tenant's snapshots hold
in its restic repository, kept in order so that the latest is known after a restart and
storage over a period can be integrated for billing.
"""

import sqlite3
from abc import ABC, abstractmethod
from contextlib import AbstractContextManager
from datetime import datetime

from drd.state import rows
from drd.state.records import StoredBytesRecord, to_microseconds

_INSERT = (
    "INSERT INTO backup_storage (tenant, repository, measured_at_us, stored_bytes,"
    " uncompressed_bytes, snapshots) VALUES (?, ?, ?, ?, ?, ?) RETURNING *"
)
# Ids grow in the order samples are written, so the greatest id of a tenant is its latest.
_LATEST = (
    "SELECT * FROM backup_storage WHERE id IN ("
    " SELECT max(id) FROM backup_storage WHERE (?1 IS NULL OR tenant = ?1) GROUP BY tenant)"
    " ORDER BY tenant"
)
_HISTORY = (
    "SELECT * FROM backup_storage WHERE tenant = ?1 AND (?2 IS NULL OR measured_at_us >= ?2)"
    " ORDER BY id DESC LIMIT ?3"
)


class BackupStorage(ABC):
    """Metering samples of stored bytes; StateStore supplies the transactions."""

    @abstractmethod
    def _reading(self) -> AbstractContextManager[sqlite3.Connection]: ...

    @abstractmethod
    def _writing(self) -> AbstractContextManager[sqlite3.Connection]: ...

    def record_stored_bytes(
        self,
        tenant: str,
        repository: str,
        now: datetime,
        *,
        stored_bytes: int,
        uncompressed_bytes: int,
        snapshots: int,
    ) -> StoredBytesRecord:
        """Record one measurement of `tenant`'s snapshots in `repository`, made `now`."""
        rows.require_text(tenant=tenant, repository=repository)
        for name, value in (("stored_bytes", stored_bytes),
                            ("uncompressed_bytes", uncompressed_bytes),
                            ("snapshots", snapshots)):
            if value < 0:
                raise ValueError(f"{name} cannot be negative, not {value}")
        values = (tenant, repository, to_microseconds(now), stored_bytes, uncompressed_bytes,
                  snapshots)
        with self._writing() as connection:
            return rows.stored_bytes_from_row(connection.execute(_INSERT, values).fetchall()[0])

    def latest_stored_bytes(self, tenant: str | None = None) -> list[StoredBytesRecord]:
        """The latest measurement of every tenant (or of one), by tenant name."""
        with self._reading() as connection:
            return [rows.stored_bytes_from_row(r) for r in connection.execute(_LATEST, (tenant,))]

    def stored_bytes_history(
        self, tenant: str, limit: int, *, since: datetime | None = None
    ) -> list[StoredBytesRecord]:
        """A tenant's measurements, newest first, optionally only those made since a time."""
        rows.require_limit(limit)
        since_us = None if since is None else to_microseconds(since)
        with self._reading() as connection:
            return [rows.stored_bytes_from_row(r)
                    for r in connection.execute(_HISTORY, (tenant, since_us, limit))]
