"""The daemon's durable state: run and job history, the audit log and protection-group epochs."""

from drd.state.errors import (
    AlreadyFinished,
    EpochConflict,
    RecordNotFound,
    StateStoreError,
)
from drd.state.records import (
    AuditRecord,
    AuditResult,
    EpochRecord,
    JobRecord,
    RunRecord,
    RunState,
)
from drd.state.store import StateStore

__all__ = [
    "AlreadyFinished",
    "AuditRecord",
    "AuditResult",
    "EpochConflict",
    "EpochRecord",
    "JobRecord",
    "RecordNotFound",
    "RunRecord",
    "RunState",
    "StateStore",
    "StateStoreError",
]
