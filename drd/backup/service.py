"""Tenant backups on this site: which jobs exist, when each is due, and what runs now.

From the policies in force, each tenant with a `backup:` section gets a plan: its
restic repository, and the images its sources select that this site holds as primary
(or that are not mirrored at all), each one backup job. Prune, check and the restore
test are one job each per repository. The scheduler (drd.backup.scheduler) runs them
when due under the repository lock model; what a job does is the `BackupActions`'.

Images come and go, so the job set is refreshed every REFRESH_SECONDS and whenever the
policies change. Sources drd cannot back up yet are listed with the reason, never
silently left out.
"""

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial
from typing import Protocol

import structlog

from drd.api.schemas import TenantUsageOut
from drd.backup.job_run import JobAction, JobOutcome, ScheduledJob
from drd.backup.restic_messages import BackupStatus, Snapshot
from drd.backup.restic_port import ResticRepositoryPort
from drd.backup.scheduler import BackupScheduler
from drd.ceph.cluster import CephError
from drd.domain.backup_jobs import JobKey, JobKind
from drd.domain.backup_policy import BackupJob, BackupPolicy
from drd.domain.backup_schedule import Timetable
from drd.domain.backup_sources import SourceSite
from drd.domain.replication_plan import ImageRef, MirrorState, ObservedImage
from drd.domain.repository_locks import AdmissionLimits
from drd.domain.tenant_policy import TenantPolicy

log = structlog.get_logger()

REFRESH_SECONDS = 60.0
JOB_TIMEOUT = timedelta(hours=6)
LIMITS = AdmissionLimits(max_jobs=4, max_shared_per_repository=2)
_POLICY_JOBS = {JobKind.BACKUP: BackupJob.BACKUP, JobKind.PRUNE: BackupJob.PRUNE,
                JobKind.CHECK: BackupJob.CHECK, JobKind.RESTORE_TEST: BackupJob.RESTORE_TEST}


@dataclass(frozen=True)
class ImageSource:
    """One image a backup source selects: the unit of one backup job and its history."""

    source: str  # the policy's source name
    ref: ImageRef
    read_remote: bool = False  # read the remote site's mirrored copy (`from: remote`)

    @property
    def key(self) -> str:
        return f"{self.source}:{self.ref}"


@dataclass(frozen=True)
class PathSource:
    """A source of files on this host: one backup job, one restic snapshot a run."""

    source: str
    paths: tuple[str, ...]

    @property
    def key(self) -> str:
        return f"{self.source}:files"


@dataclass
class TenantBackup:
    """One tenant's backups on this site."""

    tenant: str
    policy: BackupPolicy
    repository: str
    restic: ResticRepositoryPort
    images: tuple[ImageSource, ...] = ()
    not_backed_up: tuple[str, ...] = ()  # sources drd cannot back up here, with why
    files: tuple[PathSource, ...] = ()


ProgressCallback = Callable[[BackupStatus], None]


class BackupActions(Protocol):
    """What each kind of job does; drd.backup.actions is the real one."""

    async def backup_image(self, plan: TenantBackup, image: ImageSource,
                           progress: ProgressCallback) -> JobOutcome: ...

    async def backup_files(self, plan: TenantBackup, files: PathSource,
                           progress: ProgressCallback) -> JobOutcome: ...

    async def prune(self, plan: TenantBackup) -> JobOutcome: ...

    async def check(self, plan: TenantBackup) -> JobOutcome: ...

    async def restore_test(self, plan: TenantBackup) -> JobOutcome: ...

    async def restore(self, plan: TenantBackup, source: ImageRef, snapshot: str,
                      target: ImageRef, force: bool) -> "Restored": ...

    async def usage(self, tenant: str) -> TenantUsageOut: ...


@dataclass(frozen=True)
class Restored:
    """A restore that finished: the new image, its size and its sha256 as read back."""

    snapshot: str
    target: ImageRef
    bytes: int
    sha256: str
    seconds: float


ListImages = Callable[[str, str], list[ObservedImage]]  # pool, namespace; blocking
OpenRepository = Callable[[str, BackupPolicy], tuple[str, ResticRepositoryPort] | str]


@dataclass
class BackupProgress:
    """The newest progress of a running backup, for `drd backup run`'s bar."""

    status: BackupStatus
    at: datetime


@dataclass
class BackupState:
    plans: dict[str, TenantBackup] = field(default_factory=dict)
    unplanned: dict[str, str] = field(default_factory=dict)  # tenant -> why no backups
    progress: dict[JobKey, BackupProgress] = field(default_factory=dict)


class BackupService:
    """Keeps the scheduler's jobs in step with the policies and the images."""

    def __init__(self, *, scheduler_for: Callable[["BackupService"], BackupScheduler],
                 actions: BackupActions, list_images: ListImages,
                 open_repository: OpenRepository, clock: Callable[[], datetime],
                 refresh_seconds: float = REFRESH_SECONDS,
                 on_start: Callable[[list[str]], Awaitable[None]] | None = None,
                 remote_site: str | None = None) -> None:
        self.actions = actions
        self._on_start = on_start
        self._remote_site = remote_site  # whose mirrored copies `from: remote` reads
        self._list_images = list_images
        self._open_repository = open_repository
        self._clock = clock
        self._refresh_seconds = refresh_seconds
        self._policies: dict[str, BackupPolicy] = {}
        self._changed = asyncio.Event()
        self.state = BackupState()
        self.scheduler = scheduler_for(self)

    def set_policies(self, policies: dict[str, TenantPolicy]) -> None:
        self._policies = {tenant: policy.backup for tenant, policy in policies.items()
                          if policy.backup is not None}
        self._changed.set()

    async def loop(self) -> None:
        if self._on_start is not None:
            await self._on_start(sorted(self._policies))
        async with asyncio.TaskGroup() as group:
            group.create_task(self.scheduler.run())
            while True:
                self._changed.clear()
                await self.refresh()
                try:
                    async with asyncio.timeout(self._refresh_seconds):
                        await self._changed.wait()
                except TimeoutError:
                    pass

    async def refresh(self) -> None:
        """Plan every tenant's backups afresh and hand the jobs to the scheduler."""
        plans: dict[str, TenantBackup] = {}
        unplanned: dict[str, str] = {}
        for tenant, policy in sorted(self._policies.items()):
            opened = self._open_repository(tenant, policy)
            if isinstance(opened, str):
                unplanned[tenant] = opened
                continue
            repository, restic = opened
            images, skipped = await self._images(policy)
            files = tuple(PathSource(source.name, tuple(str(path) for path in source.paths))
                          for source in policy.sources if source.paths is not None)
            plans[tenant] = TenantBackup(tenant, policy, repository, restic, images, skipped,
                                         files)
            for reason in skipped:
                log.warning("backup source not backed up", tenant=tenant, reason=reason)
        for tenant, why in unplanned.items():
            log.error("tenant has no backups on this site", tenant=tenant, reason=why)
        self.state.plans, self.state.unplanned = plans, unplanned
        self.scheduler.set_jobs(job for plan in plans.values() for job in self._jobs(plan))

    async def _images(self, policy: BackupPolicy
                      ) -> tuple[tuple[ImageSource, ...], tuple[str, ...]]:
        images: list[ImageSource] = []
        skipped: list[str] = []
        for source in policy.sources:
            if source.pool is None:
                continue  # files: a job of their own
            remote = source.site is SourceSite.REMOTE
            if remote and self._remote_site is None:
                skipped.append(f"source {source.name}: from remote, but the site config "
                               f"names no remote peer with a ceph_conf to read it from")
                continue
            try:
                found = await asyncio.to_thread(self._list_images, source.pool,
                                                source.namespace)
            except CephError as error:
                skipped.append(f"source {source.name}: cannot list {source.spec}: {error}")
                continue
            images += [ImageSource(source.name, image.ref, remote) for image in found
                       if source.selects(image.ref.name) and _writable_here(image)]
        return tuple(images), tuple(skipped)

    def _jobs(self, plan: TenantBackup) -> list[ScheduledJob]:
        def job(kind: JobKind, source: str | None, action: JobAction) -> ScheduledJob:
            return ScheduledJob(JobKey(plan.tenant, kind, source, plan.repository),
                                action, JOB_TIMEOUT)

        jobs = [job(JobKind.BACKUP, image.key, partial(self._backup, plan, image))
                for image in plan.images]
        jobs += [job(JobKind.BACKUP, files.key, partial(self._backup, plan, files))
                 for files in plan.files]
        if plan.policy.prune is not None:
            jobs.append(job(JobKind.PRUNE, None, partial(self.actions.prune, plan)))
        if plan.policy.check is not None:
            jobs.append(job(JobKind.CHECK, None, partial(self.actions.check, plan)))
        if plan.policy.restore_test is not None:
            jobs.append(job(JobKind.RESTORE_TEST, None,
                            partial(self.actions.restore_test, plan)))
        return jobs

    async def _backup(self, plan: TenantBackup, what: ImageSource | PathSource) -> JobOutcome:
        key = JobKey(plan.tenant, JobKind.BACKUP, what.key, plan.repository)

        def progress(status: BackupStatus) -> None:
            self.state.progress[key] = BackupProgress(status, self._clock())

        try:
            if isinstance(what, PathSource):
                return await self.actions.backup_files(plan, what, progress)
            return await self.actions.backup_image(plan, what, progress)
        finally:
            self.state.progress.pop(key, None)

    def next_due(self, job: JobKey, last_run: datetime | None, now: datetime
                 ) -> datetime | None:
        """The scheduler's NextDue: the first slot after the last start. A backup that
        never ran is due now: a new image has no backup at all."""
        plan = self.state.plans.get(job.tenant)
        policy_job = _POLICY_JOBS.get(job.kind)
        if plan is None or policy_job is None:
            return None
        schedule = plan.policy.schedules().get(policy_job)
        if schedule is None:
            return None
        if last_run is None and job.kind is JobKind.BACKUP:
            return now
        timetable = Timetable.of(schedule, job.tenant, policy_job.value)
        upcoming = timetable.next_runs(last_run or now, 1)
        return upcoming[0] if upcoming else None

    def plan(self, tenant: str) -> TenantBackup:
        """`tenant`'s backups here; KeyError saying why there are none."""
        plan = self.state.plans.get(tenant)
        if plan is None:
            raise KeyError(self.state.unplanned.get(
                tenant, f"tenant {tenant} has no backup policy on this site"))
        return plan

    async def snapshots(self, tenant: str) -> tuple[str, list[Snapshot]]:
        plan = self.plan(tenant)
        return plan.repository, await plan.restic.snapshots()

    async def restore(self, tenant: str, source: ImageRef, snapshot: str, target: ImageRef,
                      force: bool) -> Restored:
        """Restore `tenant`'s backup of `source` into the new image `target` here."""
        plan = self.plan(tenant)
        log.info("restore starts", tenant=tenant, source=str(source), snapshot=snapshot,
                 target=str(target), force=force)
        return await self.actions.restore(plan, source, snapshot, target, force)

    def request_backups(self, tenant: str, source: str | None = None) -> list[JobKey]:
        """Queue `tenant`'s backups now, of one source or all; the jobs queued or
        already running. KeyError if the tenant or source has no backup job here."""
        plan = self.plan(tenant)
        everything: list[ImageSource | PathSource] = [*plan.images, *plan.files]
        chosen = [item for item in everything if source in (None, item.source)]
        if not chosen:
            raise KeyError(f"tenant {tenant} has nothing to back up"
                           + (f" in source {source}" if source else "") + " on this site")
        keys = [JobKey(tenant, JobKind.BACKUP, item.key, plan.repository)
                for item in chosen]
        for key in keys:
            self.scheduler.request(key)
        return keys


def _writable_here(image: ObservedImage) -> bool:
    """This site holds the image's writable copy: primary, or not mirrored at all. A
    non-primary copy is backed up where it is primary."""
    return image.state is MirrorState.DISABLED or bool(image.primary)
