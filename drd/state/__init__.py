"""The daemon's durable state: run, job and backup history, image backups, the audit log
and epochs."""

from drd.state.backup_images import ImageBackupConflict
from drd.state.errors import (
    AlreadyFinished,
    EpochConflict,
    RecordNotFound,
    StateStoreError,
)
from drd.state.records import (
    AuditRecord,
    AuditResult,
    BackupJobRecord,
    BackupUsage,
    EpochRecord,
    ImageBackupRecord,
    JobRecord,
    RunRecord,
    RunState,
    StoredBytesRecord,
)
from drd.state.store import StateStore

__all__ = [
    "AlreadyFinished",
    "AuditRecord",
    "AuditResult",
    "BackupJobRecord",
    "BackupUsage",
    "EpochConflict",
    "EpochRecord",
    "ImageBackupConflict",
    "ImageBackupRecord",
    "JobRecord",
    "RecordNotFound",
    "RunRecord",
    "RunState",
    "StateStore",
    "StateStoreError",
    "StoredBytesRecord",
]
