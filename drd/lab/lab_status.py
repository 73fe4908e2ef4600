"""`drd lab status`: per site, health, which daemons run, the mirroring peers, and the
object gateway with its multisite sync state."""

from concurrent.futures import ThreadPoolExecutor

from pydantic import BaseModel

from drd.ceph.cluster import CephError, cluster_health, connect
from drd.ceph.rbd_mirror_setup import list_peers
from drd.ceph.rgw_admin import RgwAdmin, RgwAdminError
from drd.domain.rgw_sync_status import parse_sync_status
from drd.lab import processes
from drd.lab.description import LabDescription, SiteRecord

STATUS_TIMEOUT = 5.0


class DaemonStatus(BaseModel):
    role: str
    entity: str
    pid: int
    running: bool


class PeerStatus(BaseModel):
    site: str
    direction: str
    client_name: str


class SiteStatus(BaseModel):
    name: str
    kind: str
    address: str
    health: str  # HEALTH_OK / HEALTH_WARN / HEALTH_ERR, or "unreachable"
    health_detail: str
    daemons: list[DaemonStatus]
    registered_services: dict[str, int]
    mirror_peers: list[PeerStatus]
    rgw_url: str | None = None
    object_sync: list[str] = []  # one line per source: metadata, then each zone's data


class LabStatus(BaseModel):
    dir: str
    block: int
    phase: str
    sites: list[SiteStatus]

    @property
    def healthy(self) -> bool:
        return all(s.health == "HEALTH_OK" and all(d.running for d in s.daemons)
                   for s in self.sites)


def site_status(site: SiteRecord) -> SiteStatus:
    daemons = [DaemonStatus(role=p.role.value, entity=p.entity, pid=p.pid,
                            running=processes.is_running(p))
               for p in site.processes]
    health, detail, services, peers = "unreachable", "", {}, []
    try:
        with connect(site.conf, timeout=STATUS_TIMEOUT) as cluster:
            state = cluster_health(cluster)
            health = state.status
            detail = state.settled()[1]
            services = state.services
            peers = [PeerStatus(site=p.site_name, direction=p.direction, client_name=p.client_name)
                     for p in list_peers(cluster, site.rbd_pool)]
    except CephError as error:
        detail = str(error)
    return SiteStatus(name=site.name, kind=site.kind.value, address=site.address,
                      health=health, health_detail=detail, daemons=daemons,
                      registered_services=services, mirror_peers=peers,
                      rgw_url=site.rgw_url, object_sync=_object_sync(site))


def _object_sync(site: SiteRecord) -> list[str]:
    if site.rgw_zone is None:
        return []
    try:
        text = RgwAdmin(site.conf, timeout=STATUS_TIMEOUT * 2).text(
            "sync", "status", "--rgw-zone", site.rgw_zone)
    except RgwAdminError as error:
        return [f"unknown: {error}"]
    return [source.summary() for source in parse_sync_status(text)]


def lab_status(description: LabDescription) -> LabStatus:
    """Ask every site at once, so one dead site costs one timeout, not one per site."""
    sites = list(description.sites.values())
    with ThreadPoolExecutor(max_workers=max(1, len(sites))) as pool:
        statuses = list(pool.map(site_status, sites))
    return LabStatus(dir=str(description.dir), block=description.block,
                     phase=description.phase.value, sites=statuses)
