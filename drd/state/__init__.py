"""The daemon's durable state: run, job and backup history, image digests, the audit log
and epochs."""

from drd.state.backup_digests import DigestConflict
from drd.state.errors import (
    AlreadyFinished,
    EpochConflict,
    RecordNotFound,
    StateStoreError,
)
from drd.state.records import (
    AuditRecord,
    AuditResult,
    BackupDigest,
    BackupJobRecord,
    BackupUsage,
    EpochRecord,
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
    "BackupDigest",
    "BackupJobRecord",
    "BackupUsage",
    "DigestConflict",
    "EpochConflict",
    "EpochRecord",
    "JobRecord",
    "RecordNotFound",
    "RunRecord",
    "RunState",
    "StateStore",
    "StateStoreError",
    "StoredBytesRecord",
]
