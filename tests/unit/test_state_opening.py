"""Creating and opening the state database: it is never recreated, adopted or touched silently."""

import sqlite3
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from drd.state import StateStore, StateStoreError, schema
from drd.state.database_file import database_path

NOW = datetime(2026, 3, 1, 9, 30, tzinfo=UTC)


def raw(path: Path, sql: str) -> list[Any]:
    """Run SQL on a plain connection that bypasses the store, as an operator's shell would."""
    connection = sqlite3.connect(path, isolation_level=None)
    try:
        return connection.execute(sql).fetchall()
    finally:
        connection.close()


def pragma(path: Path, name: str) -> Any:
    return raw(path, f"PRAGMA {name}")[0][0]


def schema_object_names(path: Path) -> set[str]:
    return {row[0] for row in raw(path, "SELECT name FROM sqlite_schema")}


@pytest.fixture
def state_dir(tmp_path: Path) -> Path:
    return tmp_path / "state"


@pytest.fixture
def existing(state_dir: Path) -> Path:
    """The path of a closed, freshly initialised state database of site 'a'."""
    StateStore.initialise(state_dir, "a").close()
    return database_path(state_dir)


def test_initialise_then_open_gives_a_wal_database_of_that_site(state_dir: Path) -> None:
    with StateStore.initialise(state_dir, "a") as store:
        assert store.path == state_dir / "state.db"
        assert store.site_name == "a"
    with StateStore.open(state_dir, "a") as store:
        assert store.site_name == "a"
    path = state_dir / "state.db"
    assert pragma(path, "journal_mode") == "wal"
    assert pragma(path, "user_version") == len(schema.MIGRATIONS)
    assert pragma(path, "application_id") == schema.APPLICATION_ID
    assert (state_dir / "state.db").stat().st_mode & 0o077 == 0
    assert not [p for p in state_dir.iterdir() if "initialising" in p.name]


def test_initialise_refuses_an_existing_database_and_leaves_it_alone(existing: Path) -> None:
    before = existing.read_bytes()
    with pytest.raises(StateStoreError, match=r"already exists.*never overwrites"):
        StateStore.initialise(existing.parent, "a")
    assert existing.read_bytes() == before


def test_initialise_refuses_a_leftover_wal_file(state_dir: Path) -> None:
    state_dir.mkdir()
    (state_dir / "state.db-wal").write_bytes(b"frames of some earlier database")
    with pytest.raises(StateStoreError, match=r"state\.db-wal already exists"):
        StateStore.initialise(state_dir, "a")
    assert not (state_dir / "state.db").exists()


def test_open_missing_says_why_it_is_not_recreated_and_what_to_do(state_dir: Path) -> None:
    with pytest.raises(StateStoreError) as raised:
        StateStore.open(state_dir, "a")
    message = str(raised.value)
    assert f"{state_dir / 'state.db'} is missing" in message
    assert "does not recreate it" in message
    assert "epochs and audit trail" in message
    assert "Restore it from backup" in message
    assert "`drd state init`" in message
    assert not state_dir.exists()


def test_open_missing_with_a_leftover_wal_warns_not_to_restore_beside_it(existing: Path) -> None:
    wal = existing.with_name("state.db-wal")
    wal.write_bytes(b"x")
    existing.unlink()
    with pytest.raises(StateStoreError, match=r"Move state\.db-wal aside before restoring"):
        StateStore.open(existing.parent, "a")


def test_open_garbage_names_the_file_and_sqlites_complaint_and_touches_nothing(
    state_dir: Path,
) -> None:
    state_dir.mkdir()
    path = state_dir / "state.db"
    garbage = bytes(range(256)) * 64
    path.write_bytes(garbage)
    with pytest.raises(StateStoreError) as raised:
        StateStore.open(state_dir, "a")
    message = str(raised.value)
    assert f"{path} is damaged or is not a SQLite database" in message
    assert "SQLite says: file is not a database" in message
    assert "has not modified it" in message
    assert path.read_bytes() == garbage
    assert sorted(p.name for p in state_dir.iterdir()) == ["state.db"]


def test_open_a_database_with_a_damaged_page_refuses_and_touches_nothing(existing: Path) -> None:
    with StateStore.open(existing.parent, "a") as store:
        for number in range(300):
            store.start_run("backup", f"tenant-{number}", NOW, {"padding": "x" * 200})
    # Closing the last connection checkpoints the WAL into the file, so the rows live there.
    page_size = pragma(existing, "page_size")
    damaged = bytearray(existing.read_bytes())
    damaged[page_size * 8 : page_size * 9] = b"\xa5" * page_size
    existing.write_bytes(bytes(damaged))
    with pytest.raises(StateStoreError, match="is damaged or is not a SQLite database") as raised:
        StateStore.open(existing.parent, "a")
    assert "drd has not modified it" in str(raised.value)
    assert existing.read_bytes() == bytes(damaged)


def test_open_an_empty_file_refuses_as_not_drds(state_dir: Path) -> None:
    state_dir.mkdir()
    (state_dir / "state.db").touch()
    with pytest.raises(StateStoreError, match="is an empty file but not a drd state database"):
        StateStore.open(state_dir, "a")
    assert (state_dir / "state.db").read_bytes() == b""


def test_open_some_other_applications_database_refuses_and_leaves_it(state_dir: Path) -> None:
    state_dir.mkdir()
    path = state_dir / "state.db"
    raw(path, "CREATE TABLE photos (name TEXT)")
    before = path.read_bytes()
    with pytest.raises(StateStoreError, match="is a SQLite database but not a drd state database"):
        StateStore.open(state_dir, "a")
    assert path.read_bytes() == before


def test_open_refuses_another_sites_database(existing: Path) -> None:
    with pytest.raises(StateStoreError, match="belongs to site 'a', but this drd runs as site 'b'"):
        StateStore.open(existing.parent, "b")


def test_open_refuses_a_schema_newer_than_this_code(existing: Path) -> None:
    newer = len(schema.MIGRATIONS) + 1
    raw(existing, f"PRAGMA user_version = {newer}")
    with pytest.raises(StateStoreError, match=f"schema version {newer}, newer than"):
        StateStore.open(existing.parent, "a")
    assert pragma(existing, "user_version") == newer


def test_open_migrates_an_older_schema_forward_and_keeps_its_data(
    existing: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with StateStore.open(existing.parent, "a") as store:
        store.advance_epoch("pg-1", expected_epoch=None, new_primary="a", now=NOW, by="a")
    # This drd now knows one more migration than the database was written with.
    next_migration = """
        CREATE TABLE runbook_journal (id INTEGER PRIMARY KEY, step TEXT NOT NULL) STRICT;
        CREATE TRIGGER journal_is_append_only BEFORE DELETE ON runbook_journal
        BEGIN SELECT RAISE(ABORT, 'append-only; really'); END;
    """
    monkeypatch.setattr(schema, "MIGRATIONS", (*schema.MIGRATIONS, next_migration))
    with StateStore.open(existing.parent, "a") as store:
        epoch = store.epoch("pg-1")
        assert epoch is not None
        assert epoch.epoch == 1
    assert pragma(existing, "user_version") == len(schema.MIGRATIONS)
    assert {"runbook_journal", "journal_is_append_only"} <= schema_object_names(existing)


def test_a_failing_migration_leaves_the_previous_schema_whole(
    existing: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    broken = "CREATE TABLE half_done (id INTEGER); INSERT INTO no_such_table VALUES (1);"
    monkeypatch.setattr(schema, "MIGRATIONS", (*schema.MIGRATIONS, broken))
    with pytest.raises(StateStoreError, match="no such table: no_such_table"):
        StateStore.open(existing.parent, "a")
    assert pragma(existing, "user_version") == len(schema.MIGRATIONS) - 1
    assert "half_done" not in schema_object_names(existing)


def test_migration_statements_split_where_sqlite_says_they_end() -> None:
    script = """
        CREATE TABLE t (a TEXT); -- a comment; with a semicolon
        CREATE TRIGGER t_no_delete BEFORE DELETE ON t
        BEGIN SELECT RAISE(ABORT, 'no; never'); SELECT 1; END;
        INSERT INTO t VALUES ('x;y');
    """
    statements = schema.split_statements(script)
    assert len(statements) == 3
    assert statements[1].endswith("SELECT 1; END;")
    assert statements[2].endswith("INSERT INTO t VALUES ('x;y');")


def test_the_first_migration_stamps_drds_application_id() -> None:
    first = schema.split_statements(schema.MIGRATIONS[0])[0]
    assert first == f"PRAGMA application_id = {schema.APPLICATION_ID};"


def test_two_inits_racing_create_one_database_and_the_other_is_refused(state_dir: Path) -> None:
    barrier = threading.Barrier(8)
    outcomes: list[str] = []

    def initialise() -> None:
        barrier.wait()
        try:
            StateStore.initialise(state_dir, "a").close()
            outcomes.append("created")
        except StateStoreError as error:
            outcomes.append(str(error))

    threads = [threading.Thread(target=initialise) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert outcomes.count("created") == 1
    assert all("already exists" in o or "appeared while" in o for o in outcomes if o != "created")
    assert sorted(p.name for p in state_dir.iterdir() if p.name.startswith(".")) == []
    StateStore.open(state_dir, "a").close()
