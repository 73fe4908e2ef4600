"""The backup part of the daemon's API context: a tenant's backups, backing up now, its
snapshots and restores, answered from the backup service and the state store."""

import asyncio
from typing import Protocol

from drd.api.schemas import TenantUsageOut
from drd.backup.service import BackupService
from drd.backup.views import (
    BackupsStarted,
    RestoreDone,
    RestoreRequest,
    SnapshotList,
    TenantBackups,
    parse_image_spec,
    snapshot_out,
    tenant_backups,
)
from drd.state import StateStore

RECENT_RUNS = 20


class _HasBackups(Protocol):
    @property
    def store(self) -> StateStore: ...

    @property
    def backups(self) -> BackupService | None: ...


class BackupContext:
    """Mixed into SiteRuntime; KeyError when this site runs no backups for the tenant."""

    def _backup_service(self: _HasBackups) -> BackupService:
        if self.backups is None:
            raise KeyError("this site runs no backups: restic is missing or too old")
        return self.backups

    async def tenant_backups(self: _HasBackups, tenant: str) -> TenantBackups:
        service = BackupContext._backup_service(self)
        history = await asyncio.to_thread(self.store.backup_history, tenant, RECENT_RUNS)
        return tenant_backups(service, tenant, history)

    def start_backups(self: _HasBackups, tenant: str, source: str | None) -> BackupsStarted:
        keys = BackupContext._backup_service(self).request_backups(tenant, source)
        return BackupsStarted(tenant=tenant, jobs=[str(key) for key in keys],
                              sources=[key.source or "" for key in keys])

    async def tenant_snapshots(self: _HasBackups, tenant: str) -> SnapshotList:
        repository, snapshots = await BackupContext._backup_service(self).snapshots(tenant)
        return SnapshotList(tenant=tenant, repository=repository,
                            snapshots=[snapshot_out(s) for s in snapshots])

    async def restore(self: _HasBackups, tenant: str, request: RestoreRequest) -> RestoreDone:
        source = parse_image_spec(request.source, "source")
        target = parse_image_spec(request.to, "target")
        done = await BackupContext._backup_service(self).restore(
            tenant, source, request.snapshot, target, request.force)
        return RestoreDone(tenant=tenant, snapshot=done.snapshot, target=str(done.target),
                           bytes=done.bytes, sha256=done.sha256, seconds=done.seconds)

    async def tenant_usage(self: _HasBackups, tenant: str) -> TenantUsageOut:
        return await BackupContext._backup_service(self).actions.usage(tenant)
