"""What the state store hands back: frozen records with aware UTC datetimes.

The database keeps every time as INTEGER microseconds since the Unix epoch (UTC); the two
functions here are the only place that converts, so no string or naive time gets in or out.
"""

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from drd.domain.backup_jobs import JobKey, JobKind
from drd.domain.replication_plan import ImageRef

_UNIX_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_MICROSECOND = timedelta(microseconds=1)


class RunState(StrEnum):
    """Where a run or job is; everything but RUNNING is final."""

    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


class AuditResult(StrEnum):
    """How an operator action ended: done, refused by policy or auth, or tried and failed."""

    OK = "ok"
    REFUSED = "refused"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class RunRecord:
    """One drill, failover, backup or other top-level operation."""

    id: int
    kind: str
    subject: str
    started_at: datetime
    finished_at: datetime | None
    state: RunState
    detail: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class JobRecord:
    """One unit of work, either on its own or as part of a run."""

    id: int
    run_id: int | None
    name: str
    started_at: datetime
    finished_at: datetime | None
    state: RunState
    detail: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class AuditRecord:
    """One operator action: who did what to what, when, and how it ended."""

    id: int
    at: datetime
    actor: str
    role: str
    action: str
    target: str
    result: AuditResult
    detail: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class EpochRecord:
    """Which site is primary for a protection group, as of which epoch."""

    protection_group: str
    epoch: int
    primary_site: str
    updated_at: datetime
    updated_by: str


@dataclass(frozen=True, slots=True)
class BackupJobRecord:
    """One run of a tenant's backup, forget, prune, check or restore test.

    `reason` says why a run failed or was cancelled, and is never missing then. `interrupted`
    marks a run the daemon's own stop or crash cut short. `duration` is measured on a
    monotonic clock, and is None when the daemon did not see the run end.
    """

    id: int
    tenant: str
    kind: JobKind
    source: str | None
    repository: str
    started_at: datetime
    finished_at: datetime | None
    state: RunState
    reason: str | None
    bytes_added: int | None
    snapshot_id: str | None
    duration: timedelta | None
    interrupted: bool

    @property
    def job(self) -> JobKey:
        return JobKey(self.tenant, self.kind, self.source, self.repository)


@dataclass(frozen=True, slots=True)
class BackupUsage:
    """What one tenant's finished backup runs amount to, for metering."""

    tenant: str
    backup_runs: int
    succeeded_runs: int
    bytes_added: int
    cancelled_runs: int = 0  # stopped by the daemon's stop, not failed by their own doing

    @property
    def failed_runs(self) -> int:
        return self.backup_runs - self.succeeded_runs - self.cancelled_runs


@dataclass(frozen=True, slots=True)
class StoredBytesRecord:
    """One measurement of what a tenant's snapshots hold in its repository, after
    deduplication and compression (`restic stats --mode raw-data`)."""

    id: int
    tenant: str
    repository: str
    measured_at: datetime
    stored_bytes: int
    uncompressed_bytes: int
    snapshots: int


@dataclass(frozen=True, slots=True)
class ImageBackupRecord:
    """What one restic snapshot of an RBD image holds, as a restore test needs it.

    `file_name` is the file inside the snapshot (`/<file_name>`); `image_bytes` is the
    image's provisioned size at the RBD snapshot drd read, which is what `rbd export`
    emits; `taken_at` is when drd took that snapshot. `sha256` is the sha256 of the whole
    content once known (see drd.state.backup_images), else None.
    """

    snapshot_id: str
    tenant: str
    source: str
    image: ImageRef
    file_name: str
    image_bytes: int
    taken_at: datetime
    sha256: str | None = None


def to_microseconds(moment: datetime) -> int:
    """Microseconds since the Unix epoch; a naive datetime is refused, its zone being a guess."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"time {moment.isoformat()} has no timezone; pass an aware datetime")
    return (moment - _UNIX_EPOCH) // _ONE_MICROSECOND


def from_microseconds(microseconds: int) -> datetime:
    """The aware UTC datetime for a stored time."""
    return _UNIX_EPOCH + timedelta(microseconds=microseconds)
