"""`drd config check FILE`: what an operator sees, and the exit code scripts rely on."""

from pathlib import Path

from click.testing import CliRunner

from drd.cli.main import cli

EXAMPLE = Path(__file__).parent / "data" / "site-a.yaml"


def check(path: Path) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, ["config", "check", str(path)])
    return result.exit_code, result.stdout, result.stderr


def test_a_valid_config_is_summarised_on_stdout(tmp_path: Path) -> None:
    path = tmp_path / "site.yaml"
    path.write_text(EXAMPLE.read_text())
    assert check(path) == (0, f"{path}: ok (site a, production, 2 peers)\n", "")


def test_a_single_peer_is_counted_in_the_singular(tmp_path: Path) -> None:
    text = EXAMPLE.read_text()
    path = tmp_path / "site.yaml"
    path.write_text(text[:text.index("  - name: c")] + text[text.index("heartbeat:"):])
    assert check(path) == (0, f"{path}: ok (site a, production, 1 peer)\n", "")


def test_every_issue_goes_to_stderr_on_its_own_line_and_exits_1(tmp_path: Path) -> None:
    path = tmp_path / "site.yaml"
    path.write_text(EXAMPLE.read_text()
                    .replace("kind: production", "kind: primary")
                    .replace("state_dir: /var/lib/drd", "state_dir: var/lib/drd")
                    .replace("  level: info", "  level: info\n  format: json"))
    code, out, err = check(path)
    assert (code, out) == (1, "")
    assert err.splitlines() == [
        f"{path}:3: site.kind: must be one of 'production', 'same-city' or 'remote', "
        f"got text 'primary'",
        f"{path}:11: paths.state_dir: must be an absolute path (starting with /), "
        f"got 'var/lib/drd'",
        f"{path}:30: log.format: unknown key 'format' is not allowed; allowed keys here: level",
    ]


def test_a_yaml_syntax_error_reports_its_line(tmp_path: Path) -> None:
    path = tmp_path / "site.yaml"
    path.write_text("site:\n  name: a\n kind: production\n")
    code, out, err = check(path)
    assert (code, out) == (1, "")
    assert err.startswith(f"{path}:3: YAML syntax error: ")
    assert len(err.splitlines()) == 1


def test_a_missing_file_is_one_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "nowhere.yaml"
    assert check(path) == (1, "", f"{path}: cannot read the file: No such file or directory\n")


def test_a_directory_is_one_clear_error(tmp_path: Path) -> None:
    assert check(tmp_path) == (1, "", f"{tmp_path}: cannot read the file: Is a directory\n")
