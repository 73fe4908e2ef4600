"""The state store's image backups: what a restore test needs of every RBD image backup,
by restic snapshot ID, recorded when the backup ends.

A record says which tenant, source and image a snapshot holds, the file name inside it
and the image's size at the snapshot: restic's own per-chunk sha256s (the snapshot's
file node and the repository index) say what the bytes were. The record is written
once: recording the same snapshot again with the same facts is a no-op (a retried
write), with different facts an error, since one of the two is wrong.

`sha256` is the sha256 of the image's whole content in the snapshot, once known: noted
by the export relay drd ran before schema version 5, or by the first restore test that
verified the snapshot chunk by chunk. It is set once and never changed.
"""

import re
import sqlite3
from abc import ABC, abstractmethod
from contextlib import AbstractContextManager

from drd.state import rows
from drd.state.errors import RecordNotFound, StateStoreError
from drd.state.records import ImageBackupRecord, to_microseconds

_HEX64 = re.compile(r"^[0-9a-f]{64}$")

_INSERT = (
    "INSERT INTO backup_images (snapshot_id, tenant, source, pool, namespace, image,"
    " file_name, image_bytes, taken_at_us, sha256) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    " ON CONFLICT (snapshot_id) DO NOTHING"
)
_SELECT = "SELECT * FROM backup_images WHERE snapshot_id = ?"
_SET_SHA256 = "UPDATE backup_images SET sha256 = ?2 WHERE snapshot_id = ?1 AND sha256 IS NULL"
_BY_SOURCE = (
    "SELECT * FROM backup_images WHERE tenant = ?1 AND (?2 IS NULL OR source = ?2)"
    " ORDER BY taken_at_us DESC, snapshot_id LIMIT ?3"
)


class ImageBackupConflict(StateStoreError):
    """A snapshot was recorded before with other facts."""


def _check_hex(name: str, value: str) -> None:
    if not _HEX64.match(value):
        raise ValueError(f"{name} must be 64 lowercase hex digits, not {value!r}")


def _check(record: ImageBackupRecord) -> None:
    _check_hex("snapshot_id", record.snapshot_id)
    if record.sha256 is not None:
        _check_hex("sha256", record.sha256)
    rows.require_text(tenant=record.tenant, source=record.source, pool=record.image.pool,
                      image=record.image.name, file_name=record.file_name)
    if "/" in record.file_name:
        raise ValueError(f"file_name is a name inside the snapshot, not a path: "
                         f"{record.file_name!r}")
    if record.image_bytes < 0:
        raise ValueError(f"image_bytes cannot be negative, not {record.image_bytes}")


class BackupImages(ABC):
    """Image backup queries; StateStore supplies the transactions."""

    @abstractmethod
    def _reading(self) -> AbstractContextManager[sqlite3.Connection]: ...

    @abstractmethod
    def _writing(self) -> AbstractContextManager[sqlite3.Connection]: ...

    def record_image_backup(self, record: ImageBackupRecord) -> ImageBackupRecord:
        """Keep what one backed-up snapshot holds; ImageBackupConflict if it was recorded
        before with anything different."""
        _check(record)
        image = record.image
        values = (record.snapshot_id, record.tenant, record.source, image.pool,
                  image.namespace, image.name, record.file_name, record.image_bytes,
                  to_microseconds(record.taken_at), record.sha256)
        with self._writing() as connection:
            connection.execute(_INSERT, values)
            row = connection.execute(_SELECT, (record.snapshot_id,)).fetchone()
        stored = rows.image_backup_from_row(row)
        if stored != record:
            raise ImageBackupConflict(f"snapshot {record.snapshot_id} was already recorded "
                                      f"with other facts: {stored} (new: {record})")
        return stored

    def record_image_sha256(self, snapshot_id: str, sha256: str) -> ImageBackupRecord:
        """Note the sha256 of the snapshot's image content, verified by a restore test;
        ImageBackupConflict if another one is known, RecordNotFound if the snapshot was
        never recorded."""
        _check_hex("sha256", sha256)
        with self._writing() as connection:
            connection.execute(_SET_SHA256, (snapshot_id, sha256))
            row = connection.execute(_SELECT, (snapshot_id,)).fetchone()
        if row is None:
            raise RecordNotFound(f"snapshot {snapshot_id} has no image backup on record")
        stored = rows.image_backup_from_row(row)
        if stored.sha256 != sha256:
            raise ImageBackupConflict(f"snapshot {snapshot_id} already has the sha256 "
                                      f"{stored.sha256}, not {sha256}")
        return stored

    def image_backup(self, snapshot_id: str) -> ImageBackupRecord | None:
        """The record of a restic snapshot (its full 64-digit ID), if any."""
        with self._reading() as connection:
            row = connection.execute(_SELECT, (snapshot_id,)).fetchone()
        return None if row is None else rows.image_backup_from_row(row)

    def image_backups(self, tenant: str, *, source: str | None = None,
                      limit: int = 100) -> list[ImageBackupRecord]:
        """A tenant's image backups, newest first, optionally of one source: a restore
        test samples the snapshots to verify from these."""
        rows.require_limit(limit)
        with self._reading() as connection:
            return [rows.image_backup_from_row(row)
                    for row in connection.execute(_BY_SOURCE, (tenant, source, limit))]
