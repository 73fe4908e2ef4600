"""`drd config check FILE`: validate a site config locally, before the daemon reads it."""

import sys
from pathlib import Path

import click

from drd.cli import exit_codes
from drd.config.site_loader import load_site_config
from drd.config.yaml_document import ConfigError
from drd.domain.site_config import SiteConfig


@click.group()
def config() -> None:
    """This site's drd configuration."""


@config.command()
@click.argument("file", type=click.Path(path_type=Path))
def check(file: Path) -> None:
    """Check a site config, printing every problem with its line.

    Problems go to stderr as FILE:LINE: PATH: MESSAGE and the exit code is 1; a valid
    config prints a one-line summary and exits 0. Nothing is changed, and no daemon is
    needed.
    """
    try:
        site_config = load_site_config(file)
    except ConfigError as error:
        for issue in error.issues:
            click.echo(issue.render(), err=True)
        sys.exit(exit_codes.FAILURE)
    click.echo(f"{file}: ok ({summary(site_config)})")


def summary(site_config: SiteConfig) -> str:
    """`site a, production, 2 peers`."""
    count = len(site_config.peers)
    return (f"site {site_config.site.name}, {site_config.site.kind.value}, "
            f"{count} peer{'' if count == 1 else 's'}")
