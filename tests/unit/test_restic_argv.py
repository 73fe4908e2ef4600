"""restic argv, exactly as drd runs it; no password anywhere."""

from datetime import UTC, datetime, timedelta, timezone

import pytest

from drd.backup import restic_argv as argv
from drd.backup.restic_argv import KeepRules, SnapshotFilter

REPO = "/srv/restic/water"
S3 = "s3:https://rgw.site-c:8480/water"


def test_backup_from_command_argv() -> None:
    assert argv.backup_from_command(
        S3, ["rbd", "export", "rbd/water/vm1@drd-1", "-"], stdin_filename="rbd.water.vm1.raw",
        host="water", tags=["drd:tenant=water", "gold"], limit_upload_kib=20480,
        retry_lock=timedelta(minutes=2),
    ) == ["backup", "--repo", S3, "--json", "--stdin-from-command",
          "--stdin-filename", "rbd.water.vm1.raw", "--host", "water",
          "--tag", "drd:tenant=water", "--tag", "gold", "--limit-upload", "20480",
          "--retry-lock", "120s", "--", "rbd", "export", "rbd/water/vm1@drd-1", "-"]


def test_backup_time_is_written_in_utc() -> None:
    shanghai = timezone(timedelta(hours=8))
    args = argv.backup_from_command(REPO, ["true"], stdin_filename="x", host="h",
                                    time=datetime(2026, 1, 2, 11, 0, tzinfo=shanghai))
    assert args[args.index("--time") + 1] == "2026-01-02 03:00:00"
    with pytest.raises(ValueError, match="time zone"):
        argv.backup_from_command(REPO, ["true"], stdin_filename="x", host="h",
                                 time=datetime(2026, 1, 2))


@pytest.mark.parametrize(("changes", "message"), [
    ({"command": []}, "command"),
    ({"stdin_filename": "rbd/water/vm1.raw"}, "without '/'"),
    ({"stdin_filename": ""}, "without '/'"),
    ({"host": "-x"}, "must not start with '-'"),
    ({"host": "two words"}, "spaces"),
    ({"tags": ["a,b"]}, "comma"),
    ({"limit_upload_kib": 0}, "at least 1"),
])
def test_backup_refuses_what_restic_would_misread(changes: dict[str, object],
                                                  message: str) -> None:
    kwargs: dict[str, object] = {"command": ["cat", "f"], "stdin_filename": "f.raw",
                                 "host": "water", **changes}
    command = kwargs.pop("command")
    with pytest.raises(ValueError, match=message):
        argv.backup_from_command(REPO, command, **kwargs)  # type: ignore[arg-type]


def test_snapshots_filter_any_host_all_tags_all_paths() -> None:
    selection = SnapshotFilter(hosts=("water", "water-c"), tags=("drd:tenant=water", "gold"),
                               paths=("/rbd.water.vm1.raw",))
    assert argv.snapshots(REPO, selection) == [
        "snapshots", "--repo", REPO, "--json", "--host", "water", "--host", "water-c",
        "--tag", "drd:tenant=water,gold", "--path", "/rbd.water.vm1.raw"]
    assert argv.snapshots(REPO) == ["snapshots", "--repo", REPO, "--json"]


def test_forget_groups_by_host_and_paths_and_never_prunes() -> None:
    rules = KeepRules(last=3, hourly=24, daily=7, weekly=4, monthly=12, yearly=5,
                      within=timedelta(days=2, hours=12))
    assert argv.forget(REPO, rules, SnapshotFilter(tags=("drd:tenant=water",)),
                       retry_lock=timedelta(seconds=30)) == [
        "forget", "--repo", REPO, "--json", "--tag", "drd:tenant=water",
        "--group-by", "host,paths", "--keep-last", "3", "--keep-hourly", "24",
        "--keep-daily", "7", "--keep-weekly", "4", "--keep-monthly", "12",
        "--keep-yearly", "5", "--keep-within", "2d12h", "--retry-lock", "30s"]
    dry = argv.forget(REPO, KeepRules(daily=1), dry_run=True)
    assert dry[-1] == "--dry-run" and "--prune" not in dry


@pytest.mark.parametrize(("rules", "group_by", "message"), [
    (KeepRules(), ("host", "paths"), "at least one keep rule"),
    (KeepRules(last=0), ("host", "paths"), "at least 1"),
    (KeepRules(within=timedelta(minutes=90)), ("host", "paths"), "whole hours"),
    (KeepRules(last=1), ("host", "snapshot"), "group-by"),
    (KeepRules(last=1), (), "group-by"),
    (KeepRules(last=1), ("host", "host"), "group-by"),
])
def test_forget_refuses_rules_that_keep_nothing_or_group_oddly(
        rules: KeepRules, group_by: tuple[str, ...], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        argv.forget(REPO, rules, group_by=group_by)


@pytest.mark.parametrize(("duration", "text"), [
    (timedelta(hours=1), "1h"), (timedelta(days=1), "1d"), (timedelta(hours=36), "1d12h"),
    (timedelta(days=400), "400d")])
def test_keep_within_in_restic_units(duration: timedelta, text: str) -> None:
    assert argv.keep_within(duration) == text


def test_forget_named_snapshots() -> None:
    snapshot = "fc81bac6d5aa28eb579a642038a17684dee268a77a6b0a882f99a1d012c86325"
    assert argv.forget_snapshots(REPO, [snapshot]) == [
        "forget", "--repo", REPO, "--json", "--", snapshot]
    with pytest.raises(ValueError, match="snapshot ID"):
        argv.forget_snapshots(REPO, ["latest"])


def test_check_prune_dump_stats_locks_unlock() -> None:
    lock = "a" * 64
    assert argv.check(REPO, read_data_subset="5%", retry_lock=timedelta(seconds=90)) == [
        "check", "--repo", REPO, "--json", "--retry-lock", "90s", "--read-data-subset", "5%"]
    assert argv.prune(REPO) == ["prune", "--repo", REPO, "--json"]
    assert argv.dump(REPO, "latest", "/vm1.raw", SnapshotFilter(paths=("/vm1.raw",))) == [
        "dump", "--repo", REPO, "--json", "--path", "/vm1.raw", "--", "latest", "/vm1.raw"]
    assert argv.stats_raw_data(REPO) == ["stats", "--repo", REPO, "--json",
                                         "--mode", "raw-data"]
    assert argv.list_locks(REPO) == ["list", "locks", "--repo", REPO, "--json", "--no-lock"]
    assert argv.cat_lock(REPO, lock) == ["cat", "lock", "--repo", REPO, "--json",
                                         "--no-lock", "--", lock]
    assert argv.unlock(REPO) == ["unlock", "--repo", REPO, "--json"]
    assert argv.cat_config(REPO) == ["cat", "config", "--repo", REPO, "--json", "--no-lock"]
    assert argv.init(REPO) == ["init", "--repo", REPO, "--json"]
    with pytest.raises(ValueError, match="snapshot ID"):
        argv.dump(REPO, "--target=/etc/passwd", "/x")
    with pytest.raises(ValueError, match="lock ID"):
        argv.cat_lock(REPO, "abc")


@pytest.mark.parametrize("url", [
    "rest:https://drd:hunter2@backup.site-c:8000/water",
    "s3:https://key:secret@rgw.site-c/water",
    "sftp://drd:hunter2@site-c//srv/restic",
    "sftp:drd:hunter2@site-c:/srv/restic",
])
def test_a_url_with_a_password_is_refused_without_echoing_it(url: str) -> None:
    with pytest.raises(ValueError, match="password") as error:
        argv.snapshots(url)
    assert "hunter2" not in str(error.value) and "secret" not in str(error.value)


@pytest.mark.parametrize("url", [
    REPO, "local:/srv/restic", S3, "rest:https://drd@backup.site-c:8000/water",
    "sftp:drd@site-c:/srv/restic", "s3:rgw.site-c/water"])
def test_urls_without_a_password_pass(url: str) -> None:
    assert argv.check_repository(url) == url


@pytest.mark.parametrize("url", ["", "-r", "/srv/two words", "/srv/x\n"])
def test_malformed_urls_are_refused(url: str) -> None:
    with pytest.raises(ValueError):
        argv.check_repository(url)


def test_no_builder_takes_or_writes_a_password() -> None:
    every = [
        argv.version(), argv.init(REPO), argv.cat_config(REPO),
        argv.backup_from_command(REPO, ["true"], stdin_filename="x", host="h",
                                 time=datetime.now(UTC)),
        argv.snapshots(REPO), argv.forget(REPO, KeepRules(last=1)), argv.prune(REPO),
        argv.check(REPO), argv.dump(REPO, "latest", "/x"), argv.stats_raw_data(REPO),
        argv.list_locks(REPO), argv.cat_lock(REPO, "0" * 64), argv.unlock(REPO),
        argv.forget_snapshots(REPO, ["0" * 64])]
    for args in every:
        assert not {"-p", "--password-file", "--password-command",
                    "--insecure-no-password"} & set(args), args
        assert not any("password" in arg for arg in args), args


def test_retry_lock_rounds_up_to_whole_seconds() -> None:
    assert argv.go_duration(timedelta(milliseconds=1500)) == "2s"
    with pytest.raises(ValueError):
        argv.go_duration(timedelta(0))


def test_backup_paths_argv_puts_the_paths_after_the_end_of_options() -> None:
    assert argv.backup_paths(
        REPO, ["/srv/water/scada", "/srv/water/-odd-name"], host="water",
        tags=["drd:tenant=water"], limit_upload_kib=512, retry_lock=timedelta(minutes=1),
    ) == ["backup", "--repo", REPO, "--json", "--host", "water", "--tag", "drd:tenant=water",
          "--limit-upload", "512", "--retry-lock", "60s", "--",
          "/srv/water/scada", "/srv/water/-odd-name"]
    with pytest.raises(ValueError, match="must be absolute"):
        argv.backup_paths(REPO, ["relative/dir"], host="water")
    with pytest.raises(ValueError, match="at least one path"):
        argv.backup_paths(REPO, [], host="water")


def test_the_reads_of_a_restore_test_take_full_ids_and_the_shared_lock() -> None:
    snapshot, tree, index = "a" * 64, "b" * 64, "c" * 64
    retry = {"retry_lock": timedelta(minutes=1)}
    assert argv.cat_snapshot(REPO, snapshot, **retry) == [
        "cat", "snapshot", "--repo", REPO, "--json", "--retry-lock", "60s", "--", snapshot]
    assert argv.cat_tree(REPO, tree) == ["cat", "blob", "--repo", REPO, "--json", "--", tree]
    assert argv.list_index(REPO, **retry) == ["list", "index", "--repo", REPO, "--json",
                                              "--retry-lock", "60s"]
    assert argv.cat_index(REPO, index) == ["cat", "index", "--repo", REPO, "--json", "--",
                                           index]
    # `restic cat` resolves no prefix or `latest`; a flag must never pass for an ID.
    for build, what in ((argv.cat_snapshot, "snapshot"), (argv.cat_tree, "tree"),
                        (argv.cat_index, "index")):
        for bad in ("latest", "a" * 8, "--no-lock", "A" * 64):
            with pytest.raises(ValueError, match=f"not a {what} ID"):
                build(REPO, bad)
