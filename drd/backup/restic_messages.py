"""restic's `--json` output as typed values. Pure; written against real restic 0.18 output
(tests/unit/data/restic_0.18.0.json).

Line-oriented commands (backup, check, init) print one JSON object a line, each with a
`message_type`; restic also prints some plain lines even under --json, and those parse
as None. Fatal errors arrive on stderr as one `exit_error` object. `snapshots`,
`forget`, `stats` and `cat lock` print one JSON document.
"""

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any


class ResticOutputError(ValueError):
    """restic printed something that is not the JSON drd expects of it."""


@dataclass(frozen=True)
class BackupStatus:
    """Progress of a running backup. With --stdin-from-command the total is unknown, so
    `total_bytes` is None and restic's `percent_done` and `seconds_remaining` mean nothing."""

    bytes_done: int
    total_bytes: int | None
    percent_done: float
    seconds_elapsed: float | None
    files_done: int


@dataclass(frozen=True)
class BackupSummary:
    snapshot_id: str | None  # absent when no snapshot was saved
    data_added: int  # bytes added to the repository, before compression
    data_added_packed: int  # the same, as stored
    total_bytes_processed: int
    files_new: int
    files_changed: int
    files_unmodified: int
    total_duration: float
    backup_start: datetime | None
    backup_end: datetime | None


@dataclass(frozen=True)
class ItemError:
    """A non-fatal error restic reports about one item (during backup or check)."""

    message: str
    during: str | None
    item: str | None


@dataclass(frozen=True)
class ExitError:
    code: int
    message: str


@dataclass(frozen=True)
class CheckSummary:
    num_errors: int
    broken_packs: tuple[str, ...]
    suggest_repair_index: bool
    suggest_prune: bool


Message = BackupStatus | BackupSummary | ItemError | ExitError | CheckSummary


@dataclass(frozen=True)
class Snapshot:
    id: str
    short_id: str
    time: datetime
    hostname: str
    paths: tuple[str, ...]
    tags: tuple[str, ...]
    parent: str | None
    summary: BackupSummary | None  # restic >= 0.17 records the backup's summary


@dataclass(frozen=True)
class ForgetGroup:
    host: str | None
    paths: tuple[str, ...]
    tags: tuple[str, ...]
    keep: tuple[str, ...]  # snapshot IDs
    remove: tuple[str, ...]


@dataclass(frozen=True)
class RawDataStats:
    total_size: int  # bytes stored, after deduplication and compression
    total_uncompressed_size: int
    total_blob_count: int
    snapshots_count: int


@dataclass(frozen=True)
class LockInfo:
    time: datetime  # when the holder created or last refreshed it, by the holder's clock
    exclusive: bool
    hostname: str
    username: str | None
    pid: int


def parse_message(line: str) -> Message | None:
    """One line of --json output as a message; None for plain text and for types drd
    does not use (verbose_status, initialized, ...)."""
    data = _object_line(line)
    if data is None:
        return None
    kind = data.get("message_type")
    try:
        if kind == "status":
            return BackupStatus(
                bytes_done=int(data.get("bytes_done", 0)),
                total_bytes=_optional_int(data.get("total_bytes")),
                percent_done=float(data.get("percent_done", 0.0)),
                seconds_elapsed=_optional_float(data.get("seconds_elapsed")),
                files_done=int(data.get("files_done", 0)))
        if kind == "summary" and "num_errors" in data:
            return CheckSummary(num_errors=int(data["num_errors"]),
                                broken_packs=tuple(data.get("broken_packs") or ()),
                                suggest_repair_index=bool(data.get("suggest_repair_index")),
                                suggest_prune=bool(data.get("suggest_prune")))
        if kind == "summary":
            return _backup_summary(data)
        if kind == "error":
            error = data.get("error")
            text = error.get("message") if isinstance(error, dict) else data.get("message")
            return ItemError(message=str(text or "").strip(), during=data.get("during"),
                             item=data.get("item"))
        if kind == "exit_error":
            return ExitError(code=int(data["code"]), message=str(data.get("message", "")))
    except (KeyError, TypeError, ValueError) as error:
        raise ResticOutputError(f"restic printed a {kind} message drd cannot read: "
                                f"{error}") from None
    return None


def parse_messages(lines: Iterable[str]) -> list[Message]:
    return [message for message in map(parse_message, lines) if message is not None]


def parse_snapshots(text: str) -> list[Snapshot]:
    """`restic snapshots --json`, oldest first as restic prints them."""
    return [_snapshot(item) for item in _document(text, list, "snapshots")]


def parse_forget(text: str) -> list[ForgetGroup]:
    groups = _document(text, list, "forget")
    try:
        return [ForgetGroup(host=group.get("host"), paths=tuple(group.get("paths") or ()),
                            tags=tuple(group.get("tags") or ()),
                            keep=tuple(s["id"] for s in group.get("keep") or ()),
                            remove=tuple(s["id"] for s in group.get("remove") or ()))
                for group in groups]
    except (KeyError, TypeError, AttributeError) as error:
        raise ResticOutputError(f"restic forget printed a group drd cannot read: {error}") \
            from None


def parse_raw_data_stats(text: str) -> RawDataStats:
    data = _document(text, dict, "stats")
    try:
        return RawDataStats(total_size=int(data["total_size"]),
                            total_uncompressed_size=int(data.get("total_uncompressed_size",
                                                                 data["total_size"])),
                            total_blob_count=int(data.get("total_blob_count", 0)),
                            snapshots_count=int(data.get("snapshots_count", 0)))
    except (KeyError, TypeError, ValueError) as error:
        raise ResticOutputError(f"restic stats printed nothing drd can read: {error}") \
            from None


def parse_lock(text: str) -> LockInfo:
    data = _document(text, dict, "cat lock")
    try:
        return LockInfo(time=_time(data["time"]), exclusive=bool(data.get("exclusive")),
                        hostname=str(data["hostname"]), username=data.get("username"),
                        pid=int(data["pid"]))
    except (KeyError, TypeError, ValueError) as error:
        raise ResticOutputError(f"restic cat lock printed a lock drd cannot read: {error}") \
            from None


_HEX_ID = re.compile(r"^[0-9a-f]{64}$")


def parse_ids(text: str) -> list[str]:
    """`restic list ...`: one 64-hex-digit ID a line; other lines are not IDs."""
    return [line.strip() for line in text.splitlines() if _HEX_ID.match(line.strip())]


_VERSION = re.compile(r"\brestic (\d+)\.(\d+)\.(\d+)")


def parse_version(text: str) -> tuple[int, int, int]:
    """`restic version` (plain: every release prints `restic X.Y.Z ...`)."""
    match = _VERSION.search(text)
    if match is None:
        raise ResticOutputError(f"`restic version` printed no version: {text.strip()[:200]!r}")
    return int(match[1]), int(match[2]), int(match[3])


def _backup_summary(data: dict[str, Any]) -> BackupSummary:
    start, end = data.get("backup_start"), data.get("backup_end")
    return BackupSummary(
        snapshot_id=data.get("snapshot_id") or None,
        data_added=int(data["data_added"]),
        data_added_packed=int(data.get("data_added_packed", 0)),
        total_bytes_processed=int(data["total_bytes_processed"]),
        files_new=int(data.get("files_new", 0)),
        files_changed=int(data.get("files_changed", 0)),
        files_unmodified=int(data.get("files_unmodified", 0)),
        total_duration=float(data.get("total_duration", 0.0)),
        backup_start=_time(start) if start else None,
        backup_end=_time(end) if end else None)


def _optional_int(value: Any) -> int | None:
    return None if value is None else int(value)


def _optional_float(value: Any) -> float | None:
    return None if value is None else float(value)


def _snapshot(item: Any) -> Snapshot:
    try:
        summary = item.get("summary")
        return Snapshot(id=str(item["id"]), short_id=str(item.get("short_id", item["id"][:8])),
                        time=_time(item["time"]), hostname=str(item.get("hostname", "")),
                        paths=tuple(item.get("paths") or ()), tags=tuple(item.get("tags") or ()),
                        parent=item.get("parent"),
                        summary=_backup_summary(summary) if isinstance(summary, dict) else None)
    except (KeyError, TypeError, ValueError, AttributeError) as error:
        raise ResticOutputError(f"restic snapshots printed a snapshot drd cannot read: "
                                f"{error}") from None


def _time(text: str) -> datetime:
    # restic writes nanoseconds; Python keeps microseconds and reads the rest fine.
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        raise ValueError(f"time {text!r} has no zone")
    return moment


def _object_line(line: str) -> dict[str, Any] | None:
    text = line.strip()
    if not text.startswith("{"):
        return None
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        return None
    return data if isinstance(data, dict) else None


def _document(text: str, shape: type[Any], command: str) -> Any:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise ResticOutputError(f"restic {command} printed no JSON: {error}: "
                                f"{text.strip()[:200]!r}") from None
    if data is None and shape is list:
        return []
    if not isinstance(data, shape):
        raise ResticOutputError(f"restic {command} printed JSON of the wrong shape "
                                f"({type(data).__name__})")
    return data
