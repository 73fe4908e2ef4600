"""`drd state init`: a new site's database, created once, its first audit line saying so."""

from pathlib import Path

from click.testing import CliRunner

from drd.cli.main import cli
from drd.state.store import StateStore

EXAMPLE = Path(__file__).parent / "data" / "site-a.yaml"


def test_init_creates_the_database_once_and_audits_it(tmp_path: Path) -> None:
    state_dir = tmp_path / "state"
    config = tmp_path / "drd.yaml"
    config.write_text(EXAMPLE.read_text().replace("/var/lib/drd", str(state_dir)))

    first = CliRunner().invoke(cli, ["state", "init", "--config", str(config)])
    assert first.exit_code == 0, first.output
    with StateStore.open(state_dir, "a") as store:
        [entry] = store.audit_log(10)
    assert entry.action == "state init" and entry.result == "ok"

    again = CliRunner().invoke(cli, ["state", "init", "--config", str(config)])
    assert again.exit_code == 1
    assert "already" in again.output
    with StateStore.open(state_dir, "a") as store:
        assert len(store.audit_log(10)) == 1, "a refused init must change nothing"
