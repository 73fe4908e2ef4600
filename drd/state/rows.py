"""Turning the state database's rows into records, and arguments into checked column values."""

import json
import sqlite3
from collections.abc import Mapping
from datetime import datetime, timedelta
from types import MappingProxyType
from typing import Any

from drd.domain.backup_jobs import JobKind
from drd.domain.replication_plan import ImageRef
from drd.state.records import (
    AuditRecord,
    AuditResult,
    BackupJobRecord,
    EpochRecord,
    ImageBackupRecord,
    JobRecord,
    RunRecord,
    RunState,
    StoredBytesRecord,
    from_microseconds,
)


def require_limit(limit: int) -> None:
    if limit < 1:
        raise ValueError(f"limit must be at least 1, not {limit}")


def require_text(**fields: str) -> None:
    for name, value in fields.items():
        if not value:
            raise ValueError(f"{name} must not be empty")


def require_final(state: RunState) -> None:
    if state is RunState.RUNNING:
        raise ValueError("a run or job is finished with a final state, not 'running'")


def encode_detail(detail: Mapping[str, Any] | None) -> str:
    """The JSON text stored for a record's detail; refuses what would not read back the same."""
    try:
        return json.dumps(dict(detail or {}), sort_keys=True, allow_nan=False)
    except (TypeError, ValueError) as error:
        raise ValueError(f"detail must be JSON-serialisable: {error}") from error


def decode_detail(text: str) -> Mapping[str, Any]:
    # Read-only view, so that a frozen record is not quietly edited through its detail.
    return MappingProxyType(json.loads(text))


def _optional_time(microseconds: int | None) -> datetime | None:
    return None if microseconds is None else from_microseconds(microseconds)


def run_from_row(row: sqlite3.Row) -> RunRecord:
    return RunRecord(
        id=row["id"],
        kind=row["kind"],
        subject=row["subject"],
        started_at=from_microseconds(row["started_at_us"]),
        finished_at=_optional_time(row["finished_at_us"]),
        state=RunState(row["state"]),
        detail=decode_detail(row["detail"]),
    )


def job_from_row(row: sqlite3.Row) -> JobRecord:
    return JobRecord(
        id=row["id"],
        run_id=row["run_id"],
        name=row["name"],
        started_at=from_microseconds(row["started_at_us"]),
        finished_at=_optional_time(row["finished_at_us"]),
        state=RunState(row["state"]),
        detail=decode_detail(row["detail"]),
    )


def audit_from_row(row: sqlite3.Row) -> AuditRecord:
    return AuditRecord(
        id=row["id"],
        at=from_microseconds(row["at_us"]),
        actor=row["actor"],
        role=row["role"],
        action=row["action"],
        target=row["target"],
        result=AuditResult(row["result"]),
        detail=decode_detail(row["detail"]),
    )


def epoch_from_row(row: sqlite3.Row) -> EpochRecord:
    return EpochRecord(
        protection_group=row["protection_group"],
        epoch=row["epoch"],
        primary_site=row["primary_site"],
        updated_at=from_microseconds(row["updated_at_us"]),
        updated_by=row["updated_by"],
    )


def backup_job_from_row(row: sqlite3.Row) -> BackupJobRecord:
    duration_us = row["duration_us"]
    return BackupJobRecord(
        id=row["id"],
        tenant=row["tenant"],
        kind=JobKind(row["kind"]),
        source=row["source"],
        repository=row["repository"],
        started_at=from_microseconds(row["started_at_us"]),
        finished_at=_optional_time(row["finished_at_us"]),
        state=RunState(row["state"]),
        reason=row["reason"],
        bytes_added=row["bytes_added"],
        snapshot_id=row["snapshot_id"],
        duration=None if duration_us is None else timedelta(microseconds=duration_us),
        interrupted=bool(row["interrupted"]),
    )


def stored_bytes_from_row(row: sqlite3.Row) -> StoredBytesRecord:
    return StoredBytesRecord(
        id=row["id"],
        tenant=row["tenant"],
        repository=row["repository"],
        measured_at=from_microseconds(row["measured_at_us"]),
        stored_bytes=row["stored_bytes"],
        uncompressed_bytes=row["uncompressed_bytes"],
        snapshots=row["snapshots"],
    )


def image_backup_from_row(row: sqlite3.Row) -> ImageBackupRecord:
    return ImageBackupRecord(
        snapshot_id=row["snapshot_id"],
        tenant=row["tenant"],
        source=row["source"],
        image=ImageRef(row["pool"], row["namespace"], row["image"]),
        file_name=row["file_name"],
        image_bytes=row["image_bytes"],
        taken_at=from_microseconds(row["taken_at_us"]),
        sha256=row["sha256"],
    )
