"""`drd policy check FILE` and `drd policy schema`: what a tenant sees, and the exit codes."""

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner

from drd.cli import policy_cmd
from drd.cli.main import cli
from drd.config.policy_loader import policy_json_schema

REPO = Path(__file__).parents[2]
EXAMPLES = REPO / "policies"
GRANTS = Path(__file__).parent / "data" / "site-with-grants.yaml"

WATER_LINES = [
    "  databases: rbd/water [db-*, pg-wal-?] -> same_city journal, rpo target 5s; "
    "remote snapshot every 1m, rpo target 2m",
    "  scada-history: rbd/water [scada-hist-*] -> remote snapshot every 5m, "
    "rpo target 10m",
    "  documents: buckets [water-docs-*, meter-exports] -> same_city lag target 2m; "
    "remote lag target 10m; repair report",
    "  (who owns each named bucket is checked when the daemon applies it)",
    "  backup source databases: rbd/water [db-*] from remote",
    "  backup source scada-history: rbd/water [scada-hist-*] from production",
]
NOW = datetime(2026, 7, 1, 12, 0, tzinfo=UTC)  # a Wednesday
LAB_PASSWORD_FILE = "/var/lib/drd-lab/restic/water.password"  # noqa: S105 (a path)


def water_backup_lines(repository: str, password_file: Path) -> list[str]:
    """What check prints about the water example's backups after NOW: each job at its cron
    slot plus water's own offset within the jitter, the same on every run."""
    return [
        f"  backup repository: {repository}",
        f"  backup password file: {password_file}",
        "  backup retention keep_daily 7, keep_weekly 5, keep_monthly 12; upload limit "
        "40MiB/s; tags water, metering",
        "  backup at '0 18 * * *' UTC + 15m24s (water's fixed offset within jitter 30m); "
        "next 5:",
        *(f"    2026-07-0{day} 18:15:24 UTC" for day in range(1, 6)),
        "  prune at '0 20 * * 0' UTC + 11m17s (water's fixed offset within jitter 1h); "
        "next 5:",
        *(f"    {day} 20:11:17 UTC" for day in ("2026-07-05", "2026-07-12", "2026-07-19",
                                                 "2026-07-26", "2026-08-02")),
        "  check at '0 20 * * 3' UTC + 10m10s (water's fixed offset within jitter 1h), "
        "reading 10% of the data; next 5:",
        *(f"    {day} 20:10:10 UTC" for day in ("2026-07-01", "2026-07-08", "2026-07-15",
                                                 "2026-07-22", "2026-07-29")),
        "  restore test at '0 22 * * 6' UTC + 3m43s (water's fixed offset within jitter "
        "1h), 1 source, latest snapshot; next 5:",
        *(f"    {day} 22:03:43 UTC" for day in ("2026-07-04", "2026-07-11", "2026-07-18",
                                                 "2026-07-25", "2026-08-01")),
    ]


@pytest.fixture(autouse=True)
def no_site_config_by_default(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Never read the machine's /etc/drd/drd.yaml or the caller's $DRD_CONFIG."""
    monkeypatch.delenv("DRD_CONFIG", raising=False)
    monkeypatch.setattr(policy_cmd, "DEFAULT_CONFIG", tmp_path / "etc-drd" / "drd.yaml")
    monkeypatch.setattr(policy_cmd, "utc_now", lambda: NOW)


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, ["policy", *args])
    return result.exit_code, result.stdout, result.stderr


def password_file(tmp_path: Path, mode: int = 0o600) -> Path:
    """The water example's password file, as the lab would leave it, in `tmp_path`."""
    path = tmp_path / "water.password"
    path.write_text("lab password\n")
    path.chmod(mode)
    return path


def copy_example(tmp_path: Path, tenant: str, old: str = "", new: str = "") -> Path:
    """The example, edited, with its password file in `tmp_path` instead of the lab."""
    text = (EXAMPLES / f"{tenant}.yaml").read_text()
    assert old in text
    path = tmp_path / f"{tenant}.yaml"
    path.write_text(text.replace(old, new, 1).replace(
        LAB_PASSWORD_FILE, str(password_file(tmp_path))))
    return path


def test_a_valid_policy_prints_each_selection_and_the_next_runs_of_each_backup_job(
        tmp_path: Path) -> None:
    path = copy_example(tmp_path, "water")
    code, out, err = run("check", str(path), "--config", str(GRANTS))
    assert (code, err) == (0, "")
    assert out.splitlines() == [
        f"{path}: ok (tenant water, 3 selections, 2 backup sources; within site a's "
        f"grants and limits)",
        *WATER_LINES,
        *water_backup_lines("/var/lib/drd-lab/c/restic/water (site a's default for water; "
                            "drd creates it if missing)", tmp_path / "water.password"),
    ]


def test_without_a_site_config_stderr_says_what_was_not_checked(tmp_path: Path) -> None:
    path = copy_example(tmp_path, "water")
    code, out, err = run("check", str(path))
    assert (code, out.splitlines()) == (0, [
        f"{path}: ok (tenant water, 3 selections, 2 backup sources)", *WATER_LINES,
        *water_backup_lines("the tenant's repository at the remote site, named by the "
                            "site config (drd creates it if missing)",
                            tmp_path / "water.password")])
    missing = tmp_path / "etc-drd" / "drd.yaml"
    assert err == (f"drd: tenant, grants, limits and the backup password file were not "
                   f"checked: no --config given and {missing} does not exist\n")


def test_a_password_file_others_can_read_is_an_error_with_its_line(tmp_path: Path) -> None:
    path = copy_example(tmp_path, "water")
    (tmp_path / "water.password").chmod(0o644)
    code, out, err = run("check", str(path), "--config", str(GRANTS))
    assert (code, out) == (1, "")
    assert err == (f"{path}:74: backup.password_file: {tmp_path}/water.password is mode "
                   f"0644, so users other than its owner may read or change the repository "
                   f"password; make it 0600: chmod 600 {tmp_path}/water.password\n")


def test_too_many_backups_a_day_is_an_error_with_its_line(tmp_path: Path) -> None:
    path = copy_example(tmp_path, "water", 'cron: "0 18 * * *"', 'cron: "*/30 * * * *"')
    path.write_text(path.read_text().replace("jitter: 30m", "jitter: 20m"))
    code, out, err = run("check", str(path), "--config", str(GRANTS))
    assert (code, out) == (1, "")
    assert err == (f"{path}:71: backup.schedule.cron: '*/30 * * * *' runs 48 backups a "
                   f"day; site 'a' allows at most 24 (limits.max_backups_per_day in its "
                   f"site config)\n")


def test_the_site_config_comes_from_drd_config_or_the_default_path(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = copy_example(tmp_path, "transport")
    monkeypatch.setenv("DRD_CONFIG", str(tmp_path / "nowhere.yaml"))
    code, _, err = run("check", str(path))
    assert (code, err) == (0, f"drd: tenant, grants, limits and the backup password file "
                              f"were not checked: no --config given and $DRD_CONFIG "
                              f"({tmp_path}/nowhere.yaml) does not exist\n")
    monkeypatch.setenv("DRD_CONFIG", str(GRANTS))
    code, out, err = run("check", str(path))
    assert (code, err) == (0, "")
    assert "within site a's grants and limits" in out.splitlines()[0]
    monkeypatch.delenv("DRD_CONFIG")
    monkeypatch.setattr(policy_cmd, "DEFAULT_CONFIG", GRANTS)
    assert run("check", str(path))[::2] == (0, "")


def test_every_issue_goes_to_stderr_with_its_line_and_exits_1(tmp_path: Path) -> None:
    path = copy_example(tmp_path, "water", "mode: journal", "mode: journal\n        interval: 5s")
    path.write_text(path.read_text().replace("rpo_target: 10m",
                                             "rpo_target: 10m\n        colour: blue"))
    code, out, err = run("check", str(path), "--config", str(GRANTS))
    assert (code, out) == (1, "")
    assert err.splitlines() == [
        f"{path}:25: protection.block[0].same_city.interval: not allowed when mode is "
        f"journal: journal mode ships every write as it happens, so there is no interval; "
        f"remove it, or use mode: snapshot",
        f"{path}:42: protection.block[1].remote.colour: unknown key 'colour' is not allowed; "
        f"allowed keys here: mode, interval, rpo_target",
    ]


def test_grants_and_limits_are_refused_with_their_lines(tmp_path: Path) -> None:
    path = copy_example(tmp_path, "transport", "pool: rbd                # a pool",
                        "pool: water-vms          # a pool")
    path.write_text(path.read_text().replace("interval: 10m", "interval: 30s"))
    code, out, err = run("check", str(path), "--config", str(GRANTS))
    assert (code, out) == (1, "")
    assert err.splitlines() == [
        f"{path}:15: protection.block[0].pool: tenant 'transport' may not select images in "
        f"water-vms/transport; the site config grants it: rbd/transport, "
        f"transport-vms/* (every namespace)",
        f"{path}:34: protection.block[1].same_city.interval: 30s is shorter than the "
        f"shortest snapshot interval site 'a' allows, 1m (limits.min_snapshot_interval in "
        f"its site config)",
    ]


def test_an_invalid_site_config_is_reported_with_the_policy(tmp_path: Path) -> None:
    site = tmp_path / "site.yaml"
    site.write_text(GRANTS.read_text().replace("min_rpo_target: 1s", "min_rpo: 1s"))
    path = copy_example(tmp_path, "water", "tenant: water", "tenant: water\ncolour: blue")
    code, out, err = run("check", str(path), "--config", str(site))
    assert (code, out) == (1, "")
    assert err.splitlines() == [
        f"{site}:43: limits.min_rpo: unknown key 'min_rpo' is not allowed; allowed keys "
        f"here: min_snapshot_interval, min_rpo_target, min_sync_lag_target, "
        f"max_backups_per_day, max_prunes_per_day, max_checks_per_day, "
        f"max_restore_tests_per_day",
        f"{path}:10: colour: unknown key 'colour' is not allowed; allowed keys here: "
        f"tenant, protection, backup",
        f"drd: tenant, grants, limits and the backup password file were not checked: the "
        f"site config {site} is invalid",
    ]
    path.write_text((EXAMPLES / "water.yaml").read_text())
    code, out, err = run("check", str(path), "--config", str(site))
    assert (code, out, len(err.splitlines())) == (1, "", 2)


def test_a_missing_policy_file_is_one_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "water.yaml"
    code, out, err = run("check", str(path), "--config", str(GRANTS))
    assert (code, out, err) == (
        1, "", f"{path}: cannot read the file: No such file or directory\n")


def test_a_missing_site_config_given_by_flag_is_an_error(tmp_path: Path) -> None:
    path = copy_example(tmp_path, "water")
    site = tmp_path / "site.yaml"
    code, out, err = run("check", str(path), "--config", str(site))
    assert (code, out) == (1, "")
    assert err.splitlines() == [
        f"{site}: cannot read the file: No such file or directory",
        f"drd: tenant, grants, limits and the backup password file were not checked: the "
        f"site config {site} is invalid",
    ]


def test_schema_prints_the_json_schema() -> None:
    code, out, err = run("schema")
    assert (code, err) == (0, "")
    assert json.loads(out) == policy_json_schema()


def test_the_committed_schema_is_the_generated_one() -> None:
    committed = (EXAMPLES / "schema.json").read_text()
    assert committed == run("schema")[1], (
        "policies/schema.json is out of date; regenerate it with: "
        ".venv/bin/drd policy schema > policies/schema.json")
