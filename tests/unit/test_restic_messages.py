"""restic's --json output, read from what real restic 0.18.0 printed.

tests/unit/data/restic_0.18.0.json was written by
`python -m tests.integration.capture_restic_output`, which ran the installed restic
against throw-away repositories with drd's own argv (see that script).
"""

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from drd.backup.restic_messages import (
    BackupStatus,
    BackupSummary,
    CheckSummary,
    ExitError,
    ItemError,
    ResticOutputError,
    parse_forget,
    parse_ids,
    parse_lock,
    parse_message,
    parse_messages,
    parse_raw_data_stats,
    parse_snapshots,
    parse_version,
)

CAPTURED = json.loads((Path(__file__).parent / "data" / "restic_0.18.0.json").read_text())
RUNS: dict[str, Any] = CAPTURED["runs"]


def lines(run: str, stream: str = "stdout") -> list[str]:
    text: str = RUNS[run][stream]
    return text.splitlines()


def test_the_capture_is_of_restic_0_18() -> None:
    assert parse_version(RUNS["version"]["stdout"]) == (0, 18, 0)
    assert parse_version("restic 0.14.0 compiled with go1.19.8 on linux/amd64") == (0, 14, 0)
    with pytest.raises(ResticOutputError):
        parse_version("rustic 0.7")


def test_backup_status_and_summary() -> None:
    messages = parse_messages(lines("backup_first"))
    statuses = [m for m in messages if isinstance(m, BackupStatus)]
    summaries = [m for m in messages if isinstance(m, BackupSummary)]
    assert len(statuses) > 10 and len(summaries) == 1
    # A stream's size is unknown beforehand: no total, a meaningless percentage.
    assert all(s.total_bytes is None for s in statuses)
    assert statuses[-1].bytes_done == 48 << 20
    assert any(s.seconds_elapsed for s in statuses)
    assert [s.bytes_done for s in statuses] == sorted(s.bytes_done for s in statuses)
    summary = summaries[0]
    assert summary.snapshot_id is not None and len(summary.snapshot_id) == 64
    assert summary.total_bytes_processed == 48 << 20
    assert summary.data_added >= 48 << 20  # random data does not deduplicate
    assert summary.files_new == 1
    assert summary.backup_start is not None and summary.backup_start.tzinfo is not None


def test_an_unchanged_backup_adds_almost_nothing() -> None:
    summary = next(m for m in parse_messages(lines("backup_unchanged"))
                   if isinstance(m, BackupSummary))
    assert summary.snapshot_id and summary.total_bytes_processed == 48 << 20
    assert summary.data_added < 4096
    assert summary.files_changed == 1  # a stream has no mtime to prove it unchanged


def test_an_empty_stream_saves_a_snapshot_yet_exits_3() -> None:
    run = RUNS["backup_empty"]
    assert run["exit_code"] == 3
    summary = [m for m in parse_messages(lines("backup_empty")) if isinstance(m, BackupSummary)]
    assert summary[0].snapshot_id and summary[0].total_bytes_processed == 0
    errors = parse_messages(lines("backup_empty", "stderr"))
    assert errors == [
        ItemError("failed to save /empty.raw: read /empty.raw: no data read", "archival",
                  "/empty.raw"),
        ExitError(3, "Warning: at least one source file could not be read")]


def test_a_failing_command_is_a_fatal_error_on_stderr() -> None:
    assert RUNS["backup_command_fails"]["exit_code"] == 1
    assert not any(isinstance(m, BackupSummary)
                   for m in parse_messages(lines("backup_command_fails")))
    last = parse_messages(lines("backup_command_fails", "stderr"))[-1]
    assert isinstance(last, ExitError) and "exit status 7" in last.message


@pytest.mark.parametrize(("run", "code"), [
    ("cat_config_missing", 10), ("snapshots_wrong_password", 12), ("backup_locked", 11),
    ("backup_stale_lock", 11), ("check_interrupted", 130), ("check_damaged", 1)])
def test_exit_errors_carry_the_exit_code(run: str, code: int) -> None:
    assert RUNS[run]["exit_code"] == code
    exit_errors = [m for m in parse_messages(lines(run, "stderr")) if isinstance(m, ExitError)]
    assert [e.code for e in exit_errors] == [code]


def test_plain_lines_are_not_messages() -> None:
    assert parse_message("\x1b[2Ksignal interrupt received, cleaning up") is None
    assert parse_message("successfully removed 1 locks") is None
    assert parse_message("{not json") is None
    assert parse_message("[1, 2]") is None
    assert parse_message('{"message_type":"verbose_status","action":"new"}') is None
    assert parse_messages(lines("prune")) == []


def test_a_broken_known_message_is_an_error() -> None:
    with pytest.raises(ResticOutputError, match="summary"):
        parse_message('{"message_type":"summary","snapshot_id":"ab"}')


def test_snapshots() -> None:
    snapshots = parse_snapshots(RUNS["snapshots"]["stdout"])
    by_path = {s.paths: s for s in snapshots}
    assert set(by_path) == {("/vm1.raw",), ("/empty.raw",), ("/dated.raw",)}
    assert len(snapshots) == 7 and all(s.hostname == "water" for s in snapshots)
    assert by_path[("/vm1.raw",)].tags == ("drd:tenant=water",)
    dated = [s.time for s in snapshots if s.paths == ("/dated.raw",)]
    assert dated == [datetime(2026, 1, d, 3, tzinfo=UTC) for d in (1, 2, 3, 10)]
    summary = by_path[("/vm1.raw",)].summary
    assert summary is not None and summary.total_bytes_processed == 48 << 20
    assert parse_snapshots("[]") == [] and parse_snapshots("null") == []
    with pytest.raises(ResticOutputError):
        parse_snapshots('{"id": 1}')


def test_forget_dry_run_groups() -> None:
    [group] = parse_forget(RUNS["forget_dry_run"]["stdout"])
    times = {s.id: s.time for s in parse_snapshots(RUNS["snapshots"]["stdout"])}
    assert group.host == "water" and group.paths == ("/dated.raw",)
    assert [times[i].day for i in group.keep] == [10, 3]
    assert sorted(times[i].day for i in group.remove) == [1, 2]


def test_raw_data_stats() -> None:
    stats = parse_raw_data_stats(RUNS["stats_raw_data"]["stdout"])
    assert stats.snapshots_count == 7
    assert 48 << 20 <= stats.total_size < 49 << 20


def test_check_summaries() -> None:
    [healthy] = parse_messages(lines("check"))
    assert healthy == CheckSummary(0, (), False, False)
    [damaged] = parse_messages(lines("check_damaged"))
    assert isinstance(damaged, CheckSummary) and damaged.num_errors == 1
    assert len(damaged.broken_packs) == 1
    [unread] = parse_messages(lines("check_damaged_structure"))
    assert isinstance(unread, CheckSummary) and unread.num_errors == 0
    item_errors = [m for m in parse_messages(lines("check_damaged", "stderr"))
                   if isinstance(m, ItemError)]
    assert damaged.broken_packs[0] in item_errors[0].message


def test_locks() -> None:
    [lock_id] = parse_ids(RUNS["list_locks"]["stdout"])
    lock = parse_lock(RUNS["cat_lock"]["stdout"])
    assert lock.exclusive and lock.pid > 0 and lock.hostname
    assert lock.time.tzinfo is not None
    assert lock_id[:8] in RUNS["backup_locked"]["stderr"]
    assert parse_ids(RUNS["list_locks_after_unlock"]["stdout"]) == []
    assert parse_ids("Fatal: x\n" + lock_id + "\n") == [lock_id]
    with pytest.raises(ResticOutputError):
        parse_lock('{"time": "2026-01-01T00:00:00", "hostname": "h", "pid": 1}')
