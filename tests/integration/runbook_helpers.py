"""What the runbook tests share: the daemon's API as an operator, mirrored images of a
tenant namespace, and the daemon processes of a lab."""

import contextlib
import json
import os
import signal
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil
import rbd

from drd.api.tokens import read_secret_file
from drd.lab.description import DaemonRole, LabDescription, SiteRecord
from drd.lab.lab_store import load_description
from drd.lab.processes import is_running
from tests.integration.conftest import run_drd
from tests.integration.rbd_images import image_sha256, pool
from tests.integration.test_replication import eventually

NAMESPACE = "water"


def api(lab: LabDescription, site: str, path: str, body: dict[str, Any] | None = None
        ) -> dict[str, Any]:
    """GET (or POST `body`) a route of `site`'s daemon as the lab's operator."""
    assert lab.operator_token_file is not None
    request = urllib.request.Request(  # noqa: S310 (the lab's own http:// URL)
        f"{lab.sites[site].api_url}{path}", method="GET" if body is None else "POST",
        data=None if body is None else json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {read_secret_file(lab.operator_token_file)}",
                 "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
            answer: dict[str, Any] = json.loads(response.read())
            return answer
    except urllib.error.URLError as error:
        if not isinstance(error.reason, ConnectionRefusedError):
            raise
        raise DaemonNotListening(f"{site}'s drd refused {path}: "
                                 f"{daemon_told(lab, site)}") from error


class DaemonNotListening(ConnectionRefusedError):
    """A site's drd refused a connection; says whether its process lives, and its last
    console lines (an OSError still, as callers that wait for an answer expect)."""


def daemon_told(lab: LabDescription, site: str) -> str:
    """Whether `site`'s drd process runs, and the last lines of its console."""
    now = load_description(lab.dir)
    record = None if now is None else now.sites[site].process(DaemonRole.DRD)
    if record is None:
        return "lab.json names no drd there"
    try:
        console = record.console.read_text(errors="replace").splitlines()[-8:]
    except OSError as error:
        console = [f"(console unreadable: {error})"]
    return (f"pid {record.pid} {'runs' if is_running(record) else 'is not running'}; "
            "its console ends:\n  " + "\n  ".join(console))


def is_primary(site: SiteRecord, name: str) -> bool:
    with pool(site, NAMESPACE) as ioctx, rbd.Image(ioctx, name, read_only=True) as image:
        return bool(image.mirror_image_get_info()["primary"])


def mirroring_enabled(site: SiteRecord, name: str) -> bool:
    try:
        return is_primary(site, name)
    except rbd.Error:  # not there, or mirroring not enabled yet
        return False


def take_mirror_snapshots(site: SiteRecord, names: list[str]) -> None:
    with pool(site, NAMESPACE) as ioctx:
        for name in names:
            with rbd.Image(ioctx, name) as image:
                image.mirror_image_create_snapshot()


def checksums(site: SiteRecord, names: list[str]) -> dict[str, str]:
    return {name: image_sha256(site, name, NAMESPACE) for name in names}


def wait_ended(lab: LabDescription, site: str, run_id: int,
               timeout: float = 300) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while (view := api(lab, site, f"/v1/runs/{run_id}"))["state"] == "running":
        assert time.monotonic() < deadline, \
            f"run {run_id} still running after {timeout:.0f} s:\n{steps_told(view)}"
        time.sleep(0.5)
    return view


def steps_told(view: dict[str, Any]) -> str:
    """A run's steps as an assertion message: state, error and the last output lines."""
    return "\n".join(f"{s['name']}: {s['state']} {s['seconds']} s {s['error'] or ''} | "
                     + " / ".join(s["output"][-4:]) for s in view["steps"])


def pids(lab_dir: Path, site: str, roles: set[DaemonRole]) -> list[int]:
    """PIDs of `site`'s processes in `roles`, as lab.json holds them now."""
    description = load_description(lab_dir)
    assert description is not None
    return [p.pid for p in description.sites[site].processes if p.role in roles]


def kill(pids_to_kill: list[int]) -> None:
    """SIGKILL each process and wait until it is gone."""
    for pid in pids_to_kill:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    for pid in pids_to_kill:
        with contextlib.suppress(psutil.NoSuchProcess):
            psutil.Process(pid).wait(30)


def restart_dead(lab: LabDescription) -> None:
    """`drd lab up` on a running lab restarts the processes that died."""
    restarted = run_drd("lab", "up", "--dir", str(lab.dir), "--block", str(lab.block),
                        timeout=300)
    assert restarted.returncode == 0, restarted.stderr


def answers(lab: LabDescription, site: str) -> bool:
    try:
        api(lab, site, "/v1/runs?limit=1")
        return True
    except OSError:
        return False


def wait_answers(lab: LabDescription, site: str) -> None:
    eventually(lambda: answers(lab, site), 180, f"site {site}'s daemon answers")


def wait_until(check: Callable[[], bool], timeout: float, what: str) -> float:
    """Poll `check` every 0.2 s until true; the seconds it took (AssertionError after
    `timeout`, naming `what`)."""
    started = time.monotonic()
    while not check():
        assert time.monotonic() - started < timeout, f"not within {timeout} s: {what}"
        time.sleep(0.2)
    return time.monotonic() - started
