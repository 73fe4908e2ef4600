"""What the API and the CLI show of a tenant's backups: jobs running with their
progress, recent runs, what is next, what is not backed up and why, and the snapshots."""

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from drd.backup.restic_messages import Snapshot
from drd.backup.service import BackupService
from drd.domain.replication_plan import ImageRef
from drd.state import BackupJobRecord


class _View(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RunningBackup(_View):
    job: str = Field(description="the job, e.g. 'backup of water/databases:rbd/water/db-1'")
    source: str | None
    bytes_done: int = Field(description="bytes restic has read so far")
    seconds_elapsed: float | None
    updated_at: datetime


class BackupRun(_View):
    id: int
    kind: str = Field(description="backup, forget, prune, check or restore_test")
    source: str | None
    started_at: datetime
    finished_at: datetime | None
    state: str = Field(description="running, succeeded, failed or cancelled")
    reason: str | None = Field(description="why it failed or was cancelled")
    bytes_added: int | None
    snapshot_id: str | None
    seconds: float | None


class NextRun(_View):
    kind: str
    source: str | None
    at: datetime | None


class TenantBackups(_View):
    tenant: str
    repository: str | None
    running: list[RunningBackup]
    recent: list[BackupRun] = Field(description="newest first")
    next_runs: list[NextRun]
    not_backed_up: list[str] = Field(description="sources drd cannot back up here, and why")


class BackupRequest(_View):
    source: str | None = Field(default=None, description="a source name; default: all")


class BackupsStarted(_View):
    tenant: str
    jobs: list[str] = Field(description="the backup jobs queued, or already running")
    sources: list[str] = Field(description="the image each job backs up")


class SnapshotOut(_View):
    id: str
    time: datetime
    paths: list[str]
    tags: list[str]
    size: int | None = Field(description="bytes of the source when it was backed up")
    added: int | None = Field(description="bytes this snapshot added to the repository")


class SnapshotList(_View):
    tenant: str
    repository: str
    snapshots: list[SnapshotOut] = Field(description="oldest first")


class RestoreRequest(_View):
    source: str = Field(description="the image backed up: pool/namespace/image, or "
                                    "pool/image for the default namespace")
    snapshot: str = Field(default="latest", description="a restic snapshot id, or latest")
    to: str = Field(description="the new image: pool/namespace/image or pool/image")
    force: bool = Field(default=False, description="replace the target if it exists")


class RestoreDone(_View):
    tenant: str
    snapshot: str
    target: str
    bytes: int
    sha256: str
    seconds: float


def tenant_backups(service: BackupService, tenant: str,
                   history: list[BackupJobRecord]) -> TenantBackups:
    plan = service.state.plans.get(tenant)
    running = [RunningBackup(job=str(key), source=key.source,
                             bytes_done=progress.status.bytes_done,
                             seconds_elapsed=progress.status.seconds_elapsed,
                             updated_at=progress.at)
               for key, progress in sorted(service.state.progress.items(),
                                           key=lambda item: str(item[0]))
               if key.tenant == tenant]
    due = service.scheduler.view().next_due
    next_runs = [NextRun(kind=key.kind.value, source=key.source, at=at)
                 for key, at in sorted(due.items(), key=lambda item: str(item[0]))
                 if key.tenant == tenant]
    not_backed_up = (list(plan.not_backed_up) if plan is not None
                     else [service.state.unplanned.get(tenant, "no backup policy here")])
    return TenantBackups(
        tenant=tenant, repository=plan.repository if plan else None, running=running,
        recent=[_run(record) for record in history], next_runs=next_runs,
        not_backed_up=not_backed_up)


def _run(record: BackupJobRecord) -> BackupRun:
    return BackupRun(
        id=record.id, kind=record.kind.value, source=record.source,
        started_at=record.started_at, finished_at=record.finished_at,
        state=record.state.value, reason=record.reason, bytes_added=record.bytes_added,
        snapshot_id=record.snapshot_id,
        seconds=record.duration.total_seconds() if record.duration is not None else None)


def snapshot_out(snapshot: Snapshot) -> SnapshotOut:
    summary = snapshot.summary
    return SnapshotOut(
        id=snapshot.id, time=snapshot.time, paths=list(snapshot.paths),
        tags=list(snapshot.tags),
        size=summary.total_bytes_processed if summary is not None else None,
        added=summary.data_added if summary is not None else None)


def parse_image_spec(spec: str, what: str) -> ImageRef:
    """`pool/namespace/image` or `pool/image`; ValueError naming `what` otherwise."""
    parts = spec.split("/")
    if len(parts) == 2 and all(parts):
        return ImageRef(parts[0], "", parts[1])
    if len(parts) == 3 and parts[0] and parts[2]:
        return ImageRef(parts[0], parts[1], parts[2])
    raise ValueError(f"{what} {spec!r} is not pool/image or pool/namespace/image")
