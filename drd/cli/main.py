"""Entry point of the `drd` command.

Commands are imported only when invoked: `drd daemon` then never loads the
terminal-table code the operator commands use, and `drd --version` answers at once.
"""

import importlib
import sys

import click

from drd import __version__
from drd.cli.failures import CliFailure

COMMANDS = {
    "status": "drd.cli.site_cmds:status",
    "sites": "drd.cli.site_cmds:sites",
    "rpo": "drd.cli.rpo_cmd:rpo",
    "policy": "drd.cli.policy_cmd:policy",
    "daemon": "drd.cli.daemon_cmds:daemon",
    "state": "drd.cli.daemon_cmds:state",
    "token": "drd.cli.daemon_cmds:token",
    "config": "drd.cli.config_cmd:config",
    "lab": "drd.cli.lab:lab",
    "backup": "drd.cli.backup_cmd:backup",
    "restore": "drd.cli.backup_cmd:restore",
    "runbook": "drd.cli.runbook_cmd:runbook",
    "drill": "drd.cli.shortcut_cmds:drill",
    "switchover": "drd.cli.shortcut_cmds:switchover",
    "failover": "drd.cli.shortcut_cmds:failover",
    "failback": "drd.cli.shortcut_cmds:failback",
    "chaos": "drd.cli.chaos_cmd:chaos",
}


class LazyGroup(click.Group):
    """A group whose subcommands live in modules imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = COMMANDS.get(cmd_name)
        if target is None:
            return None
        module, attribute = target.split(":")
        command = getattr(importlib.import_module(module), attribute)
        assert isinstance(command, click.Command)
        return command


@click.group(cls=LazyGroup)
@click.version_option(__version__, prog_name="drd")
def cli() -> None:
    """drd: disaster recovery for three-site Ceph clouds."""


def main() -> None:
    try:
        cli()
    except CliFailure as failure:
        click.echo(f"drd: {failure.message}", err=True)
        sys.exit(failure.code)
    except ImportError as error:
        if error.name not in ("rados", "rbd"):
            raise
        raise SystemExit(
            f"drd: the Ceph Python binding `{error.name}` is missing (Debian package "
            f"python3-{error.name}); run `bash scripts/setup` as root, and run drd from "
            f"its venv"
        ) from error
