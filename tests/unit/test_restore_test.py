"""What a restore test reads of restic's record before it restores anything, against a
fake at the restic Protocol boundary that answers with what real restic 0.18 printed
(tests/unit/data/restic_objects_0.18.0.json): as few index files as hold every chunk,
and a loud failure when the record and drd's disagree or cannot be read whole."""

import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from drd.backup.ceph_access import CephAccess
from drd.backup.job_run import JobFailed
from drd.backup.restic import ResticError
from drd.backup.restic_objects import (
    FileNode,
    SnapshotObject,
    parse_file_node,
    parse_index_lengths,
    parse_snapshot_object,
)
from drd.backup.restic_outcome import Outcome, OutcomeKind
from drd.backup.restore_test import RecordUnreadable, recorded_chunks, restore_test
from drd.domain.backup_jobs import JobKey, JobKind
from drd.domain.replication_plan import ImageRef
from drd.state import ImageBackupRecord, StateStore

CAPTURED: dict[str, Any] = json.loads(
    (Path(__file__).parent / "data" / "restic_objects_0.18.0.json").read_text())
RUNS: dict[str, Any] = CAPTURED["runs"]
AUTO: dict[str, Any] = CAPTURED["repositories"]["auto"]
FILE: str = CAPTURED["data"]["file_name"]
SIZE: int = CAPTURED["data"]["size"]
FIRST, SECOND = (s["snapshot_id"] for s in AUTO["snapshots"])
# Never reached: these tests fail before anything is restored.
NO_CEPH = CephAccess(Path("/nonexistent/ceph.conf"), "drd")


class CapturedRestic:
    """The `auto` repository as restic printed it; index files in the order given."""

    def __init__(self, indexes: list[int], failing_index: ResticError | None = None) -> None:
        self.order = [AUTO["indexes"][n] for n in indexes]
        self.failing_index = failing_index
        self.read: list[int] = []

    async def snapshot_object(self, snapshot_id: str) -> SnapshotObject:
        number = [s["snapshot_id"] for s in AUTO["snapshots"]].index(snapshot_id)
        return parse_snapshot_object(RUNS[f"auto_cat_snapshot_{number}"]["stdout"])

    async def file_node(self, tree_id: str, name: str) -> FileNode:
        number = [s["tree"] for s in AUTO["snapshots"]].index(tree_id)
        return parse_file_node(RUNS[f"auto_cat_tree_{number}"]["stdout"], name)

    async def index_ids(self) -> list[str]:
        return self.order

    async def index_lengths(self, index_id: str) -> dict[str, int]:
        if self.failing_index is not None:
            raise self.failing_index
        number = AUTO["indexes"].index(index_id)
        self.read.append(number)
        return parse_index_lengths(RUNS[f"auto_cat_index_{number}"]["stdout"])

    def __getattr__(self, name: str) -> Callable[..., Any]:
        raise AssertionError(f"this restore test must not get as far as restic {name}")


@pytest.mark.parametrize(("snapshot", "order", "read"), [
    (FIRST, [0, 1], [0]),  # every chunk of the first backup is in its own index
    (FIRST, [1, 0], [1, 0]),
    (SECOND, [1, 0], [1, 0]),  # the second shares most of its chunks with the first
])
async def test_index_files_are_read_only_until_every_chunk_is_found(
        snapshot: str, order: list[int], read: list[int]) -> None:
    restic = CapturedRestic(order)
    chunks = await recorded_chunks(restic, snapshot, FILE)
    assert chunks.size == chunks.total == SIZE
    assert restic.read == read


async def test_a_chunk_in_no_index_file_is_a_damaged_repository() -> None:
    with pytest.raises(RecordUnreadable) as unreadable:
        await recorded_chunks(CapturedRestic([1]), FIRST, FILE)
    assert "data blobs of /rbd+water+db-1.raw are in no index file" in str(unreadable.value)
    assert "`restic check` says more" in str(unreadable.value)


async def test_restics_failure_or_a_missing_file_is_named() -> None:
    locked = ResticError(Outcome(OutcomeKind.LOCKED, 11, "restic cat index could not "
                                 "lock the repository"))
    with pytest.raises(RecordUnreadable, match="reading restic's record of it failed: "
                                               "restic cat index could not lock"):
        await recorded_chunks(CapturedRestic([0], failing_index=locked), FIRST, FILE)
    with pytest.raises(RecordUnreadable, match=r"holds no file 'other\.raw'"):
        await recorded_chunks(CapturedRestic([0]), FIRST, "other.raw")


@pytest.fixture
def store(tmp_path: Path) -> Iterator[StateStore]:
    with StateStore.initialise(tmp_path / "state", "c") as opened:
        yield opened


def record(snapshot_id: str, image_bytes: int) -> ImageBackupRecord:
    return ImageBackupRecord(snapshot_id, "water", "databases",
                             ImageRef("rbd", "water", "db-1"), FILE, image_bytes,
                             datetime(2026, 3, 1, tzinfo=UTC))


async def test_a_recorded_size_restic_disagrees_with_fails_before_restoring(
        store: StateStore) -> None:
    store.record_image_backup(record(FIRST, SIZE + 4096))
    with pytest.raises(JobFailed) as failed:
        await restore_test(CapturedRestic([0, 1]), NO_CEPH, store, snapshot_id=FIRST,
                           scratch=("rbd", ""))
    assert failed.value.reason == (
        f"restore test of snapshot {FIRST[:8]} of rbd/water/db-1 failed: restic recorded "
        f"the file as {SIZE} bytes, but the image was {SIZE + 4096} bytes at the backup's "
        f"snapshot")
    assert failed.value.snapshot_id == FIRST


async def test_a_snapshot_drd_has_no_record_of_or_of_another_source_is_refused(
        store: StateStore) -> None:
    with pytest.raises(JobFailed, match="drd recorded no image backup with that ID"):
        await restore_test(CapturedRestic([0]), NO_CEPH, store, snapshot_id=FIRST,
                           scratch=("rbd", ""))
    store.record_image_backup(record(FIRST, SIZE))
    other = JobKey("water", JobKind.RESTORE_TEST, "web", "/srv/restic/water")
    with pytest.raises(JobFailed, match="it is a backup of water/databases, not of the job"):
        await restore_test(CapturedRestic([0]), NO_CEPH, store, snapshot_id=FIRST,
                           scratch=("rbd", ""), job=other)
