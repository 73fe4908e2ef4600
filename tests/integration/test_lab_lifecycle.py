"""`drd lab up|status|down` as an operator uses them, on real single-site clusters.

These labs run on their own address blocks (the session lab's block + 1 and + 2),
so they never disturb the shared three-site lab.
"""

import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from drd.lab.description import DaemonRole, LabDescription, Phase
from drd.lab.lab_store import load_description, save_description
from drd.lab.processes import is_running
from drd.lab.topology import MON_PORT
from tests.integration.conftest import DRD, TEST_BLOCK, run_drd

LIFECYCLE_BLOCK = str(int(TEST_BLOCK) + 1)
CONFLICT_BLOCK = str(int(TEST_BLOCK) + 2)


def _pids(description: LabDescription) -> set[int]:
    return {proc.pid for _, proc in description.all_processes()}


def _survivors(description: LabDescription) -> list[str]:
    return [proc.entity for _, proc in description.all_processes() if is_running(proc)]


@pytest.fixture
def lab_dir(tmp_path: Path) -> Iterator[Path]:
    directory = tmp_path / "lab"
    yield directory
    # Whatever a test left behind is stopped by PID, through the CLI under test.
    description = load_description(directory) if directory.exists() else None
    run_drd("lab", "down", "--dir", str(directory))
    if description is not None:
        assert not _survivors(description)


def test_status_of_the_three_site_lab_reports_health_daemons_and_peers(
        lab: LabDescription) -> None:
    result = run_drd("lab", "status", "--dir", str(lab.dir), "--json")
    assert result.returncode == 0, result.stderr
    status = json.loads(result.stdout)
    sites = {site["name"]: site for site in status["sites"]}
    assert set(sites) == {"a", "b", "c"}
    for site in sites.values():
        assert site["health"] == "HEALTH_OK", site["health_detail"]
        assert {d["role"] for d in site["daemons"] if d["running"]} == \
            {"mon", "osd", "mgr", "rbd-mirror", "rgw", "drd"}
        assert site["registered_services"].get("rbd-mirror") == 1
        # Each gateway syncs metadata and the data of both other zones.
        assert site["rgw_url"] == f"http://{site['address']}:8480"
        sources = {line.split(":")[0] for line in site["object_sync"]}
        assert sources == {"metadata"} | ({"a", "b", "c"} - {site["name"]}), \
            site["object_sync"]
    peers = {name: {(p["site"], p["direction"]) for p in site["mirror_peers"]}
             for name, site in sites.items()}
    assert ("b", "rx-tx") in peers["a"]
    assert peers["b"] == {("a", "rx-tx")}
    assert peers["c"] == {("a", "rx-only")}


def test_up_twice_changes_nothing_and_down_leaves_no_process(lab_dir: Path) -> None:
    first = run_drd("lab", "up", "--sites", "a", "--dir", str(lab_dir),
                    "--block", LIFECYCLE_BLOCK)
    assert first.returncode == 0, first.stderr
    before = load_description(lab_dir)
    assert before is not None and before.phase is Phase.READY

    again = run_drd("lab", "up", "--sites", "a", "--dir", str(lab_dir),
                    "--block", LIFECYCLE_BLOCK)
    assert again.returncode == 0, again.stderr
    assert "already up" in again.stderr
    after = load_description(lab_dir)
    assert after is not None and _pids(after) == _pids(before)
    # lab.json loses track of a daemon (two restarts recording at once can): down finds
    # it in the site's cgroup all the same.
    mirror = after.sites["a"].process(DaemonRole.RBD_MIRROR)
    assert mirror is not None and after.sites["a"].cgroup is not None
    after.sites["a"].processes.remove(mirror)
    save_description(after)

    down = run_drd("lab", "down", "--dir", str(lab_dir))
    assert down.returncode == 0, down.stderr
    assert not _survivors(before)
    assert f"rbd-mirror (pid {mirror.pid})" in down.stderr, down.stderr
    assert not lab_dir.exists()
    assert not after.sites["a"].cgroup.exists(), "the site's cgroup outlived the lab"
    assert run_drd("lab", "down", "--dir", str(lab_dir)).returncode == 0, \
        "a second down must be harmless"


def test_up_restarts_a_daemon_that_died(lab_dir: Path) -> None:
    assert run_drd("lab", "up", "--sites", "a", "--dir", str(lab_dir),
                   "--block", LIFECYCLE_BLOCK).returncode == 0
    description = load_description(lab_dir)
    assert description is not None
    mgr = description.sites["a"].process(DaemonRole.MGR)
    assert mgr is not None
    os.kill(mgr.pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while is_running(mgr) and time.monotonic() < deadline:
        time.sleep(0.1)

    status = run_drd("lab", "status", "--dir", str(lab_dir))
    assert status.returncode == 3, "status must fail while a daemon is down"

    revived = run_drd("lab", "up", "--sites", "a", "--dir", str(lab_dir),
                      "--block", LIFECYCLE_BLOCK)
    assert revived.returncode == 0, revived.stderr
    assert "mgr.a is not running; restarting it" in revived.stderr
    assert run_drd("lab", "status", "--dir", str(lab_dir)).returncode == 0


def test_up_after_an_up_killed_halfway_cleans_up_and_boots(lab_dir: Path) -> None:
    interrupted = subprocess.Popen(
        [DRD, "lab", "up", "--sites", "a", "--dir", str(lab_dir), "--block", LIFECYCLE_BLOCK],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    orphaned: LabDescription | None = None
    while time.monotonic() < deadline:
        orphaned = load_description(lab_dir) if lab_dir.exists() else None
        if orphaned is not None and len(orphaned.all_processes()) >= 2:
            break
        time.sleep(0.05)
    interrupted.kill()
    interrupted.wait()
    assert orphaned is not None and orphaned.phase is Phase.BOOTING
    assert _survivors(orphaned), "the killed `lab up` should have left daemons behind"

    recovered = run_drd("lab", "up", "--sites", "a", "--dir", str(lab_dir),
                        "--block", LIFECYCLE_BLOCK)
    assert recovered.returncode == 0, recovered.stderr
    assert "stopped halfway" in recovered.stderr
    assert not _survivors(orphaned), "the orphaned daemons must have been stopped"
    fresh = load_description(lab_dir)
    assert fresh is not None and fresh.phase is Phase.READY


def test_up_names_the_address_already_in_use(lab_dir: Path) -> None:
    address = f"127.{CONFLICT_BLOCK}.1.1"
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as squatter:
        squatter.bind((address, MON_PORT))
        squatter.listen()
        result = run_drd("lab", "up", "--sites", "a", "--dir", str(lab_dir),
                         "--block", CONFLICT_BLOCK)
    assert result.returncode == 1
    assert f"{address}:{MON_PORT} is already in use" in result.stderr
    description = load_description(lab_dir)
    assert description is None or not _survivors(description)


def test_up_without_ceph_installed_names_the_package_and_the_setup_command(
        lab_dir: Path) -> None:
    result = subprocess.run(
        [DRD, "lab", "up", "--sites", "a", "--dir", str(lab_dir), "--block", CONFLICT_BLOCK],
        capture_output=True, text=True, timeout=60, check=False,
        env={**os.environ, "PATH": "/nonexistent"})
    assert result.returncode == 1
    assert "Ceph package" in result.stderr and "is missing" in result.stderr
    assert "scripts/setup" in result.stderr
    assert not lab_dir.exists(), "nothing may be created when the packages are missing"


def test_status_without_a_lab_says_so(tmp_path: Path) -> None:
    result = run_drd("lab", "status", "--dir", str(tmp_path / "nothing"))
    assert result.returncode == 1
    assert "no lab at" in result.stderr


def test_up_shows_the_log_of_a_daemon_that_cannot_start(lab_dir: Path) -> None:
    assert run_drd("lab", "up", "--sites", "a", "--dir", str(lab_dir),
                   "--block", LIFECYCLE_BLOCK).returncode == 0
    description = load_description(lab_dir)
    assert description is not None
    mon = description.sites["a"].process(DaemonRole.MON)
    assert mon is not None
    os.kill(mon.pid, signal.SIGKILL)
    while is_running(mon):
        time.sleep(0.05)
    # The monitor's store is gone: it cannot come back.
    mon_store = lab_dir / "a" / "mon" / "ceph-a"
    mon_store.rename(mon_store.with_name("lost"))

    result = run_drd("lab", "up", "--sites", "a", "--dir", str(lab_dir),
                     "--block", LIFECYCLE_BLOCK)
    assert result.returncode == 1
    assert "mon.a exited" in result.stderr
    assert "last lines of the log" in result.stderr
    # The tail of the monitor's own log is shown. Its complaint ("monitor data
    # directory ... does not exist") is usually in it, but ceph-mon writes through an
    # asynchronous log thread and, exiting at once, sometimes loses the line.
    assert "ceph-mon.a.log" in result.stderr.split("--- last lines of the log ---")[1], \
        result.stderr


def test_down_kills_a_daemon_that_ignores_sigterm(lab_dir: Path) -> None:
    assert run_drd("lab", "up", "--sites", "a", "--dir", str(lab_dir),
                   "--block", LIFECYCLE_BLOCK).returncode == 0
    description = load_description(lab_dir)
    assert description is not None
    mirror = description.sites["a"].process(DaemonRole.RBD_MIRROR)
    assert mirror is not None
    # A stopped process cannot act on SIGTERM: the same as rbd-mirror hanging on it.
    os.kill(mirror.pid, signal.SIGSTOP)

    down = run_drd("lab", "down", "--dir", str(lab_dir))
    assert down.returncode == 0, down.stderr
    assert f"client.rbd-mirror.a (pid {mirror.pid}) ignored SIGTERM; killed it" in down.stderr
    assert not _survivors(description)
