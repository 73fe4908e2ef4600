"""What each backup job does on this site: the BackupActions of drd.backup.service, put
together from the RBD side (drd.backup.rbd_backup, rbd_restore, restore_test) and the
repository side (drd.backup.repository_jobs, metering, verification).

Every job first `prepare`s its repository (created if the policy allows, provably stale
locks removed), at most once per PREPARE_EVERY per repository, and again after any
failure, since a stale lock or a missing repository is what a failure is likely to be.
One repository is prepared by one job at a time: jobs admitted together (two backups
of a new tenant's images, or of tenants sharing a repository) would otherwise both run
`restic init`, and two concurrent inits both exit 0 and leave a repository whose config
and keys disagree, which restic then refuses to open ("config or key ... is damaged").
Every snapshot carries `drd:tenant=<tenant>` and `drd:source=<source>`, which retention
and metering select by. A restore test records each source it tests as a run of its own,
so "last verified restorable" is per source, and raises the verification alert per source.
"""

import asyncio
import random
import time
from datetime import UTC, datetime
from functools import partial

import structlog

from drd.api.metrics import DaemonMetrics
from drd.api.schemas import TenantUsageOut
from drd.backup.ceph_access import CephAccess
from drd.backup.job_run import Clock, JobFailed, JobOutcome, ScheduledJob, run_recorded
from drd.backup.metering import Metering, usage_body
from drd.backup.rbd_backup import back_up_rbd_source
from drd.backup.rbd_remote_copy import RemoteCopy
from drd.backup.rbd_restore import restore_rbd_image
from drd.backup.repository_jobs import RepositoryJobs
from drd.backup.restore_test import last_verified_restorable, restore_test
from drd.backup.retention import tenant_selection, tenant_tag
from drd.backup.service import (
    JOB_TIMEOUT,
    ImageSource,
    PathSource,
    ProgressCallback,
    Restored,
    TenantBackup,
)
from drd.backup.verification import VerificationAlerts
from drd.domain.backup_jobs import JobKey, JobKind
from drd.domain.backup_policy import SnapshotPick
from drd.domain.image_backups import image_file_name
from drd.domain.replication_plan import ImageRef
from drd.domain.restic_values import limit_upload_kib
from drd.state import BackupJobRecord, RunState, StateStore

log = structlog.get_logger()

PREPARE_EVERY = 600.0  # seconds
RESTIC_SHARE = 0.9  # of a job's timeout: restic is stopped first, so the job can say why
SOURCE_TAG_PREFIX = "drd:source="


def utc_now() -> datetime:
    return datetime.now(UTC)


class SiteBackupActions:
    """The real BackupActions: restic and librbd against this site's cluster."""

    def __init__(self, *, store: StateStore, ceph: CephAccess, metrics: DaemonMetrics,
                 clock: Clock = utc_now, remote: RemoteCopy | None = None) -> None:
        self.store, self.ceph, self.clock = store, ceph, clock
        self.remote = remote  # the remote site's cluster, for `from: remote` sources
        self.metrics = metrics
        self.alerts = VerificationAlerts(metrics)
        self.metering = Metering(store, metrics, clock=clock)
        self._prepared: dict[str, float] = {}  # repository -> when, monotonic
        self._preparing: dict[str, asyncio.Lock] = {}  # repository -> held while prepared

    async def started(self, tenants: list[str]) -> None:
        """On start: alerts and usage as the history left them."""
        await self.alerts.restore_from(self.store)
        await self.metering.load(tenants)

    async def finished(self, record: BackupJobRecord) -> None:
        """After every recorded run: counters from the history, and a failure makes the
        next job prepare its repository again."""
        if record.state is not RunState.SUCCEEDED:
            self._prepared.pop(record.repository, None)
        await self.metering.runs_changed(record.tenant)

    async def backup_image(self, plan: TenantBackup, image: ImageSource,
                           progress: ProgressCallback) -> JobOutcome:
        await self._prepare(plan)
        limit = plan.policy.upload_limit
        return await back_up_rbd_source(
            plan.restic, self.ceph, self.store, tenant=plan.tenant, source=image.source,
            images=[image.ref], host=plan.tenant,
            tags=[tenant_tag(plan.tenant), SOURCE_TAG_PREFIX + image.source,
                  *plan.policy.tags],
            clock=self.clock,
            limit_upload_kib=limit_upload_kib(limit) if limit is not None else None,
            progress=progress, read_from=self.remote if image.read_remote else None)

    async def backup_files(self, plan: TenantBackup, files: PathSource,
                           progress: ProgressCallback) -> JobOutcome:
        """restic reads the files itself; a file it cannot read fails the run (exit 3)."""
        await self._prepare(plan)
        limit = plan.policy.upload_limit
        result = await plan.restic.backup_paths(
            files.paths, host=plan.tenant,
            tags=[tenant_tag(plan.tenant), SOURCE_TAG_PREFIX + files.source,
                  *plan.policy.tags],
            limit_upload_kib=limit_upload_kib(limit) if limit is not None else None,
            progress=progress, deadline=_restic_deadline())
        summary = result.summary
        added = summary.data_added if summary is not None else None
        if not result.outcome.ok or summary is None:
            raise JobFailed(f"backup of {', '.join(files.paths)} failed: "
                            f"{result.outcome.reason}", bytes_added=added,
                            snapshot_id=summary.snapshot_id if summary else None)
        return JobOutcome(bytes_added=added, snapshot_id=summary.snapshot_id)

    async def prune(self, plan: TenantBackup) -> JobOutcome:
        jobs = await self._prepare(plan)
        outcome = await jobs.prune(deadline=_restic_deadline())
        await self.metering.measure(plan.tenant, plan.repository, plan.restic)
        return outcome

    async def check(self, plan: TenantBackup) -> JobOutcome:
        jobs = await self._prepare(plan)
        return await jobs.check(deadline=_restic_deadline())

    async def restore_test(self, plan: TenantBackup) -> JobOutcome:
        """Restore the sampled sources' snapshots into scratch images here and compare
        each with restic's record of it; fail naming every source that failed."""
        test = plan.policy.restore_test
        if test is None:
            raise JobFailed("the policy has no restore_test")
        await self._prepare(plan)
        never = datetime.min.replace(tzinfo=UTC)
        verified: dict[str, datetime] = {}
        for source in {image.source for image in plan.images}:
            last = await asyncio.to_thread(last_verified_restorable, self.store, plan.tenant,
                                           source)
            verified[source] = last or never  # never verified: first in line
        sources = sorted(verified, key=lambda source: (verified[source], source))
        chosen = sources if test.sample.sources == "all" else sources[:test.sample.sources]
        if not chosen:
            raise JobFailed(f"{plan.tenant} has no backed-up RBD source on this site to test")
        live = {s.id for s in await plan.restic.snapshots(tenant_selection(plan.tenant))}
        failures = []
        for source in chosen:
            record = await run_recorded(ScheduledJob(
                JobKey(plan.tenant, JobKind.RESTORE_TEST, source, plan.repository),
                partial(self._test_source, plan, source, live, test.sample.snapshot),
                JOB_TIMEOUT), self.store, self.clock)
            if record.state is RunState.SUCCEEDED:
                self.alerts.passed(plan.tenant, JobKind.RESTORE_TEST,
                                   record.finished_at or self.clock(), source=source)
            else:
                reason = record.reason or "failed"
                self.alerts.failed(plan.tenant, JobKind.RESTORE_TEST, reason, source=source,
                                   repository=plan.repository)
                failures.append(f"{source}: {reason}")
        if failures:
            raise JobFailed(f"{len(failures)} of {len(chosen)} restore tests failed: "
                            + "; ".join(failures))
        return JobOutcome()

    async def _test_source(self, plan: TenantBackup, source: str, live: set[str],
                           pick: SnapshotPick) -> JobOutcome:
        recorded = await asyncio.to_thread(partial(self.store.image_backups, plan.tenant,
                                                   source=source))
        backups = [b for b in recorded if b.snapshot_id in live]
        if not backups:
            raise JobFailed(f"no snapshot of source {source} that drd recorded is left in "
                            f"the repository to restore")
        chosen = backups[0] if pick is SnapshotPick.LATEST else random.choice(backups)  # noqa: S311
        return await restore_test(
            plan.restic, self.ceph, self.store, snapshot_id=chosen.snapshot_id,
            scratch=(chosen.image.pool, chosen.image.namespace),
            job=JobKey(plan.tenant, JobKind.RESTORE_TEST, source, plan.repository),
            deadline=_restic_deadline())

    async def restore(self, plan: TenantBackup, source: ImageRef, snapshot: str,
                      target: ImageRef, force: bool) -> Restored:
        began = time.monotonic()
        restored = await restore_rbd_image(plan.restic, self.ceph, snapshot=snapshot,
                                           file_name=image_file_name(source), target=target,
                                           force=force)
        log.info("image restored", tenant=plan.tenant, source=str(source),
                 snapshot=restored.snapshot_id, target=str(target), sha256=restored.sha256,
                 replaced=restored.replaced)
        return Restored(restored.snapshot_id, restored.target, restored.bytes,
                        restored.sha256, time.monotonic() - began)

    async def usage(self, tenant: str) -> TenantUsageOut:
        """What the tenant stores and what its backups added, from the state store."""
        return usage_body(await self.metering.usage(tenant))

    async def _prepare(self, plan: TenantBackup) -> RepositoryJobs:
        jobs = RepositoryJobs(plan.tenant, plan.repository, plan.policy, plan.restic,
                              alerts=self.alerts, metrics=self.metrics, clock=self.clock)
        async with self._preparing.setdefault(plan.repository, asyncio.Lock()):
            # A job that waited here finds the repository just prepared by the other.
            last = self._prepared.get(plan.repository)
            if last is None or time.monotonic() - last > PREPARE_EVERY:
                await jobs.prepare()
                self._prepared[plan.repository] = time.monotonic()
        return jobs


def _restic_deadline() -> float:
    return JOB_TIMEOUT.total_seconds() * RESTIC_SHARE
