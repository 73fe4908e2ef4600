"""The command line of every lab daemon. Pure, so tests can assert on it exactly."""

import sys
from dataclasses import dataclass
from pathlib import Path

from drd.lab.ceph_conf import OSD_ID, rbd_mirror_entity, rgw_entity
from drd.lab.description import DaemonRole
from drd.lab.topology import SiteSpec

DRD_DIR = "drd"  # a site's drd config, tokens and state live in <site root>/drd


@dataclass(frozen=True)
class DaemonCommand:
    role: DaemonRole
    entity: str
    argv: list[str]
    env: dict[str, str]


def daemon_command(role: DaemonRole, site: SiteSpec, conf: Path) -> DaemonCommand:
    """How to run `role` of `site` in the foreground, so its PID is the daemon's own."""
    if role is DaemonRole.MON:
        return DaemonCommand(role, f"mon.{site.name}",
                             ["ceph-mon", "-f", "-c", str(conf), "-i", site.name], {})
    if role is DaemonRole.OSD:
        return DaemonCommand(role, f"osd.{OSD_ID}",
                             ["ceph-osd", "-f", "-c", str(conf), "-i", str(OSD_ID)], {})
    if role is DaemonRole.MGR:
        return DaemonCommand(role, f"mgr.{site.name}",
                             ["ceph-mgr", "-f", "-c", str(conf), "-i", site.name], {})
    if role is DaemonRole.RGW:
        return DaemonCommand(role, rgw_entity(site),
                             ["radosgw", "-f", "-c", str(conf), "-n", rgw_entity(site)], {})
    if role is DaemonRole.DRD:
        drd_config = conf.parent / DRD_DIR / "drd.yaml"
        # The interpreter running the lab runs the daemon too, so both are one install.
        return DaemonCommand(role, f"drd.{site.name}",
                             [sys.executable, "-m", "drd", "daemon", "--config", str(drd_config),
                              "--drain-seconds", "5"],
                             {"PYTHONUNBUFFERED": "1"})
    # rbd-mirror ignores -c; it finds its conf only through CEPH_CONF.
    entity = rbd_mirror_entity(site)
    return DaemonCommand(role, entity, ["rbd-mirror", "-f", "-n", entity],
                         {"CEPH_CONF": str(conf)})


def monmap_command(site: SiteSpec, fsid: str, monmap: Path) -> list[str]:
    return ["monmaptool", "--create", "--fsid", fsid,
            "--addv", site.name, f"[{site.mon_addr}]", str(monmap)]


def mon_mkfs_command(site: SiteSpec, conf: Path, monmap: Path, seed_keyring: Path) -> list[str]:
    return ["ceph-mon", "-c", str(conf), "--mkfs", "-i", site.name,
            "--monmap", str(monmap), "--keyring", str(seed_keyring)]


def osd_mkfs_command(conf: Path, osd_uuid: str) -> list[str]:
    return ["ceph-osd", "-c", str(conf), "--mkfs", "-i", str(OSD_ID), "--osd-uuid", osd_uuid]


REQUIRED_BINARIES: dict[str, str] = {
    # binary -> the Debian package that ships it
    "monmaptool": "ceph-base",
    "ceph-mon": "ceph-mon",
    "ceph-osd": "ceph-osd",
    "ceph-mgr": "ceph-mgr",
    "rbd-mirror": "rbd-mirror",
    "radosgw": "radosgw",
    "radosgw-admin": "radosgw",
}
