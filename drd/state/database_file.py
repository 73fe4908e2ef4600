"""Finding, checking and creating the state database file.

drd never deletes, truncates or recreates an existing state database: it holds the epochs
that keep two sites from both acting as primary, and the audit trail. Every check here reads
only, and refuses with a sentence that says what is wrong and what to do.
"""

import os
import secrets
import sqlite3
from pathlib import Path

from drd.state import schema
from drd.state.errors import StateStoreError

DATABASE_FILE = "state.db"
# SQLite's companions of a database file; a leftover one would be replayed into whatever
# database later appears under the same name.
_COMPANION_SUFFIXES = ("-wal", "-shm", "-journal")
# Long enough to ride out a checkpoint or another writer, short enough that a stuck peer
# process shows up as an error instead of a hung daemon.
BUSY_TIMEOUT_MS = 5000

_DAMAGE_CODES = frozenset({sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB})


def database_path(state_dir: Path) -> Path:
    return state_dir / DATABASE_FILE


def _companions(path: Path) -> list[Path]:
    return [p for s in _COMPANION_SUFFIXES if (p := path.with_name(path.name + s)).exists()]


def _missing_error(path: Path) -> StateStoreError:
    message = (
        f"the state database {path} is missing. drd does not recreate it on its own, because "
        "it holds this site's protection-group epochs and audit trail, and starting from an "
        "empty one could let two sites act as primary at once. Restore it from backup, or, "
        "only if this is a genuinely new site, create it with `drd state init`."
    )
    leftovers = _companions(path)
    if leftovers:
        names = ", ".join(p.name for p in leftovers)
        message += (
            f" Move {names} aside before restoring: SQLite would replay them into the "
            "restored file."
        )
    return StateStoreError(message)


def _damaged_error(path: Path, complaint: str) -> StateStoreError:
    return StateStoreError(
        f"the state database {path} is damaged or is not a SQLite database "
        f"(SQLite says: {complaint}). drd has not modified it. Restore it from backup and keep "
        "the damaged copy for investigation; do not run `drd state init` for an existing site, "
        "as that would discard its epochs and audit trail."
    )


def _connect(path: Path, *, create: bool) -> sqlite3.Connection:
    # mode=rw never creates a file, so a database deleted between our check and the connect
    # is reported as missing instead of quietly coming back empty.
    mode = "rwc" if create else "rw"
    connection = sqlite3.connect(
        f"{path.absolute().as_uri()}?mode={mode}",
        uri=True,
        isolation_level=None,  # we issue BEGIN IMMEDIATE / COMMIT ourselves
        check_same_thread=False,  # the store serialises use with its own lock
    )
    connection.row_factory = sqlite3.Row
    connection.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    return connection


def _configure(connection: sqlite3.Connection, path: Path) -> None:
    """Per-connection settings every store connection runs with."""
    mode = connection.execute("PRAGMA journal_mode = WAL").fetchone()[0]
    if mode != "wal":
        raise StateStoreError(
            f"could not put the state database {path} in WAL mode (SQLite kept {mode!r}); "
            "WAL needs shared memory, which network filesystems often lack: keep the state "
            "dir on a local disk."
        )
    # FULL: a committed epoch or audit row survives power loss, not just a process crash.
    connection.execute("PRAGMA synchronous = FULL")
    connection.execute("PRAGMA foreign_keys = ON")
    # Makes INSERT OR REPLACE fire the audit log's delete trigger too.
    connection.execute("PRAGMA recursive_triggers = ON")


def _check_integrity(connection: sqlite3.Connection, path: Path) -> None:
    try:
        rows = connection.execute("PRAGMA quick_check").fetchall()
    except sqlite3.DatabaseError as error:
        if getattr(error, "sqlite_errorcode", 0) & 0xFF in _DAMAGE_CODES:
            raise _damaged_error(path, str(error)) from error
        raise StateStoreError(f"could not read the state database {path}: {error}") from error
    complaints = [str(row[0]) for row in rows]
    if complaints != ["ok"]:
        shown = "; ".join(complaints[:3]) + ("; ..." if len(complaints) > 3 else "")
        raise _damaged_error(path, shown)


def _check_identity(
    connection: sqlite3.Connection, path: Path, site_name: str, latest: int
) -> None:
    application_id = connection.execute("PRAGMA application_id").fetchone()[0]
    if application_id != schema.APPLICATION_ID:
        what = "is an empty file" if path.stat().st_size == 0 else "is a SQLite database"
        raise StateStoreError(
            f"{path} {what} but not a drd state database (application_id {application_id:#x}). "
            "drd has not modified it. Check the state dir in the config."
        )
    version = schema.schema_version(connection)
    if version > latest:
        raise StateStoreError(
            f"the state database {path} has schema version {version}, newer than the {latest} "
            "this drd knows: a newer drd wrote it. Run that drd version or newer; an older one "
            "cannot safely read it."
        )
    row = connection.execute("SELECT site_name FROM meta").fetchone()
    if row is None:
        raise StateStoreError(f"the state database {path} records no site; it is damaged.")
    if row["site_name"] != site_name:
        raise StateStoreError(
            f"the state database {path} belongs to site {row['site_name']!r}, but this drd "
            f"runs as site {site_name!r}. Check the site name and state dir in the config; "
            "a site's epochs and audit trail must never be adopted by another."
        )


def connect_existing(path: Path, site_name: str) -> sqlite3.Connection:
    """A configured connection to the existing, checked and migrated database at `path`."""
    try:
        exists, is_file = path.exists(), path.is_file()
    except OSError as error:  # e.g. no permission on the state dir: not the same as missing
        raise StateStoreError(f"cannot look for the state database {path}: {error}") from error
    if not exists:
        raise _missing_error(path)
    if not is_file:
        raise StateStoreError(f"the state database {path} is not a regular file.")
    try:
        connection = _connect(path, create=False)
    except sqlite3.Error as error:
        raise StateStoreError(f"could not open the state database {path}: {error}") from error
    try:
        # Everything before _configure only reads, so a file that fails a check is untouched.
        _check_integrity(connection, path)
        _check_identity(connection, path, site_name, schema.latest_version())
        _configure(connection, path)
        schema.apply_migrations(connection)
    except sqlite3.Error as error:
        connection.close()
        raise StateStoreError(f"could not open the state database {path}: {error}") from error
    except BaseException:
        connection.close()
        raise
    return connection


def _fsync_directory(directory: Path) -> None:
    descriptor = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def create_database(path: Path, site_name: str) -> None:
    """Create a complete new state database at `path`, which must not exist.

    The database is built under a temporary name and hard-linked into place, which fails if
    the name is taken: a crash never leaves a half-built state.db, and an existing one is
    never overwritten, even by a second `drd state init` racing this one.
    """
    if not site_name:
        raise ValueError("site_name must not be empty")
    existing = [p for p in (path, *_companions(path)) if p.exists()]
    if existing:
        raise StateStoreError(
            f"{existing[0]} already exists, so this site already has state. drd never "
            "overwrites it: it holds the site's epochs and audit trail. Open it instead, or "
            "move it aside by hand if you are certain it is not wanted."
        )
    building = path.with_name(f".{path.name}.initialising-{os.getpid()}-{secrets.token_hex(4)}")
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        # The audit log is not for every local user; SQLite gives its companions the same mode.
        os.close(os.open(building, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
    except OSError as error:
        raise StateStoreError(f"could not create the state database {path}: {error}") from error
    try:
        connection = _connect(building, create=True)
        try:
            # A rollback journal while building: nothing may be left in a -wal beside the
            # temporary name when it is linked. The store switches to WAL on open.
            connection.execute("PRAGMA synchronous = FULL")
            schema.apply_migrations(connection)
            connection.execute("BEGIN IMMEDIATE")
            connection.execute(
                "INSERT INTO meta (singleton, site_name) VALUES (1, ?)", (site_name,)
            )
            connection.execute("COMMIT")
        finally:
            connection.close()
        try:
            os.link(building, path)
        except FileExistsError as error:
            raise StateStoreError(
                f"{path} appeared while this site's state was being created; another "
                "`drd state init` ran at the same time. Open the existing database instead."
            ) from error
        _fsync_directory(path.parent)
    except (sqlite3.Error, OSError) as error:
        raise StateStoreError(f"could not create the state database {path}: {error}") from error
    finally:
        for leftover in (building, *_companions(building)):
            leftover.unlink(missing_ok=True)
