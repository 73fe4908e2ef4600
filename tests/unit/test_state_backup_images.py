"""The state store's image backups: one per restic snapshot, written once (its sha256 set
once, when first known), read back typed; and the digests of schema 4 carried over."""

import sqlite3
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from drd.domain.backup_jobs import JobKey, JobKind
from drd.domain.replication_plan import ImageRef
from drd.state import (
    ImageBackupConflict,
    ImageBackupRecord,
    RecordNotFound,
    StateStore,
    schema,
)
from drd.state.database_file import database_path

NOW = datetime(2026, 3, 1, 2, 0, tzinfo=UTC)
DB1 = ImageRef("rbd", "water", "db-1")


def backup(n: int, *, source: str = "databases", tenant: str = "water",
           image: ImageRef = DB1, at: datetime = NOW) -> ImageBackupRecord:
    return ImageBackupRecord(snapshot_id=f"{n:064x}", tenant=tenant, source=source,
                             image=image, file_name="rbd+water+db-1.raw",
                             image_bytes=256 << 20, taken_at=at)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[StateStore]:
    with StateStore.initialise(tmp_path / "state", "c") as store:
        yield store


def test_a_record_reads_back_as_it_was_recorded(store: StateStore) -> None:
    recorded = store.record_image_backup(backup(1))
    assert recorded == backup(1) and recorded.sha256 is None
    assert store.image_backup(f"{1:064x}") == backup(1)
    assert store.image_backup(f"{2:064x}") is None
    assert store.image_backup(f"{1:064x}"[:8]) is None  # full IDs only


def test_the_default_namespace_reads_back_empty(store: StateStore) -> None:
    plain = replace(backup(3), image=ImageRef("rbd", "", "vm"), file_name="rbd+vm.raw")
    store.record_image_backup(plain)
    found = store.image_backup(plain.snapshot_id)
    assert found is not None and found.image == ImageRef("rbd", "", "vm")


def test_recording_again_is_a_no_op_but_other_facts_conflict(store: StateStore) -> None:
    store.record_image_backup(backup(1))
    # A retried write (the same snapshot and facts; another zone for the same instant).
    again = replace(backup(1), taken_at=NOW.astimezone(timezone(timedelta(hours=8))))
    assert store.record_image_backup(again) == backup(1)
    with pytest.raises(ImageBackupConflict, match="already recorded with other facts"):
        store.record_image_backup(replace(backup(1), image_bytes=1 << 30))
    assert store.image_backup(f"{1:064x}") == backup(1)


def test_the_sha256_is_set_once_by_the_first_restore_test_that_verifies_it(
        store: StateStore) -> None:
    store.record_image_backup(backup(1))
    verified = store.record_image_sha256(f"{1:064x}", "a" * 64)
    assert verified == replace(backup(1), sha256="a" * 64)
    assert store.record_image_sha256(f"{1:064x}", "a" * 64) == verified  # a later test
    with pytest.raises(ImageBackupConflict, match=f"already has the sha256 {'a' * 64}"):
        store.record_image_sha256(f"{1:064x}", "b" * 64)
    assert store.image_backup(f"{1:064x}") == verified
    with pytest.raises(RecordNotFound, match="has no image backup on record"):
        store.record_image_sha256(f"{2:064x}", "a" * 64)


def test_the_database_itself_refuses_to_rewrite_a_record(store: StateStore) -> None:
    store.record_image_backup(replace(backup(1), sha256="c" * 64))
    connection = sqlite3.connect(database_path(store.path.parent))
    try:
        for change in ("image_bytes = 1", "sha256 = NULL"):
            with pytest.raises(sqlite3.IntegrityError, match="written once"):
                connection.execute(f"UPDATE backup_images SET {change}")  # noqa: S608
    finally:
        connection.close()


@pytest.mark.parametrize(("change", "message"), [
    ({"snapshot_id": "abc"}, "snapshot_id must be 64 lowercase hex digits"),
    ({"snapshot_id": "A" * 64}, "snapshot_id must be 64 lowercase hex digits"),
    ({"sha256": "z" * 64}, "sha256 must be 64 lowercase hex digits"),
    ({"source": ""}, "source must not be empty"),
    ({"file_name": "/rbd+water+db-1.raw"}, "a name inside the snapshot, not a path"),
    ({"image_bytes": -1}, "image_bytes cannot be negative"),
    ({"taken_at": datetime(2026, 3, 1)}, "has no timezone"),
])
def test_bad_records_are_refused_before_the_database(store: StateStore,
                                                     change: dict[str, object],
                                                     message: str) -> None:
    with pytest.raises(ValueError, match=message):
        store.record_image_backup(replace(backup(1), **change))  # type: ignore[arg-type]
    assert store.image_backups("water") == []


def test_records_of_a_tenant_and_source_newest_first(store: StateStore) -> None:
    store.record_image_backup(backup(1, at=NOW))
    store.record_image_backup(backup(2, at=NOW + timedelta(days=1)))
    store.record_image_backup(backup(3, source="web", at=NOW + timedelta(days=2)))
    store.record_image_backup(backup(4, tenant="transport", at=NOW + timedelta(days=3)))
    assert [d.snapshot_id[-1] for d in store.image_backups("water")] == ["3", "2", "1"]
    assert [d.snapshot_id[-1] for d in store.image_backups("water", source="databases",
                                                              limit=1)] == ["2"]
    assert store.image_backups("nobody") == []


def test_a_version_2_database_gains_the_table_and_keeps_its_history(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    state_dir = tmp_path / "state"
    with monkeypatch.context() as patch:
        patch.setattr(schema, "MIGRATIONS", schema.MIGRATIONS[:2])
        with StateStore.initialise(state_dir, "c") as old:
            old.start_backup_job(JobKey("water", JobKind.BACKUP, "databases", "r"), NOW)
    assert user_version(state_dir) == 2
    with StateStore.open(state_dir, "c") as store:
        assert len(store.latest_backup_jobs()) == 1
        store.record_image_backup(backup(1))
        assert store.image_backup(f"{1:064x}") == backup(1)


def test_the_digests_of_version_4_become_image_backups_that_keep_their_sha256(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    state_dir = tmp_path / "state"
    with monkeypatch.context() as patch:
        patch.setattr(schema, "MIGRATIONS", schema.MIGRATIONS[:4])
        with StateStore.initialise(state_dir, "c"):
            pass
    connection = sqlite3.connect(database_path(state_dir))
    try:
        with connection:
            connection.execute(
                "INSERT INTO backup_digests (snapshot_id, tenant, source, pool, namespace,"
                " image, file_name, sha256, total_bytes, taken_at_us) VALUES"
                " (?, 'water', 'databases', 'rbd', 'water', 'db-1', 'rbd+water+db-1.raw',"
                " ?, ?, ?)", (f"{1:064x}", "d" * 64, 256 << 20,
                              int(NOW.timestamp() * 1_000_000)))
    finally:
        connection.close()
    with StateStore.open(state_dir, "c") as store:
        assert user_version(state_dir) == len(schema.MIGRATIONS)
        assert store.image_backups("water") == [replace(backup(1), sha256="d" * 64)]


def user_version(state_dir: Path) -> int:
    connection = sqlite3.connect(database_path(state_dir))
    try:
        version: int = connection.execute("PRAGMA user_version").fetchone()[0]
        return version
    finally:
        connection.close()
