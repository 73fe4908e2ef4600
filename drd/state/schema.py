"""The state database's schema as ordered migrations, tracked in `PRAGMA user_version`.

Migration N (1-based) takes the schema from version N-1 to N. A migration is never edited once
released: sites in the field have run it. Change the schema by appending a migration.
"""

import sqlite3
from collections.abc import Sequence

# Marks the file as drd's state database ("DRDS"), so that opening some other SQLite file by
# mistake is refused instead of being migrated into a state database.
APPLICATION_ID = 0x44524453

_CREATE_CORE_TABLES = """
PRAGMA application_id = 1146242131;  -- APPLICATION_ID, "DRDS"

-- The site this database belongs to. A daemon configured as another site must not adopt it:
-- its epochs and audit trail describe this site only.
CREATE TABLE meta (
    singleton INTEGER PRIMARY KEY CHECK (singleton = 1),
    site_name TEXT NOT NULL CHECK (site_name <> '')
) STRICT;
CREATE TRIGGER meta_is_permanent_on_update BEFORE UPDATE ON meta
BEGIN SELECT RAISE(ABORT, 'the site a state database belongs to never changes'); END;
CREATE TRIGGER meta_is_permanent_on_delete BEFORE DELETE ON meta
BEGIN SELECT RAISE(ABORT, 'the site a state database belongs to never changes'); END;

CREATE TABLE runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL CHECK (kind <> ''),
    subject TEXT NOT NULL,
    started_at_us INTEGER NOT NULL,
    finished_at_us INTEGER,
    state TEXT NOT NULL CHECK (state IN ('running', 'succeeded', 'failed', 'cancelled')),
    detail TEXT NOT NULL CHECK (json_valid(detail) AND json_type(detail) = 'object'),
    CHECK ((state = 'running') = (finished_at_us IS NULL))
) STRICT;
CREATE INDEX runs_by_kind ON runs (kind, id);
CREATE INDEX runs_by_subject ON runs (subject, id);

CREATE TABLE jobs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id INTEGER REFERENCES runs (id),
    name TEXT NOT NULL CHECK (name <> ''),
    started_at_us INTEGER NOT NULL,
    finished_at_us INTEGER,
    state TEXT NOT NULL CHECK (state IN ('running', 'succeeded', 'failed', 'cancelled')),
    detail TEXT NOT NULL CHECK (json_valid(detail) AND json_type(detail) = 'object'),
    CHECK ((state = 'running') = (finished_at_us IS NULL))
) STRICT;
CREATE INDEX jobs_by_run ON jobs (run_id, id);

-- Append-only: an audit trail that can be edited proves nothing (等保 level 3).
-- AUTOINCREMENT so that an id is never reused, even for the last row.
CREATE TABLE audit (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at_us INTEGER NOT NULL,
    actor TEXT NOT NULL CHECK (actor <> ''),
    role TEXT NOT NULL,
    action TEXT NOT NULL CHECK (action <> ''),
    target TEXT NOT NULL,
    result TEXT NOT NULL CHECK (result IN ('ok', 'refused', 'failed')),
    detail TEXT NOT NULL CHECK (json_valid(detail) AND json_type(detail) = 'object')
) STRICT;
CREATE INDEX audit_by_time ON audit (at_us);
CREATE TRIGGER audit_is_append_only_on_update BEFORE UPDATE ON audit
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER audit_is_append_only_on_delete BEFORE DELETE ON audit
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;

-- Which site is primary for each protection group. An epoch only ever rises and a row is
-- never deleted: forgetting or lowering an epoch could let two sites both act as primary.
-- The triggers hold that even against a bug in the code above them.
CREATE TABLE epochs (
    protection_group TEXT PRIMARY KEY CHECK (protection_group <> ''),
    epoch INTEGER NOT NULL CHECK (epoch >= 1),
    primary_site TEXT NOT NULL CHECK (primary_site <> ''),
    updated_at_us INTEGER NOT NULL,
    updated_by TEXT NOT NULL CHECK (updated_by <> '')
) STRICT;
CREATE TRIGGER epochs_only_rise BEFORE UPDATE ON epochs
WHEN NEW.epoch <= OLD.epoch OR NEW.protection_group IS NOT OLD.protection_group
BEGIN SELECT RAISE(ABORT, 'an epoch may only rise'); END;
CREATE TRIGGER epochs_are_never_deleted BEFORE DELETE ON epochs
BEGIN SELECT RAISE(ABORT, 'epochs are never deleted'); END;
"""

# Backup, forget, prune, check and restore-test jobs of tenants' policies. Their own table,
# not `runs` with JSON detail: metering and "last verified restorable" read typed columns
# through indexes, and the checks below keep a failed run from ever lacking its reason.
_CREATE_BACKUP_JOBS = """
CREATE TABLE backup_jobs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant TEXT NOT NULL CHECK (tenant <> ''),
    kind TEXT NOT NULL CHECK (kind IN ('backup', 'forget', 'prune', 'check', 'restore_test')),
    source TEXT CHECK (source <> ''),  -- NULL for jobs on a whole repository
    repository TEXT NOT NULL CHECK (repository <> ''),
    started_at_us INTEGER NOT NULL,
    finished_at_us INTEGER,
    state TEXT NOT NULL CHECK (state IN ('running', 'succeeded', 'failed', 'cancelled')),
    reason TEXT CHECK (reason <> ''),
    bytes_added INTEGER CHECK (bytes_added >= 0),
    snapshot_id TEXT CHECK (snapshot_id <> ''),
    duration_us INTEGER CHECK (duration_us >= 0),
    -- The daemon stopped during the run (cancelled on stop, or found running after a crash):
    -- the scheduler runs such a job again on start instead of waiting for its next slot.
    interrupted INTEGER NOT NULL DEFAULT 0 CHECK (interrupted IN (0, 1)),
    CHECK ((state = 'running') = (finished_at_us IS NULL)),
    CHECK (state IN ('running', 'succeeded') OR reason IS NOT NULL),
    CHECK (NOT interrupted OR state IN ('failed', 'cancelled'))
) STRICT;
CREATE INDEX backup_jobs_by_job ON backup_jobs (tenant, kind, source, id);
CREATE INDEX backup_jobs_running ON backup_jobs (id) WHERE state = 'running';
"""

# Metering: each measurement of what a tenant's snapshots hold in its repository. Kept, not
# overwritten, so that stored bytes are known again at once after a restart (restic stats
# needs a repository lock, and the repository may be busy or unreachable then), and so
# that storage over a billing period can be integrated from the samples.
_CREATE_BACKUP_STORAGE = """
CREATE TABLE backup_storage (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant TEXT NOT NULL CHECK (tenant <> ''),
    repository TEXT NOT NULL CHECK (repository <> ''),
    measured_at_us INTEGER NOT NULL,
    stored_bytes INTEGER NOT NULL CHECK (stored_bytes >= 0),
    uncompressed_bytes INTEGER NOT NULL CHECK (uncompressed_bytes >= 0),
    snapshots INTEGER NOT NULL CHECK (snapshots >= 0)
) STRICT;
CREATE INDEX backup_storage_by_tenant ON backup_storage (tenant, id);
"""

# The sha256 of every RBD image backup, by restic snapshot: what a restore test compares
# a restored image with. restic's own checks prove a repository is consistent with itself;
# only this proves a snapshot still holds the bytes the image had.
_CREATE_BACKUP_DIGESTS = """
CREATE TABLE backup_digests (
    snapshot_id TEXT PRIMARY KEY
        CHECK (length(snapshot_id) = 64 AND snapshot_id NOT GLOB '*[^0-9a-f]*'),
    tenant TEXT NOT NULL CHECK (tenant <> ''),
    source TEXT NOT NULL CHECK (source <> ''),  -- the source name in the policy, as in jobs
    pool TEXT NOT NULL CHECK (pool <> ''),
    namespace TEXT NOT NULL,  -- empty: the default namespace of the pool
    image TEXT NOT NULL CHECK (image <> ''),
    file_name TEXT NOT NULL CHECK (file_name <> '' AND instr(file_name, '/') = 0),
    sha256 TEXT NOT NULL CHECK (length(sha256) = 64 AND sha256 NOT GLOB '*[^0-9a-f]*'),
    total_bytes INTEGER NOT NULL CHECK (total_bytes >= 0),
    taken_at_us INTEGER NOT NULL
) STRICT;
CREATE INDEX backup_digests_by_source ON backup_digests (tenant, source, taken_at_us);
"""

# Backups no longer hash the export stream (the relay's sha256 and extra pipe pass cost
# 1.4 to 2.0 CPU s per GiB, a tenth of restic's own, on hosts restic keeps busy): restore
# tests verify against restic's own per-chunk sha256s, and need of drd only which image a
# snapshot holds and its size. Old rows keep their stream sha256, still the sha256 of the
# image's content; new rows get one from their first passed restore test.
_BACKUP_DIGESTS_BECOME_BACKUP_IMAGES = """
CREATE TABLE backup_images (
    snapshot_id TEXT PRIMARY KEY
        CHECK (length(snapshot_id) = 64 AND snapshot_id NOT GLOB '*[^0-9a-f]*'),
    tenant TEXT NOT NULL CHECK (tenant <> ''),
    source TEXT NOT NULL CHECK (source <> ''),  -- the source name in the policy, as in jobs
    pool TEXT NOT NULL CHECK (pool <> ''),
    namespace TEXT NOT NULL,  -- empty: the default namespace of the pool
    image TEXT NOT NULL CHECK (image <> ''),
    file_name TEXT NOT NULL CHECK (file_name <> '' AND instr(file_name, '/') = 0),
    -- The provisioned size at the RBD snapshot: exactly what `rbd export` emits.
    image_bytes INTEGER NOT NULL CHECK (image_bytes >= 0),
    taken_at_us INTEGER NOT NULL,
    -- The whole content's sha256 once known; NULL until then.
    sha256 TEXT CHECK (sha256 IS NULL OR (length(sha256) = 64 AND sha256 NOT GLOB '*[^0-9a-f]*'))
) STRICT;
INSERT INTO backup_images (snapshot_id, tenant, source, pool, namespace, image, file_name,
                           image_bytes, taken_at_us, sha256)
    SELECT snapshot_id, tenant, source, pool, namespace, image, file_name, total_bytes,
           taken_at_us, sha256 FROM backup_digests;
DROP TABLE backup_digests;
CREATE INDEX backup_images_by_source ON backup_images (tenant, source, taken_at_us);
CREATE TRIGGER backup_images_are_written_once BEFORE UPDATE ON backup_images
WHEN OLD.sha256 IS NOT NULL
    OR (NEW.snapshot_id, NEW.tenant, NEW.source, NEW.pool, NEW.namespace, NEW.image,
        NEW.file_name, NEW.image_bytes, NEW.taken_at_us)
       IS NOT (OLD.snapshot_id, OLD.tenant, OLD.source, OLD.pool, OLD.namespace, OLD.image,
               OLD.file_name, OLD.image_bytes, OLD.taken_at_us)
BEGIN SELECT RAISE(ABORT, 'an image backup is written once; only a missing sha256 may be set'); END;
"""

MIGRATIONS: tuple[str, ...] = (_CREATE_CORE_TABLES, _CREATE_BACKUP_JOBS, _CREATE_BACKUP_STORAGE,
                               _CREATE_BACKUP_DIGESTS, _BACKUP_DIGESTS_BECOME_BACKUP_IMAGES)


def latest_version(migrations: Sequence[str] | None = None) -> int:
    """The schema version this code writes."""
    return len(MIGRATIONS if migrations is None else migrations)


def schema_version(connection: sqlite3.Connection) -> int:
    """The version recorded in the database header."""
    version: int = connection.execute("PRAGMA user_version").fetchone()[0]
    return version


def split_statements(script: str) -> list[str]:
    """The statements of a script, split where SQLite itself says a statement is complete.

    `executescript` would commit any open transaction first, so migrations run statement by
    statement inside their own transaction instead; triggers keep their inner semicolons.
    """
    statements: list[str] = []
    pending = ""
    for piece in script.split(";"):
        pending += piece + ";"
        if sqlite3.complete_statement(pending):
            if pending.strip(" \t\n;"):
                statements.append(pending.strip())
            pending = ""
    if pending.strip(" \t\n;"):
        raise ValueError(f"migration ends in an incomplete statement: {pending.strip()[:80]!r}")
    return statements


def apply_migrations(
    connection: sqlite3.Connection, migrations: Sequence[str] | None = None
) -> int:
    """Bring the schema up to date, one transaction per migration; return the final version.

    The connection must be in autocommit mode (isolation_level=None). The version is read
    again inside each IMMEDIATE transaction, so two processes opening the same old database
    at once apply each migration exactly once.
    """
    scripts = MIGRATIONS if migrations is None else migrations
    while True:
        connection.execute("BEGIN IMMEDIATE")
        try:
            version = schema_version(connection)
            if version >= len(scripts):
                connection.execute("COMMIT")
                return version
            for statement in split_statements(scripts[version]):
                connection.execute(statement)
            # Inside the same transaction: a crash leaves either the old schema and version, or
            # the new schema and version, never one without the other.
            connection.execute(f"PRAGMA user_version = {version + 1}")
            connection.execute("COMMIT")
        except BaseException:
            if connection.in_transaction:
                connection.execute("ROLLBACK")
            raise
