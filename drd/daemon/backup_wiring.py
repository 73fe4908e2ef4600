"""The daemon's backup service, put together from the site config: restic probed once
at start, one Restic per tenant repository sharing the daemon's children, images listed
on this site's cluster, and the jobs' work from drd.backup.actions."""

import structlog

from drd.api.metrics import DaemonMetrics
from drd.backup.actions import SiteBackupActions
from drd.backup.ceph_access import CephAccess
from drd.backup.rbd_remote_copy import RemoteCopy
from drd.backup.restic import Restic, ResticRepository, ResticUnavailable, probe_version
from drd.backup.restic_port import ResticRepositoryPort
from drd.backup.restic_process import Children
from drd.backup.scheduler import BackupScheduler, utc_now
from drd.backup.service import LIMITS, BackupService
from drd.ceph import rbd_observe
from drd.ceph.cluster import ClusterHandle
from drd.domain.backup_policy import BackupPolicy
from drd.domain.replication_plan import ObservedImage
from drd.domain.site import SiteKind
from drd.domain.site_config import SiteConfig
from drd.state import StateStore

log = structlog.get_logger()
CEPH_DEADLINE_SECONDS = 30.0


async def backup_service(config: SiteConfig, store: StateStore,
                         metrics: DaemonMetrics) -> BackupService | None:
    """The site's backup service, or None when restic cannot run here (then the API
    says so, and every other part of the daemon runs as usual)."""
    try:
        version = await probe_version()
    except ResticUnavailable as error:
        log.error("backups disabled on this site", reason=str(error))
        return None
    log.info("restic found", version=".".join(map(str, version)))
    children = Children()
    cluster = ClusterHandle(config.ceph.conf, config.ceph.client, CEPH_DEADLINE_SECONDS)
    cache_dir = config.paths.state_dir / "restic-cache"

    def open_repository(tenant: str, policy: BackupPolicy
                        ) -> tuple[str, ResticRepositoryPort] | str:
        url = policy.repository or config.default_repository(tenant)
        if url is None:
            return ("the policy names no repository and the site config has no "
                    "backup.repositories")
        repository = ResticRepository(url, policy.password_file, cache_dir)
        return url, Restic(repository, children=children)

    def list_images(pool: str, namespace: str) -> list[ObservedImage]:
        return cluster.run(lambda handle: rbd_observe.observe_pool_batched(
            handle, pool, namespace))

    remote_peer = next((peer for peer in config.peers
                        if peer.kind is SiteKind.REMOTE and peer.ceph_conf is not None), None)
    remote = (None if remote_peer is None or remote_peer.ceph_conf is None else
              RemoteCopy(remote_peer.name, CephAccess(remote_peer.ceph_conf, config.ceph.client)))
    actions = SiteBackupActions(store=store, ceph=CephAccess(config.ceph.conf,
                                                             config.ceph.client),
                                metrics=metrics, remote=remote)
    return BackupService(
        scheduler_for=lambda service: BackupScheduler(store, LIMITS, service.next_due,
                                                      on_finished=actions.finished),
        actions=actions, list_images=list_images, open_repository=open_repository,
        clock=utc_now, on_start=actions.started,
        remote_site=remote.site if remote is not None else None)
