"""Many tenants backing up at once, through drd's backup service and scheduler.

A phase gives each of `own` tenants a repository of its own and `shared` more tenants
one repository together (one password file), each tenant's policy selecting one image
of random data of its own. It runs them as the daemon does (drd.daemon.backup_wiring):
a BackupService with SiteBackupActions and a BackupScheduler under `limits`, images
listed with rbd_observe, one Restic per repository sharing the daemon's Children, real
restic, repositories created by the first job (`initialise_repository`). New images
are due at once, so every job is queued at the start. The phase ends once the state
store holds an ended run of every job; the service is then stopped, as on SIGTERM.

Every figure comes from the state store's history (start, end, result, bytes added,
duration of each run), and each repository's snapshots are counted with restic.
"""

import asyncio
import contextlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from time import monotonic
from typing import Any

from backup_lab import CLIENT, POOL, MemorySampler, Workspace, describe

from drd.api.metrics import DaemonMetrics
from drd.backup.actions import SiteBackupActions
from drd.backup.ceph_access import CephAccess
from drd.backup.restic import Restic, ResticError, ResticRepository
from drd.backup.restic_port import ResticRepositoryPort
from drd.backup.restic_process import Children
from drd.backup.scheduler import BackupScheduler, utc_now
from drd.backup.service import BackupService
from drd.ceph import rbd_observe
from drd.ceph.cluster import ClusterHandle
from drd.domain.backup_jobs import JobKind
from drd.domain.backup_policy import BackupPolicy
from drd.domain.replication_plan import ObservedImage
from drd.domain.repository_locks import AdmissionLimits
from drd.domain.tenant_policy import TenantPolicy
from drd.state import BackupJobRecord, RunState, StateStore

CEPH_DEADLINE_S = 30.0
POLL_S = 0.25


@dataclass(frozen=True)
class Tenant:
    name: str
    image: str
    repository: ResticRepository


@dataclass
class PhaseResult:
    """What one phase's history and repositories show."""

    name: str
    limits: AdmissionLimits
    tenants: int
    image_bytes: int
    records: list[BackupJobRecord] = field(default_factory=list)
    wall_s: float = 0.0  # from starting the service to every job's end on record
    snapshots: dict[str, int] = field(default_factory=dict)  # repository -> count
    expected_snapshots: dict[str, int] = field(default_factory=dict)
    peak_rss: int = 0
    peak_restics: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def failed(self) -> list[BackupJobRecord]:
        return [r for r in self.records if r.state is not RunState.SUCCEEDED]

    @property
    def run_seconds(self) -> list[float]:
        return [r.duration.total_seconds() for r in self.records if r.duration is not None]

    @property
    def history_span_s(self) -> float:
        """First recorded start to last recorded end."""
        ends = [r.finished_at for r in self.records if r.finished_at is not None]
        if not ends:
            return 0.0
        return (max(ends) - min(r.started_at for r in self.records)).total_seconds()

    def most_at_once(self, repository: str | None = None) -> int:
        """The most runs (on `repository`, or anywhere) that the history shows at once."""
        events: list[tuple[datetime, int]] = []
        for record in self.records:
            if repository in (None, record.repository) and record.finished_at is not None:
                events += [(record.started_at, 1), (record.finished_at, -1)]
        running = most = 0
        for _, change in sorted(events):  # an end sorts before a start at the same time
            running += change
            most = max(most, running)
        return most


def make_tenants(workspace: Workspace, phase: str, prefix: str, own: int,
                 shared: int) -> list[Tenant]:
    """`own` tenants with a repository each, then `shared` tenants with one between them."""
    tenants = [Tenant(f"own-{n:02d}", f"{prefix}own-{n:02d}",
                      workspace.repository(f"{phase}-own-{n:02d}")) for n in range(own)]
    if shared:
        common = workspace.repository(f"{phase}-shared")
        tenants += [Tenant(f"shared-{n}", f"{prefix}shared-{n}", common)
                    for n in range(shared)]
    return tenants


def policy(tenant: Tenant) -> TenantPolicy:
    return TenantPolicy.model_validate({
        "tenant": tenant.name,
        "backup": {
            "sources": [{"name": "disks", "pool": POOL, "images": [tenant.image]}],
            "schedule": {"cron": "0 3 * * *"},  # a new image is backed up at once anyway
            "repository": tenant.repository.url,
            "password_file": str(tenant.repository.password_file),
        },
    })


async def run_phase(name: str, conf: Path, tenants: Sequence[Tenant], *, image_bytes: int,
                    limits: AdmissionLimits, workspace: Workspace,
                    timeout_s: float) -> PhaseResult:
    """Back every tenant's image up through the service; the phase's figures."""
    result = PhaseResult(name, limits, len(tenants), image_bytes)
    store = StateStore.initialise(workspace.root / f"state-{name}", "a")
    cluster = ClusterHandle(conf, CLIENT, CEPH_DEADLINE_S)
    try:
        service = _service(store, conf, cluster, limits, workspace)
        service.set_policies({t.name: policy(t) for t in tenants})
        with MemorySampler().running() as memory:
            began = monotonic()
            loop = asyncio.create_task(service.loop(), name="backup service")
            try:
                ended = await _until_all_ended(store, len(tenants), loop, timeout_s)
                result.wall_s = monotonic() - began
            finally:
                loop.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await loop
        result.peak_rss, result.peak_restics = memory.peak_bytes, memory.peak_restics
        if not ended:
            result.problems.append(f"{name}: not every run had ended after {timeout_s:.0f} s")
        result.records = await asyncio.to_thread(_history, store, tenants)
        await _count_snapshots(tenants, result)
    finally:
        cluster.close()
        store.close()
    return result


def _service(store: StateStore, conf: Path, cluster: ClusterHandle, limits: AdmissionLimits,
             workspace: Workspace) -> BackupService:
    """What drd.daemon.backup_wiring.backup_service builds, with `limits`."""
    children = Children()

    def open_repository(tenant: str, policy: BackupPolicy
                        ) -> tuple[str, ResticRepositoryPort] | str:
        url = policy.repository
        if url is None:
            return "the benchmark's policies name their repository"
        repository = ResticRepository(url, policy.password_file, workspace.cache_dir)
        return url, Restic(repository, children=children)

    def list_images(pool: str, namespace: str) -> list[ObservedImage]:
        return cluster.run(lambda handle: rbd_observe.observe_pool_batched(
            handle, pool, namespace))

    actions = SiteBackupActions(store=store, ceph=CephAccess(conf, CLIENT),
                                metrics=DaemonMetrics("a", "production", "bench"))
    return BackupService(
        scheduler_for=lambda service: BackupScheduler(store, limits, service.next_due,
                                                      on_finished=actions.finished),
        actions=actions, list_images=list_images, open_repository=open_repository,
        clock=utc_now, on_start=actions.started)


async def _until_all_ended(store: StateStore, jobs: int, loop: "asyncio.Task[Any]",
                           timeout_s: float) -> bool:
    """Until the history holds `jobs` ended backup runs; False at the timeout."""
    deadline = monotonic() + timeout_s
    while monotonic() < deadline:
        if loop.done():
            loop.result()  # the service stopped by itself: raise what stopped it
            return False
        latest = await asyncio.to_thread(store.latest_backup_jobs, kind=JobKind.BACKUP)
        if sum(r.finished_at is not None for r in latest) >= jobs:
            return True
        await asyncio.sleep(POLL_S)
    return False


def _history(store: StateStore, tenants: Sequence[Tenant]) -> list[BackupJobRecord]:
    """Every backup run of every tenant, failed, cancelled and interrupted ones too."""
    return [record for tenant in tenants
            for record in store.backup_history(tenant.name, 100, kind=JobKind.BACKUP)]


async def _count_snapshots(tenants: Sequence[Tenant], result: PhaseResult) -> None:
    expected: dict[str, int] = {}
    for tenant in tenants:
        expected[tenant.repository.url] = expected.get(tenant.repository.url, 0) + 1
    result.expected_snapshots = expected
    by_url = {tenant.repository.url: tenant.repository for tenant in tenants}
    for url, repository in by_url.items():
        try:
            result.snapshots[url] = len(await Restic(repository).snapshots())
        except ResticError as error:
            result.problems.append(f"{result.name}: cannot list the snapshots of {url}: "
                                   f"{describe(error)}")
            continue
        if result.snapshots[url] != expected[url]:
            result.problems.append(f"{result.name}: {url} holds {result.snapshots[url]} "
                                   f"snapshots, not {expected[url]}")
