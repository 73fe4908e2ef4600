"""`drd policy check FILE` and `drd policy schema`: what a tenant sees, and the exit codes."""

import json
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
]


@pytest.fixture(autouse=True)
def no_site_config_by_default(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Never read the machine's /etc/drd/drd.yaml or the caller's $DRD_CONFIG."""
    monkeypatch.delenv("DRD_CONFIG", raising=False)
    monkeypatch.setattr(policy_cmd, "DEFAULT_CONFIG", tmp_path / "etc-drd" / "drd.yaml")


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, ["policy", *args])
    return result.exit_code, result.stdout, result.stderr


def copy_example(tmp_path: Path, tenant: str, old: str = "", new: str = "") -> Path:
    text = (EXAMPLES / f"{tenant}.yaml").read_text()
    assert old in text
    path = tmp_path / f"{tenant}.yaml"
    path.write_text(text.replace(old, new, 1))
    return path


def test_a_valid_policy_prints_one_line_per_selection(tmp_path: Path) -> None:
    path = copy_example(tmp_path, "water")
    code, out, err = run("check", str(path), "--config", str(GRANTS))
    assert (code, err) == (0, "")
    assert out.splitlines() == [
        f"{path}: ok (tenant water, 3 selections; within site a's grants and limits)",
        *WATER_LINES,
    ]


def test_without_a_site_config_stderr_says_what_was_not_checked(tmp_path: Path) -> None:
    path = copy_example(tmp_path, "water")
    code, out, err = run("check", str(path))
    assert (code, out.splitlines()) == (0, [f"{path}: ok (tenant water, 3 selections)",
                                            *WATER_LINES])
    missing = tmp_path / "etc-drd" / "drd.yaml"
    assert err == (f"drd: tenant, grants and limits were not checked: no --config given and "
                   f"{missing} does not exist\n")


def test_the_site_config_comes_from_drd_config_or_the_default_path(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = copy_example(tmp_path, "transport")
    monkeypatch.setenv("DRD_CONFIG", str(tmp_path / "nowhere.yaml"))
    code, _, err = run("check", str(path))
    assert (code, err) == (0, f"drd: tenant, grants and limits were not checked: no "
                              f"--config given and $DRD_CONFIG ({tmp_path}/nowhere.yaml) "
                              f"does not exist\n")
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
        f"drd: tenant, grants and limits were not checked: the site config {site} is "
        f"invalid",
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
        f"drd: tenant, grants and limits were not checked: the site config {site} is invalid",
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
