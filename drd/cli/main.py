"""Entry point of the `drd` command."""

import sys

import click

from drd import __version__
from drd.cli.api_client import CliFailure
from drd.cli.config_cmd import config
from drd.cli.daemon_cmds import daemon, state, token
from drd.cli.lab import lab
from drd.cli.policy_cmd import policy
from drd.cli.rpo_cmd import rpo
from drd.cli.site_cmds import sites, status


@click.group()
@click.version_option(__version__, prog_name="drd")
def cli() -> None:
    """drd: disaster recovery for three-site Ceph clouds."""


for command in (status, sites, rpo, daemon, state, token, config, lab, policy):
    cli.add_command(command)


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
