"""The state store's image digests: one per restic snapshot, written once, read back typed."""

import sqlite3
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from drd.domain.backup_jobs import JobKey, JobKind
from drd.domain.replication_plan import ImageRef
from drd.state import BackupDigest, DigestConflict, StateStore, schema
from drd.state.database_file import database_path

NOW = datetime(2026, 3, 1, 2, 0, tzinfo=UTC)
DB1 = ImageRef("rbd", "water", "db-1")


def digest(n: int, *, source: str = "databases", tenant: str = "water",
           image: ImageRef = DB1, at: datetime = NOW) -> BackupDigest:
    return BackupDigest(snapshot_id=f"{n:064x}", tenant=tenant, source=source, image=image,
                        file_name="rbd+water+db-1.raw", sha256=f"{n + 1000:064x}",
                        total_bytes=256 << 20, taken_at=at)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[StateStore]:
    with StateStore.initialise(tmp_path / "state", "c") as store:
        yield store


def test_a_digest_reads_back_as_it_was_recorded(store: StateStore) -> None:
    recorded = store.record_backup_digest(digest(1))
    assert recorded == digest(1)
    assert store.backup_digest(f"{1:064x}") == digest(1)
    assert store.backup_digest(f"{2:064x}") is None
    assert store.backup_digest(f"{1:064x}"[:8]) is None  # full IDs only


def test_the_default_namespace_reads_back_empty(store: StateStore) -> None:
    plain = replace(digest(3), image=ImageRef("rbd", "", "vm"), file_name="rbd+vm.raw")
    store.record_backup_digest(plain)
    found = store.backup_digest(plain.snapshot_id)
    assert found is not None and found.image == ImageRef("rbd", "", "vm")


def test_recording_again_is_a_no_op_but_other_facts_conflict(store: StateStore) -> None:
    store.record_backup_digest(digest(1))
    # A retried write (the same snapshot and facts; another zone for the same instant).
    again = replace(digest(1), taken_at=NOW.astimezone(timezone(timedelta(hours=8))))
    assert store.record_backup_digest(again) == digest(1)
    with pytest.raises(DigestConflict, match="already has a digest with other facts"):
        store.record_backup_digest(replace(digest(1), sha256="f" * 64))
    assert store.backup_digest(f"{1:064x}") == digest(1)


@pytest.mark.parametrize(("change", "message"), [
    ({"snapshot_id": "abc"}, "snapshot_id must be 64 lowercase hex digits"),
    ({"snapshot_id": "A" * 64}, "snapshot_id must be 64 lowercase hex digits"),
    ({"sha256": "z" * 64}, "sha256 must be 64 lowercase hex digits"),
    ({"source": ""}, "source must not be empty"),
    ({"file_name": "/rbd+water+db-1.raw"}, "a name inside the snapshot, not a path"),
    ({"total_bytes": -1}, "total_bytes cannot be negative"),
    ({"taken_at": datetime(2026, 3, 1)}, "has no timezone"),
])
def test_bad_digests_are_refused_before_the_database(store: StateStore, change: dict[str, object],
                                                      message: str) -> None:
    with pytest.raises(ValueError, match=message):
        store.record_backup_digest(replace(digest(1), **change))  # type: ignore[arg-type]
    assert store.backup_digests("water") == []


def test_digests_of_a_tenant_and_source_newest_first(store: StateStore) -> None:
    store.record_backup_digest(digest(1, at=NOW))
    store.record_backup_digest(digest(2, at=NOW + timedelta(days=1)))
    store.record_backup_digest(digest(3, source="web", at=NOW + timedelta(days=2)))
    store.record_backup_digest(digest(4, tenant="transport", at=NOW + timedelta(days=3)))
    assert [d.snapshot_id[-1] for d in store.backup_digests("water")] == ["3", "2", "1"]
    assert [d.snapshot_id[-1] for d in store.backup_digests("water", source="databases",
                                                               limit=1)] == ["2"]
    assert store.backup_digests("nobody") == []


def test_a_version_2_database_gains_the_table_and_keeps_its_history(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    state_dir = tmp_path / "state"
    released = schema.MIGRATIONS[:2]
    with monkeypatch.context() as patch:
        patch.setattr(schema, "MIGRATIONS", released)
        with StateStore.initialise(state_dir, "c") as old:
            old.start_backup_job(JobKey("water", JobKind.BACKUP, "databases", "r"), NOW)
    connection = sqlite3.connect(database_path(state_dir))
    try:
        assert connection.execute("PRAGMA user_version").fetchone()[0] == 2
    finally:
        connection.close()
    with StateStore.open(state_dir, "c") as store:
        assert len(store.latest_backup_jobs()) == 1
        store.record_backup_digest(digest(1))
        assert store.backup_digest(f"{1:064x}") == digest(1)
