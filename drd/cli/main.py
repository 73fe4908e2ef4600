"""Entry point of the `drd` command."""

import click

from drd import __version__


@click.group()
@click.version_option(__version__, prog_name="drd")
def cli() -> None:
    """drd: disaster recovery for three-site Ceph clouds."""


def main() -> None:
    cli()
