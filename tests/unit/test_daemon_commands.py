"""The exact command line of every lab daemon and one-shot Ceph tool."""

import sys
from pathlib import Path

import pytest

from drd.lab.daemon_commands import (
    REQUIRED_BINARIES,
    daemon_command,
    mon_mkfs_command,
    monmap_command,
    osd_mkfs_command,
)
from drd.lab.description import DaemonRole
from drd.lab.topology import plan_sites

SITE_B = plan_sites(["b"], block=2)[0]
CONF = Path("/srv/lab-2/b/ceph.conf")
FSID = "8d3a1c2e-5b7f-4c1a-9e0d-2f6b8a4c7e91"


@pytest.mark.parametrize(
    ("role", "entity", "argv"),
    [
        (DaemonRole.MON, "mon.b", ["ceph-mon", "-f", "-c", str(CONF), "-i", "b"]),
        (DaemonRole.OSD, "osd.0", ["ceph-osd", "-f", "-c", str(CONF), "-i", "0"]),
        (DaemonRole.MGR, "mgr.b", ["ceph-mgr", "-f", "-c", str(CONF), "-i", "b"]),
        (DaemonRole.RGW, "client.rgw.b",
         ["radosgw", "-f", "-c", str(CONF), "-n", "client.rgw.b"]),
    ],
)
def test_core_daemons_run_in_the_foreground_on_the_site_conf(
    role: DaemonRole, entity: str, argv: list[str]
) -> None:
    command = daemon_command(role, SITE_B, CONF)

    assert (command.role, command.entity, command.argv, command.env) == (role, entity, argv, {})


def test_rbd_mirror_finds_its_conf_through_the_environment() -> None:
    command = daemon_command(DaemonRole.RBD_MIRROR, SITE_B, CONF)

    assert command.role is DaemonRole.RBD_MIRROR
    assert command.entity == "client.rbd-mirror.b"
    assert command.argv == ["rbd-mirror", "-f", "-n", "client.rbd-mirror.b"]
    assert command.env == {"CEPH_CONF": str(CONF)}


@pytest.mark.parametrize("role", [r for r in DaemonRole if r is not DaemonRole.DRD])
def test_every_ceph_binary_is_checked_before_the_lab_boots(role: DaemonRole) -> None:
    assert daemon_command(role, SITE_B, CONF).argv[0] in REQUIRED_BINARIES


def test_the_drd_daemon_runs_on_the_labs_own_interpreter_with_the_site_config() -> None:
    command = daemon_command(DaemonRole.DRD, SITE_B, CONF)
    assert command.entity == "drd.b"
    assert command.argv == [sys.executable, "-m", "drd", "daemon", "--config",
                            str(CONF.parent / "drd" / "drd.yaml"), "--drain-seconds", "5"]
    assert command.env == {"PYTHONUNBUFFERED": "1"}


def test_monmap_command_creates_a_map_with_the_site_monitor_on_msgr2() -> None:
    monmap = Path("/srv/lab-2/b/monmap")

    assert monmap_command(SITE_B, FSID, monmap) == [
        "monmaptool", "--create", "--fsid", FSID,
        "--addv", "b", "[v2:127.2.2.1:3300]", "/srv/lab-2/b/monmap",
    ]


def test_mon_mkfs_command_seeds_the_monitor_from_the_monmap_and_keyring() -> None:
    argv = mon_mkfs_command(SITE_B, CONF, Path("/srv/lab-2/b/monmap"),
                            Path("/srv/lab-2/b/mon-seed.keyring"))

    assert argv == [
        "ceph-mon", "-c", str(CONF), "--mkfs", "-i", "b",
        "--monmap", "/srv/lab-2/b/monmap", "--keyring", "/srv/lab-2/b/mon-seed.keyring",
    ]


def test_osd_mkfs_command_formats_osd_zero_with_the_given_uuid() -> None:
    osd_uuid = "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"

    assert osd_mkfs_command(CONF, osd_uuid) == [
        "ceph-osd", "-c", str(CONF), "--mkfs", "-i", "0", "--osd-uuid", osd_uuid,
    ]


def test_every_tool_the_lab_runs_is_checked_before_the_lab_boots() -> None:
    monmap = Path("/srv/monmap")
    tools = {
        monmap_command(SITE_B, FSID, monmap)[0],
        mon_mkfs_command(SITE_B, CONF, monmap, Path("/srv/seed"))[0],
        osd_mkfs_command(CONF, "uuid")[0],
    }

    assert tools <= REQUIRED_BINARIES.keys()
