"""The machine-readable description of a lab: `<lab dir>/lab.json`.

Other commands, the tests, chaos experiments and benchmarks find every conf file,
keyring, address and process of the lab here. Pure models; `lab_store` reads and
writes the file.
"""

from datetime import datetime
from enum import StrEnum
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from drd.domain.site import SiteKind
from drd.lab.topology import PeerDirection

DESCRIPTION_VERSION = 1


class Phase(StrEnum):
    # Set before the first process starts, so a lab that dies halfway is recognisable.
    BOOTING = "booting"
    READY = "ready"


class DaemonRole(StrEnum):
    MON = "mon"
    OSD = "osd"
    MGR = "mgr"
    RBD_MIRROR = "rbd-mirror"
    RGW = "rgw"
    DRD = "drd"


# Stop order for `lab down`: drd first, so it never watches its own Ceph vanish;
# then rbd-mirror, because it can hang on SIGTERM once its peers are gone; monitors
# last, so the others can still report to them.
STOP_ORDER: tuple[tuple[DaemonRole, ...], ...] = (
    (DaemonRole.DRD,),
    (DaemonRole.RBD_MIRROR, DaemonRole.RGW),
    (DaemonRole.MGR, DaemonRole.OSD),
    (DaemonRole.MON,),
)
START_ORDER: tuple[DaemonRole, ...] = (
    DaemonRole.MON, DaemonRole.OSD, DaemonRole.MGR, DaemonRole.RBD_MIRROR, DaemonRole.RGW,
    DaemonRole.DRD,
)


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ProcessRecord(_Model):
    """One daemon the lab started. `create_time` tells it apart from a reused PID."""

    role: DaemonRole
    entity: str = Field(description="Ceph entity name, such as mon.a or client.rbd-mirror.a")
    pid: int
    create_time: float = Field(description="the kernel's start time of the process, epoch s")
    argv: list[str]
    env: dict[str, str] = Field(default_factory=dict, description="extra environment")
    log: Path = Field(description="Ceph's own log file for the daemon")
    console: Path = Field(description="stdout and stderr of the process")


class SiteRecord(_Model):
    name: str
    kind: SiteKind
    address: str
    mon_addr: str
    fsid: str
    root: Path
    conf: Path
    admin_keyring: Path
    keyrings: dict[str, Path] = Field(description="keyring file per cephx entity")
    rbd_pool: str = "rbd"
    drd_config: Path | None = Field(default=None, description="the site config of its drd daemon")
    api_url: str | None = Field(default=None, description="base URL of its drd daemon's API")
    rgw_zone: str | None = Field(default=None, description="the RGW zone its gateway serves")
    rgw_url: str | None = Field(default=None, description="S3 endpoint of its gateway")
    processes: list[ProcessRecord] = Field(default_factory=list)
    cgroup: Path | None = Field(
        default=None, description="the cgroup v2 group its daemons run in, for partitions")

    def process(self, role: DaemonRole) -> ProcessRecord | None:
        return next((p for p in self.processes if p.role is role), None)

    def replace_process(self, record: ProcessRecord) -> None:
        self.processes = [p for p in self.processes if p.role is not record.role] + [record]


class MirrorPeerRecord(_Model):
    """`site` pulls from (and, for rx-tx, can push to) `peer` on the rbd pool."""

    site: str
    peer: str
    direction: PeerDirection


class LabDescription(_Model):
    version: int = DESCRIPTION_VERSION
    dir: Path
    block: int
    phase: Phase
    created_at: datetime
    sites: dict[str, SiteRecord]
    mirror_peers: list[MirrorPeerRecord] = Field(default_factory=list)
    operator_token_file: Path | None = Field(
        default=None, description="0600 file with an operator token valid on every site's daemon")
    rgw_realm: str | None = Field(default=None, description="the RGW multisite realm")
    rgw_system_keys_file: Path | None = Field(
        default=None, description="0600 JSON file with the multisite system user's S3 keys")

    def all_processes(self) -> list[tuple[SiteRecord, ProcessRecord]]:
        return [(site, proc) for site in self.sites.values() for proc in site.processes]
