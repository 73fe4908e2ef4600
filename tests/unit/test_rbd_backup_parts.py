"""The parts of RBD backups and restores that need neither Ceph nor restic: the export
command restic runs, CephAccess's `rbd` argv, finishing work through a cancellation, and which
snapshot a restore resolves to (restic faked at its Protocol)."""

import asyncio
import re
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NoReturn

import pytest

from drd.backup.ceph_access import CephAccess, finish_despite_cancel
from drd.backup.job_run import JobFailed
from drd.backup.rbd_backup import export_command
from drd.backup.rbd_restore import RestoreRefused, resolve_snapshot
from drd.backup.restic import ResticError
from drd.backup.restic_argv import ALL_SNAPSHOTS, SnapshotFilter
from drd.backup.restic_messages import Snapshot
from drd.backup.restic_outcome import Outcome, OutcomeKind
from drd.domain.replication_plan import ImageRef

CEPH = CephAccess(Path("/etc/ceph/site-a.conf"), "drd")
FILE = "rbd+water+db-1.raw"


def test_restic_runs_rbd_export_of_the_snapshot_itself_with_no_relay() -> None:
    command = export_command(CEPH, ImageRef("rbd", "water", "db-1"), "drd-backup-0a1b")
    assert command == [
        "rbd", "-c", "/etc/ceph/site-a.conf", "--id", "drd", "export", "--no-progress",
        "rbd/water/db-1@drd-backup-0a1b", "-"]
    plain = export_command(CEPH, ImageRef("rbd", "", "vm"), "s")
    assert plain[-2] == "rbd/vm@s"  # `rbd//vm` would name the image "/vm"


@pytest.mark.parametrize("client", ["client.drd", "", "-x"])
def test_ceph_access_takes_the_bare_cephx_id(client: str) -> None:
    with pytest.raises(ValueError, match=r"the name after .client\."):
        CephAccess(Path("/c"), client)


async def test_work_runs_to_its_end_through_a_cancellation_which_then_propagates() -> None:
    finished = asyncio.Event()
    told: list[str] = []

    async def cleanup() -> str:
        await asyncio.sleep(0.05)
        finished.set()
        return "done"

    task = asyncio.create_task(finish_despite_cancel(cleanup(), lambda: told.append("stop")))
    await asyncio.sleep(0)
    task.cancel()
    await asyncio.sleep(0.01)
    task.cancel()  # a second cancellation neither interrupts it nor tells it twice
    with pytest.raises(asyncio.CancelledError):
        await task
    assert finished.is_set() and told == ["stop"]


async def test_an_error_of_the_work_does_not_swallow_an_earlier_cancellation() -> None:
    async def failing() -> NoReturn:
        await asyncio.sleep(0.02)
        raise RuntimeError("cleanup failed")

    task = asyncio.create_task(finish_despite_cancel(failing()))
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError) as cancelled:
        await task
    assert isinstance(cancelled.value.__cause__, RuntimeError)
    assert await finish_despite_cancel(asyncio.sleep(0, "value")) == "value"


def snapshot(hex_id: str, day: int) -> Snapshot:
    return Snapshot(id=hex_id, short_id=hex_id[:8], time=datetime(2026, 3, day, tzinfo=UTC),
                    hostname="water", paths=(f"/{FILE}",), tags=(), parent=None, summary=None)


OLD, NEW, TWIN = "ab" * 32, "cd" * 32, "abababab" + "0" * 56  # OLD and TWIN share 8 digits


class FakeRestic:
    """Only `snapshots` answers; a restore resolves its snapshot with nothing else."""

    def __init__(self, held: list[Snapshot], error: ResticError | None = None) -> None:
        self.held = held
        self.error = error
        self.asked: list[SnapshotFilter] = []

    async def snapshots(self, selection: SnapshotFilter = ALL_SNAPSHOTS) -> list[Snapshot]:
        self.asked.append(selection)
        if self.error is not None:
            raise self.error
        return self.held

    def __getattr__(self, name: str) -> Callable[..., Any]:
        raise AssertionError(f"resolving a snapshot must not call restic {name}")


def resolve(restic: FakeRestic, wanted: str) -> Any:
    return resolve_snapshot(restic, wanted, FILE)


async def test_latest_is_the_newest_snapshot_of_that_file() -> None:
    restic = FakeRestic([snapshot(NEW, 2), snapshot(OLD, 1)])
    assert await resolve(restic, "latest") == NEW
    assert restic.asked == [SnapshotFilter(paths=(f"/{FILE}",))]
    with pytest.raises(RestoreRefused, match=re.escape(f"holds no snapshot of {FILE}")):
        await resolve(FakeRestic([]), "latest")


async def test_a_full_id_needs_no_listing_and_a_prefix_must_be_unique() -> None:
    assert await resolve(FakeRestic([]), OLD) == OLD  # restic dump refuses it if unknown
    held = FakeRestic([snapshot(OLD, 1), snapshot(TWIN, 2), snapshot(NEW, 3)])
    assert await resolve(held, "cdcdcdcd") == NEW
    assert await resolve(held, "ababababa") == OLD
    with pytest.raises(RestoreRefused) as ambiguous:
        await resolve(held, "abababab")
    assert str(ambiguous.value) == (f"2 snapshot(s) of {FILE} in the repository have an ID "
                                    f"starting abababab")
    with pytest.raises(RestoreRefused, match=re.escape(f"no snapshot(s) of {FILE}")):
        await resolve(held, "ffffffff")


@pytest.mark.parametrize("wanted", ["abc", "ABCDEF01", "latest2", "-x", ""])
async def test_anything_else_is_not_a_snapshot_id(wanted: str) -> None:
    with pytest.raises(RestoreRefused, match="is not a snapshot ID"):
        await resolve(FakeRestic([]), wanted)


async def test_a_failed_listing_is_a_failed_restore_with_restics_reason() -> None:
    locked = ResticError(Outcome(OutcomeKind.WRONG_PASSWORD, 12, "restic snapshots could "
                                 "not open the repository: wrong password"))
    with pytest.raises(JobFailed, match=r"listing the snapshots of .* wrong password"):
        await resolve(FakeRestic([], locked), "latest")
