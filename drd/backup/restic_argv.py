"""restic's argv, built by pure functions; the binary's name comes first only in the adapter.

No builder takes a password: restic reads it from RESTIC_PASSWORD_FILE (see
restic_env), so no secret can reach /proc/<pid>/cmdline. The repository URL is on
argv, so `check_repository` refuses one that carries a password in its userinfo.

Each builder checks what restic would misread: a tag with a comma (restic splits it
into two tags), a stdin filename with a slash (restic 0.18 fails "open /x: no such
file or directory"), a value that would parse as a flag.
"""

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

GROUP_FIELDS = ("host", "paths", "tags")
# Retention groups for stdin sources. A source is one stdin filename (its path) backed
# up under one drd host name; grouping by tags too would split a source's history into
# a new group whenever a tenant edits its policy's tags, and the old group would then
# keep its snapshots forever. drd selects a tenant's snapshots with a tag filter instead.
DEFAULT_GROUP_BY = ("host", "paths")

_SNAPSHOT_ID = re.compile(r"^(latest|[0-9a-f]{8,64})$")
_FULL_ID = re.compile(r"^[0-9a-f]{64}$")
_UNPRINTABLE = re.compile(r"[\s\x00-\x1f\x7f]")


@dataclass(frozen=True)
class SnapshotFilter:
    """Which snapshots a command considers: any of `hosts`, all of `tags`, all of `paths`."""

    hosts: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    paths: tuple[str, ...] = ()


ALL_SNAPSHOTS = SnapshotFilter()


@dataclass(frozen=True)
class KeepRules:
    """restic's --keep-* rules; None is no rule. `within` counts whole hours."""

    last: int | None = None
    hourly: int | None = None
    daily: int | None = None
    weekly: int | None = None
    monthly: int | None = None
    yearly: int | None = None
    within: timedelta | None = None


def check_repository(url: str) -> str:
    """`url` if restic may see it on argv; ValueError (never echoing it) otherwise."""
    if not url:
        raise ValueError("the repository is empty")
    if url.startswith("-"):
        raise ValueError("the repository must not start with '-'")
    if _UNPRINTABLE.search(url):
        raise ValueError("the repository must not contain spaces or control characters")
    _, colon, rest = url.partition(":")
    remainder = rest if colon and not url.startswith("/") else url
    if "://" in remainder:
        parts = urlsplit(remainder)
        if parts.password is not None:
            raise ValueError("the repository URL carries a password (user:password@host); "
                             "credentials go in the environment, never on argv")
    else:
        userinfo, at, _ = remainder.partition("@")
        if at and ":" in userinfo:
            raise ValueError("the repository carries a password (user:password@host); "
                             "credentials go in the environment, never on argv")
    return url


def go_duration(duration: timedelta) -> str:
    """A positive duration as Go parses it (`--retry-lock`), in whole seconds rounded up."""
    seconds = math.ceil(duration.total_seconds())
    if seconds < 1:
        raise ValueError(f"a restic duration must be at least 1 s, got {duration}")
    return f"{seconds}s"


def keep_within(duration: timedelta) -> str:
    """A --keep-within value in restic's own units (`2d`, `1d12h`): days and hours only."""
    hours, rest = divmod(duration, timedelta(hours=1))
    if rest or hours < 1:
        raise ValueError(f"keep-within must be whole hours and at least 1 h, got {duration}")
    days, hours = divmod(hours, 24)
    return (f"{days}d" if days else "") + (f"{hours}h" if hours else "")


def version() -> list[str]:
    return ["version"]


def cat_config(repository: str) -> list[str]:
    """Probe for a repository: exit 10 means there is none (restic >= 0.17)."""
    return ["cat", "config", *_global(repository), "--no-lock"]


def init(repository: str) -> list[str]:
    return ["init", *_global(repository)]


def backup_from_command(repository: str, command: Sequence[str], *, stdin_filename: str,
                        host: str, tags: Sequence[str] = (),
                        limit_upload_kib: int | None = None,
                        retry_lock: timedelta | None = None,
                        time: datetime | None = None) -> list[str]:
    """Store the stdout of `command` as /`stdin_filename` of a snapshot of `host`.

    `time` dates the snapshot; it is written in UTC, and restic_env runs restic with
    TZ=UTC so that restic reads it, and buckets --keep-daily, the same way.
    """
    if not command:
        raise ValueError("backup needs a command whose stdout is the data")
    if not stdin_filename or "/" in stdin_filename or stdin_filename in (".", ".."):
        raise ValueError(f"the stdin filename {stdin_filename!r} must be one non-empty "
                         f"name without '/'")
    argv = ["backup", *_global(repository), "--stdin-from-command",
            "--stdin-filename", _value("stdin filename", stdin_filename),
            "--host", _value("host", host)]
    for tag in tags:
        argv += ["--tag", _tag(tag)]
    if limit_upload_kib is not None:
        if limit_upload_kib < 1:
            raise ValueError(f"--limit-upload is KiB/s and at least 1, got {limit_upload_kib}")
        argv += ["--limit-upload", str(limit_upload_kib)]
    argv += _retry_lock(retry_lock)
    if time is not None:
        if time.tzinfo is None:
            raise ValueError("a snapshot time must carry its time zone")
        argv += ["--time", time.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")]
    return [*argv, "--", *command]


def backup_paths(repository: str, paths: Sequence[str], *, host: str,
                 tags: Sequence[str] = (), limit_upload_kib: int | None = None,
                 retry_lock: timedelta | None = None) -> list[str]:
    """Back up files and directories at absolute `paths` as a snapshot of `host`."""
    if not paths:
        raise ValueError("backup needs at least one path")
    for path in paths:
        if not path.startswith("/"):
            raise ValueError(f"the path {path!r} must be absolute")
    argv = ["backup", *_global(repository), "--host", _value("host", host)]
    for tag in tags:
        argv += ["--tag", _tag(tag)]
    if limit_upload_kib is not None:
        if limit_upload_kib < 1:
            raise ValueError(f"--limit-upload is KiB/s and at least 1, got {limit_upload_kib}")
        argv += ["--limit-upload", str(limit_upload_kib)]
    argv += _retry_lock(retry_lock)
    return [*argv, "--", *paths]


def snapshots(repository: str, selection: SnapshotFilter = ALL_SNAPSHOTS) -> list[str]:
    return ["snapshots", *_global(repository), *_filter(selection)]


def forget(repository: str, rules: KeepRules, selection: SnapshotFilter = ALL_SNAPSHOTS, *,
           group_by: Sequence[str] = DEFAULT_GROUP_BY, retry_lock: timedelta | None = None,
           dry_run: bool = False) -> list[str]:
    """Remove the snapshots `rules` do not keep, group by group; never prunes."""
    keep = _keep_flags(rules)
    if not keep:
        raise ValueError("forget needs at least one keep rule; without one it keeps all")
    unknown = [name for name in group_by if name not in GROUP_FIELDS]
    if not group_by or unknown or len(set(group_by)) != len(group_by):
        raise ValueError(f"group-by takes distinct fields of {', '.join(GROUP_FIELDS)}, "
                         f"got {list(group_by)}")
    argv = ["forget", *_global(repository), *_filter(selection),
            "--group-by", ",".join(group_by), *keep, *_retry_lock(retry_lock)]
    return [*argv, "--dry-run"] if dry_run else argv


def forget_snapshots(repository: str, snapshot_ids: Sequence[str], *,
                     retry_lock: timedelta | None = None) -> list[str]:
    """Remove the named snapshots, e.g. the incomplete one a backup that exited 3 saved,
    which retention would otherwise count as a good one."""
    if not snapshot_ids:
        raise ValueError("forget needs at least one snapshot ID")
    for snapshot in snapshot_ids:
        if snapshot == "latest" or not _SNAPSHOT_ID.match(snapshot):
            raise ValueError(f"{snapshot!r} is not a snapshot ID (hex)")
    return ["forget", *_global(repository), *_retry_lock(retry_lock), "--", *snapshot_ids]


def prune(repository: str, *, retry_lock: timedelta | None = None) -> list[str]:
    return ["prune", *_global(repository), *_retry_lock(retry_lock)]


def check(repository: str, *, read_data_subset: str | None = None,
          retry_lock: timedelta | None = None) -> list[str]:
    """Check structure, and with `read_data_subset` (`n/t`, `x%`, `500M`) read that much data."""
    argv = ["check", *_global(repository), *_retry_lock(retry_lock)]
    if read_data_subset is not None:
        argv += ["--read-data-subset", _value("read-data subset", read_data_subset)]
    return argv


def dump(repository: str, snapshot: str, path: str,
         selection: SnapshotFilter = ALL_SNAPSHOTS, *,
         retry_lock: timedelta | None = None) -> list[str]:
    """Write one file of `snapshot` (an ID, or `latest` within `selection`) to stdout."""
    if not _SNAPSHOT_ID.match(snapshot):
        raise ValueError(f"{snapshot!r} is not a snapshot ID (hex) or 'latest'")
    if not path.startswith("/"):
        raise ValueError(f"the path in the snapshot must be absolute, got {path!r}")
    return ["dump", *_global(repository), *_filter(selection), *_retry_lock(retry_lock),
            "--", snapshot, path]


def cat_snapshot(repository: str, snapshot_id: str, *,
                 retry_lock: timedelta | None = None) -> list[str]:
    """The snapshot object (its root tree); a full ID only, as `restic cat` takes."""
    return ["cat", "snapshot", *_global(repository), *_retry_lock(retry_lock), "--",
            _full_id("snapshot", snapshot_id)]


def cat_tree(repository: str, tree_id: str, *,
             retry_lock: timedelta | None = None) -> list[str]:
    """A tree blob's JSON: its nodes, a file's with its size and data blob IDs."""
    return ["cat", "blob", *_global(repository), *_retry_lock(retry_lock), "--",
            _full_id("tree", tree_id)]


def list_index(repository: str, *, retry_lock: timedelta | None = None) -> list[str]:
    """The IDs of the repository's index files, one a line."""
    return ["list", "index", *_global(repository), *_retry_lock(retry_lock)]


def cat_index(repository: str, index_id: str, *,
              retry_lock: timedelta | None = None) -> list[str]:
    """One index file: every pack's blobs with their type and lengths."""
    return ["cat", "index", *_global(repository), *_retry_lock(retry_lock), "--",
            _full_id("index", index_id)]


def stats_raw_data(repository: str, selection: SnapshotFilter = ALL_SNAPSHOTS, *,
                   retry_lock: timedelta | None = None) -> list[str]:
    """What the repository stores, after deduplication and compression."""
    return ["stats", *_global(repository), "--mode", "raw-data", *_filter(selection),
            *_retry_lock(retry_lock)]


def list_locks(repository: str) -> list[str]:
    return ["list", "locks", *_global(repository), "--no-lock"]


def cat_lock(repository: str, lock_id: str) -> list[str]:
    return ["cat", "lock", *_global(repository), "--no-lock", "--", _full_id("lock", lock_id)]


def unlock(repository: str) -> list[str]:
    """Remove the locks restic itself judges stale; never `--remove-all`."""
    return ["unlock", *_global(repository)]


def _global(repository: str) -> list[str]:
    # --json also turns restic's fatal errors on stderr into one `exit_error` object.
    return ["--repo", check_repository(repository), "--json"]


def _filter(selection: SnapshotFilter) -> list[str]:
    argv: list[str] = []
    for host in selection.hosts:
        argv += ["--host", _value("host", host)]
    if selection.tags:
        argv += ["--tag", ",".join(_tag(tag) for tag in selection.tags)]
    for path in selection.paths:
        if not path.startswith("/"):
            raise ValueError(f"a snapshot path filter must be absolute, got {path!r}")
        argv += ["--path", path]
    return argv


def _keep_flags(rules: KeepRules) -> list[str]:
    argv: list[str] = []
    counts = (("last", rules.last), ("hourly", rules.hourly), ("daily", rules.daily),
              ("weekly", rules.weekly), ("monthly", rules.monthly), ("yearly", rules.yearly))
    for name, count in counts:
        if count is None:
            continue
        if count < 1:
            raise ValueError(f"keep-{name} must be at least 1, got {count}")
        argv += [f"--keep-{name}", str(count)]
    if rules.within is not None:
        argv += ["--keep-within", keep_within(rules.within)]
    return argv


def _full_id(what: str, value: str) -> str:
    if not _FULL_ID.match(value):
        raise ValueError(f"{value!r} is not a {what} ID (64 hex digits)")
    return value


def _retry_lock(retry_lock: timedelta | None) -> list[str]:
    return [] if retry_lock is None else ["--retry-lock", go_duration(retry_lock)]


def _tag(tag: str) -> str:
    if "," in tag:
        raise ValueError(f"the tag {tag!r} holds a comma, which restic reads as two tags")
    return _value("tag", tag)


def _value(what: str, value: str) -> str:
    if not value or value.startswith("-") or _UNPRINTABLE.search(value):
        raise ValueError(f"the {what} {value!r} must be non-empty, must not start with '-' "
                         f"and must not contain spaces or control characters")
    return value
