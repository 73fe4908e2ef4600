"""A lab of its own for a test module that breaks a site, and images replicated in it."""

import contextlib
import os
import signal
from collections.abc import Iterator
from pathlib import Path

import psutil
import rbd

from drd.lab.description import LabDescription
from drd.lab.lab_store import load_description
from tests.integration.conftest import run_drd
from tests.integration.rbd_images import (
    pool,
    random_bytes,
    wait_for_checksum,
    wait_snapshot_copied,
)
from tests.integration.runbook_helpers import (
    NAMESPACE,
    checksums,
    mirroring_enabled,
    take_mirror_snapshots,
)
from tests.integration.test_replication import drd, eventually


def booted(lab_dir: Path, block: str) -> Iterator[LabDescription]:
    """Boot a lab on `block` in `lab_dir`; remove it after."""
    up = run_drd("lab", "up", "--dir", str(lab_dir), "--block", block, timeout=600)
    assert up.returncode == 0, up.stderr
    description = load_description(lab_dir)
    assert description is not None
    try:
        yield description
    finally:
        if os.environ.get("DRD_TEST_KEEP_LABS"):  # to read a failed run's logs after it
            print(f"\nkept the lab in {lab_dir}: drd lab down --dir {lab_dir}")
        else:
            down = run_drd("lab", "down", "--dir", str(lab_dir))
            assert down.returncode == 0, down.stderr


def replicated_images(lab: LabDescription, names: list[str], size: int, policy: Path,
                      snapshot_mode: list[str]) -> dict[str, str]:
    """Create the images on a full of random data, apply `policy` on every site, and
    wait until b holds each; their checksums."""
    with pool(lab.sites["a"], NAMESPACE) as ioctx:
        for number, name in enumerate(names):
            rbd.RBD().create(ioctx, name, size, old_format=False)
            with rbd.Image(ioctx, name) as image:
                image.write(random_bytes(number, size), 0)
    for site in ("a", "b", "c"):
        applied = drd(lab, "policy", "apply", str(policy), site=site)
        assert applied.returncode == 0, applied.stderr
    eventually(lambda: all(mirroring_enabled(lab.sites["a"], n) for n in names), 120,
               "drd enabled mirroring of every image")
    take_mirror_snapshots(lab.sites["a"], snapshot_mode)
    expected = checksums(lab.sites["a"], names)
    for name in names:
        wait_for_checksum(lab.sites["b"], name, expected[name], timeout=180,
                          namespace=NAMESPACE)
    for name in snapshot_mode:
        wait_snapshot_copied(lab.sites["a"], lab.sites["b"], name, namespace=NAMESPACE)
    return expected


def stop(pids_to_stop: list[int]) -> None:
    """SIGTERM each process and wait until it has exited (memstore writes itself out)."""
    for pid in pids_to_stop:
        os.kill(pid, signal.SIGTERM)
    for pid in pids_to_stop:
        with contextlib.suppress(psutil.NoSuchProcess):
            psutil.Process(pid).wait(120)
