"""Metering (度量计价): what each tenant's backups use, for Prometheus and for the API.

Three figures per tenant:
- stored bytes: what the tenant's snapshots hold in its repository after deduplication
  and compression, measured by `restic stats --mode raw-data` over the tenant's
  snapshots. It counts data those snapshots reference: it drops as soon as forget
  removes snapshots, before prune frees the space. In a shared repository, data two
  tenants' snapshots share counts for each;
- bytes added by each backup run, as the run recorded it in the job history;
- backup runs by result.

Measurements go to the state store before the metrics, so after a restart the last one
is exported at once, without waiting for restic (which needs a lock on the repository).
The run totals are read from the job history, so the exported counters carry on across
restarts instead of starting again at zero.
"""

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from functools import partial

import structlog

from drd.api.metrics import DaemonMetrics, RunUsage, StoredUsage
from drd.api.schemas import BackupRunTotals, BackupRunUsage, StoredBytesOut, TenantUsageOut
from drd.backup.job_run import Clock
from drd.backup.restic import ResticError
from drd.backup.restic_messages import ResticOutputError
from drd.backup.restic_port import ResticRepositoryPort
from drd.backup.retention import tenant_selection
from drd.backup.scheduler import utc_now
from drd.domain.backup_jobs import JobKind
from drd.state import BackupJobRecord, BackupUsage, StateStore, StoredBytesRecord

log = structlog.get_logger()

RECENT_RUNS = 20


@dataclass(frozen=True, slots=True)
class TenantUsage:
    """What one tenant's backups use: the latest stored-bytes measurement (None before
    the first), why the latest attempt to measure failed (if it did), its backup runs
    since `since` (None: all history), and its latest runs, newest first."""

    tenant: str
    stored: StoredBytesRecord | None
    stored_error: str | None
    since: datetime | None
    runs: BackupUsage
    recent_runs: tuple[BackupJobRecord, ...]


class Metering:
    """Measures and exports every tenant's usage; one per daemon."""

    def __init__(self, store: StateStore, metrics: DaemonMetrics, *,
                 clock: Clock = utc_now) -> None:
        self._store = store
        self._collector = metrics.backup_usage
        self._clock = clock
        self._errors: dict[str, str] = {}

    async def load(self, tenants: Iterable[str]) -> None:
        """On start: export each tenant's latest measurement and run totals from history."""
        wanted = set(tenants)
        latest = await asyncio.to_thread(self._store.latest_stored_bytes)
        for record in latest:
            if record.tenant in wanted:
                self._export_stored(record)
        for tenant in sorted(wanted):
            await self.runs_changed(tenant)

    async def measure(self, tenant: str, repository: str,
                      restic: ResticRepositoryPort) -> StoredBytesRecord | None:
        """Measure what `tenant`'s snapshots hold in `repository` now, record and export it;
        None if restic could not tell (logged, and shown in the usage body)."""
        try:
            stats = await restic.stats_raw_data(tenant_selection(tenant))
        except (ResticError, ResticOutputError) as error:
            reason = error.outcome.reason if isinstance(error, ResticError) else str(error)
            self._errors[tenant] = reason
            # The last measurement stays exported: stored data rarely vanishes between two.
            log.warning("backup storage could not be measured", tenant=tenant,
                        repository=repository, reason=reason)
            return None
        record = await asyncio.to_thread(partial(
            self._store.record_stored_bytes, tenant, repository, self._clock(),
            stored_bytes=stats.total_size, uncompressed_bytes=stats.total_uncompressed_size,
            snapshots=stats.snapshots_count))
        self._errors.pop(tenant, None)
        self._export_stored(record)
        log.info("backup storage measured", tenant=tenant, repository=repository,
                 stored_bytes=record.stored_bytes, snapshots=record.snapshots)
        return record

    async def runs_changed(self, tenant: str) -> BackupUsage:
        """Export `tenant`'s run totals again from history; call it after a backup run ends."""
        usage = await asyncio.to_thread(self._store.backup_usage, tenant)
        self._collector.set_runs(tenant, RunUsage(usage.bytes_added, run_counts(usage)))
        return usage

    async def usage(self, tenant: str, *, since: datetime | None = None,
                    recent: int = RECENT_RUNS) -> TenantUsage:
        """What `tenant` uses now, from the state store; never runs restic."""
        latest = await asyncio.to_thread(self._store.latest_stored_bytes, tenant)
        runs = await asyncio.to_thread(self._store.backup_usage, tenant, since)
        history = await asyncio.to_thread(
            partial(self._store.backup_history, tenant, recent, kind=JobKind.BACKUP))
        return TenantUsage(tenant, latest[0] if latest else None, self._errors.get(tenant),
                           since, runs, tuple(history))

    def remove(self, tenant: str) -> None:
        """Stop exporting a tenant whose policy is gone; its history stays."""
        self._collector.remove(tenant)
        self._errors.pop(tenant, None)

    def _export_stored(self, record: StoredBytesRecord) -> None:
        self._collector.set_stored(record.tenant, StoredUsage(
            record.stored_bytes, record.snapshots, record.measured_at.timestamp()))


def run_counts(usage: BackupUsage) -> dict[str, int]:
    """Finished runs by result, the `result` label of drd_backup_runs_total."""
    return {"succeeded": usage.succeeded_runs, "failed": usage.failed_runs,
            "cancelled": usage.cancelled_runs}


def usage_body(usage: TenantUsage) -> TenantUsageOut:
    """The body of GET /v1/tenants/{tenant}/usage."""
    stored = usage.stored
    runs = usage.runs
    return TenantUsageOut(
        tenant=usage.tenant,
        stored=None if stored is None else StoredBytesOut(
            repository=stored.repository, stored_bytes=stored.stored_bytes,
            uncompressed_bytes=stored.uncompressed_bytes, snapshots=stored.snapshots,
            measured_at=stored.measured_at),
        stored_error=usage.stored_error,
        backups=BackupRunTotals(since=usage.since, runs=runs.backup_runs,
                                succeeded=runs.succeeded_runs, failed=runs.failed_runs,
                                cancelled=runs.cancelled_runs, bytes_added=runs.bytes_added),
        recent_runs=[BackupRunUsage(id=run.id, source=run.source, started_at=run.started_at,
                                    finished_at=run.finished_at, state=run.state.value,
                                    bytes_added=run.bytes_added, snapshot_id=run.snapshot_id)
                     for run in usage.recent_runs])
