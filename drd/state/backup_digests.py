"""The state store's image digests: the sha256 of every RBD image backup, by restic
snapshot ID, recorded when the backup ends and read back by restore tests.

A digest is written once: recording the same snapshot again with the same facts is a
no-op (a retried write), with different facts an error, since one of the two is wrong.
"""

import re
import sqlite3
from abc import ABC, abstractmethod
from contextlib import AbstractContextManager

from drd.state import rows
from drd.state.errors import StateStoreError
from drd.state.records import BackupDigest, to_microseconds

_HEX64 = re.compile(r"^[0-9a-f]{64}$")

_INSERT = (
    "INSERT INTO backup_digests (snapshot_id, tenant, source, pool, namespace, image,"
    " file_name, sha256, total_bytes, taken_at_us) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    " ON CONFLICT (snapshot_id) DO NOTHING"
)
_BY_SOURCE = (
    "SELECT * FROM backup_digests WHERE tenant = ?1 AND (?2 IS NULL OR source = ?2)"
    " ORDER BY taken_at_us DESC, snapshot_id LIMIT ?3"
)


class DigestConflict(StateStoreError):
    """A snapshot's digest was recorded before with other facts."""


def _check(digest: BackupDigest) -> None:
    for name in ("snapshot_id", "sha256"):
        if not _HEX64.match(getattr(digest, name)):
            raise ValueError(f"{name} must be 64 lowercase hex digits, not "
                             f"{getattr(digest, name)!r}")
    rows.require_text(tenant=digest.tenant, source=digest.source, pool=digest.image.pool,
                      image=digest.image.name, file_name=digest.file_name)
    if "/" in digest.file_name:
        raise ValueError(f"file_name is a name inside the snapshot, not a path: "
                         f"{digest.file_name!r}")
    if digest.total_bytes < 0:
        raise ValueError(f"total_bytes cannot be negative, not {digest.total_bytes}")


class BackupDigests(ABC):
    """Image digest queries; StateStore supplies the transactions."""

    @abstractmethod
    def _reading(self) -> AbstractContextManager[sqlite3.Connection]: ...

    @abstractmethod
    def _writing(self) -> AbstractContextManager[sqlite3.Connection]: ...

    def record_backup_digest(self, digest: BackupDigest) -> BackupDigest:
        """Keep the sha256 of one backed-up snapshot; DigestConflict if it was recorded
        before with anything different."""
        _check(digest)
        image = digest.image
        values = (digest.snapshot_id, digest.tenant, digest.source, image.pool,
                  image.namespace, image.name, digest.file_name, digest.sha256,
                  digest.total_bytes, to_microseconds(digest.taken_at))
        with self._writing() as connection:
            connection.execute(_INSERT, values)
            row = connection.execute("SELECT * FROM backup_digests WHERE snapshot_id = ?",
                                     (digest.snapshot_id,)).fetchone()
        stored = rows.backup_digest_from_row(row)
        if stored != digest:
            raise DigestConflict(f"snapshot {digest.snapshot_id} already has a digest with "
                                 f"other facts: {stored} (new: {digest})")
        return stored

    def backup_digest(self, snapshot_id: str) -> BackupDigest | None:
        """The digest recorded for a restic snapshot (its full 64-digit ID), if any."""
        with self._reading() as connection:
            row = connection.execute("SELECT * FROM backup_digests WHERE snapshot_id = ?",
                                     (snapshot_id,)).fetchone()
        return None if row is None else rows.backup_digest_from_row(row)

    def backup_digests(self, tenant: str, *, source: str | None = None,
                       limit: int = 100) -> list[BackupDigest]:
        """A tenant's digests, newest first, optionally of one source: a restore test
        samples the snapshots to verify from these."""
        rows.require_limit(limit)
        with self._reading() as connection:
            return [rows.backup_digest_from_row(row)
                    for row in connection.execute(_BY_SOURCE, (tenant, source, limit))]
