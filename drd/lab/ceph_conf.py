"""Render a lab site's ceph.conf, its cephx entities and their keyrings.

Pure: callers pass in the randomness and the time, and write the files.
"""

import base64
import struct
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from drd.lab.topology import RGW_PORT, SiteSpec

OSD_ID = 0
CEPH_KEY_TYPE_AES = 1
CEPH_SECRET_BYTES = 16
DEFAULT_MEMSTORE_BYTES = 2 * 1024**3
MGR_DISABLED_MODULES = (
    "diskprediction_local", "alerts", "influx", "insights", "localpool", "mirroring", "nfs",
    "osd_perf_query", "osd_support", "prometheus", "restful", "selftest", "snap_schedule",
    "stats", "telegraf", "test_orchestrator", "zabbix",
)


@dataclass(frozen=True)
class SiteLayout:
    """Where one site's files live inside the lab directory."""

    root: Path

    @property
    def conf(self) -> Path:
        return self.root / "ceph.conf"

    @property
    def log_dir(self) -> Path:
        return self.root / "log"

    @property
    def run_dir(self) -> Path:
        return self.root / "run"

    def keyring(self, entity: str) -> Path:
        return self.root / f"ceph.{entity}.keyring"

    def data_dir(self, kind: str, daemon_id: str) -> Path:
        return self.root / kind / f"ceph-{daemon_id}"

    def log(self, entity: str) -> Path:
        return self.log_dir / f"ceph-{entity}.log"

    def directories(self) -> list[Path]:
        return [self.root, self.log_dir, self.run_dir,
                self.root / "mon", self.root / "osd", self.root / "mgr"]


@dataclass(frozen=True)
class Entity:
    """A cephx identity and its capabilities."""

    name: str
    caps: tuple[tuple[str, str], ...]


def site_entities(site: SiteSpec) -> list[Entity]:
    """The identities a lab site needs; all are seeded into the monitor at mkfs time."""
    return [
        Entity("client.admin", (("mon", "allow *"), ("osd", "allow *"),
                                ("mds", "allow *"), ("mgr", "allow *"))),
        Entity(f"osd.{OSD_ID}", (("mon", "allow profile osd"), ("mgr", "allow profile osd"),
                                 ("osd", "allow *"))),
        Entity(f"mgr.{site.name}", (("mon", "allow profile mgr"), ("osd", "allow *"),
                                    ("mds", "allow *"))),
        Entity(rbd_mirror_entity(site), (("mon", "profile rbd-mirror"), ("osd", "profile rbd"))),
        Entity(rgw_entity(site), (("mon", "allow rw"), ("osd", "allow rwx"))),
    ]


def mon_entity() -> Entity:
    return Entity("mon.", (("mon", "allow *"),))


def rbd_mirror_entity(site: SiteSpec) -> str:
    return f"client.rbd-mirror.{site.name}"


def rgw_entity(site: SiteSpec) -> str:
    return f"client.rgw.{site.name}"


def new_ceph_key(secret: bytes, created: datetime) -> str:
    """Encode a cephx secret the way Ceph's CryptoKey does (what ceph-authtool --gen-key prints).

    Layout, little-endian: u16 type, u32 seconds, u32 nanoseconds, u16 length, secret.
    """
    if len(secret) != CEPH_SECRET_BYTES:
        raise ValueError(f"a cephx secret is {CEPH_SECRET_BYTES} bytes, not {len(secret)}")
    seconds = int(created.timestamp())
    nanoseconds = created.microsecond * 1000
    header = struct.pack("<HIIH", CEPH_KEY_TYPE_AES, seconds, nanoseconds, len(secret))
    return base64.b64encode(header + secret).decode("ascii")


def render_keyring(entries: list[tuple[Entity, str]]) -> str:
    """A keyring file holding each entity's key and caps."""
    sections = []
    for entity, key in entries:
        lines = [f"[{entity.name}]", f"\tkey = {key}"]
        lines += [f'\tcaps {service} = "{cap}"' for service, cap in entity.caps]
        sections.append("\n".join(lines))
    return "\n".join(sections) + "\n"


def render_ceph_conf(site: SiteSpec, fsid: str, layout: SiteLayout,
                     memstore_bytes: int = DEFAULT_MEMSTORE_BYTES) -> str:
    """One site's ceph.conf: a single mon, memstore OSD and mgr, all inside the lab dir."""
    root = layout.root
    daemon_log = f"{layout.log_dir}/$cluster-$name.log"
    daemon_socket = f"{layout.run_dir}/$cluster-$name.asok"
    return f"""\
# drd lab site {site.name} ({site.kind.value}); written by `drd lab up`.
[global]
fsid = {fsid}
mon_host = [{site.mon_addr}]
public_addr = {site.address}
ms_bind_msgr1 = false
auth_cluster_required = cephx
auth_service_required = cephx
auth_client_required = cephx
auth_allow_insecure_global_id_reclaim = false
keyring = {root}/$cluster.$name.keyring
run_dir = {layout.run_dir}
osd_objectstore = memstore
memstore_device_bytes = {memstore_bytes}
# One OSD per site: size-1 pools, no redundancy warnings, no autoscaler churn.
osd_pool_default_size = 1
osd_pool_default_min_size = 1
osd_pool_default_pg_num = 8
osd_pool_default_pgp_num = 8
osd_pool_default_pg_autoscale_mode = off
osd_crush_chooseleaf_type = 0
mon_allow_pool_size_one = true
mon_warn_on_pool_no_redundancy = false
mon_max_pg_per_osd = 750
mon_allow_pool_delete = true
mon_data_avail_warn = 1
# Keep the mgr light: only what drd uses.
mgr_initial_modules = iostat
# Report PG states each second rather than every 5 s, so a settled cluster is seen
# as settled at once (measured: sites reach HEALTH_OK in 6 s instead of 14 s).
mgr_stats_period = 1

[mon]
mon_data = {root}/mon/$cluster-$id
# Commit map changes after 0.1 s instead of 1 s: booting a site is a chain of about
# six of them (OSD boot, pool create, pool init).
paxos_propose_interval = 0.1
keyring = $mon_data/keyring
log_file = {daemon_log}
# The cluster and audit logs too, or every lab's mons share /var/log/ceph/ceph.log.
mon_cluster_log_file = {layout.log_dir}/$cluster.$channel.log
admin_socket = {daemon_socket}

[osd]
osd_data = {root}/osd/$cluster-$id
# A clean stop writes memstore to disk, so an OSD restart keeps its data.
osd_fast_shutdown = false
# memstore reports itself rotational, so the OSD slept 5 s (the hdd default) between
# snapshot trims: measured here, the data of removed snapshots (drills, backups, mirror
# snapshots) then stayed in memory for minutes, filled a 4 GiB memstore, and writes
# blocked on a full OSD. Trimmed at once, the same load stayed under 1 GiB.
osd_snap_trim_sleep_hdd = 0
log_file = {daemon_log}
admin_socket = {daemon_socket}

[mgr]
mgr_data = {root}/mgr/$cluster-$id
mgr_tick_period = 1
# The mgr imports every module before it turns active, CPU-bound, three sites at
# once; skip the optional ones the lab never uses (the always-on ones must stay).
mgr_disabled_modules = {",".join(MGR_DISABLED_MODULES)}
log_file = {daemon_log}
admin_socket = {daemon_socket}

[{rbd_mirror_entity(site)}]
log_file = {daemon_log}
admin_socket = {daemon_socket}
# Measured here: these cut journal-mode RPO from 1.8 s to 0.15 s. The commit age is
# how often a peer records its replay position, which is all drd sees of it.
rbd_mirror_journal_poll_age = 0.2
rbd_mirror_journal_commit_age = 0.2
# Notice promotions and new images in seconds rather than half a minute.
rbd_mirror_image_state_check_interval = 5
rbd_mirror_pool_replayers_refresh_interval = 5

[client]
# Multisite log shards: every gateway polls each of them, and radosgw-admin must
# agree with the gateways, hence [client]. 16 instead of 128 and 64 keeps three idle
# gateways on two cores light; a real site keeps the defaults.
rgw_data_log_num_shards = 16
rgw_md_log_max_shards = 16
# A fresh secondary applied its first metadata change (a new user) only after the
# 120 s sync lease, measured here; 20 s brings that to about 20 s.
rgw_sync_lease_period = 20

[{rgw_entity(site)}]
log_file = {daemon_log}
admin_socket = {daemon_socket}
rgw_frontends = beast endpoint={site.address}:{RGW_PORT}
rgw_zone = {site.name}
# 512 request threads by default; a lab gateway serves a test at a time.
rgw_thread_pool_size = 32
"""
