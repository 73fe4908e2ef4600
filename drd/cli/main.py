"""Entry point of the `drd` command."""

import click

from drd import __version__
from drd.cli.lab import lab


@click.group()
@click.version_option(__version__, prog_name="drd")
def cli() -> None:
    """drd: disaster recovery for three-site Ceph clouds."""


cli.add_command(lab)


def main() -> None:
    try:
        cli()
    except ImportError as error:
        if error.name not in ("rados", "rbd"):
            raise
        raise SystemExit(
            f"drd: the Ceph Python binding `{error.name}` is missing (Debian package "
            f"python3-{error.name}); run `bash scripts/setup` as root, and run drd from "
            f"its venv"
        ) from error
