"""Local commands for running a site: `drd daemon`, `drd state init`, `drd token add`."""

import asyncio
import getpass
import os
import sys
from datetime import UTC, datetime
from pathlib import Path

import click

from drd.cli import exit_codes

config_argument = click.option(
    "--config", "config_path", type=click.Path(path_type=Path), envvar="DRD_CONFIG",
    default=Path("/etc/drd/drd.yaml"), show_default=True, help="The site config.")


@click.command()
@config_argument
@click.option("--drain-seconds", type=click.FloatRange(0, 600), default=20.0,
              show_default=True, help="How long SIGTERM waits for in-flight work.")
def daemon(config_path: Path, drain_seconds: float) -> None:
    """Run this site's daemon in the foreground (systemd Type=notify)."""
    # structlog loads rich (and pygments) to pretty-print tracebacks on a terminal
    # whenever rich is installed. The daemon writes JSON lines, so keep both out of
    # its memory: about 3 MiB of an idle daemon's 80.
    sys.modules.setdefault("rich", None)  # type: ignore[arg-type]
    from drd.daemon.config_load import ConfigLoadError, load_config_bundle
    from drd.daemon.lifecycle import DaemonOptions, run_daemon
    from drd.daemon.sd_notify import SystemdNotifier
    from drd.state.errors import StateStoreError

    try:
        loaded = load_config_bundle(config_path)
    except ConfigLoadError as error:
        for issue in error.issues:
            click.echo(issue, err=True)
        sys.exit(exit_codes.FAILURE)
    notifier = SystemdNotifier.from_environ(os.environ)
    try:
        code = asyncio.run(run_daemon(DaemonOptions(config_path, drain_seconds),
                                      notifier, loaded))
    except StateStoreError as error:
        click.echo(f"drd daemon: {error}", err=True)
        sys.exit(exit_codes.FAILURE)
    except OSError as error:
        click.echo(f"drd daemon: cannot serve on {loaded.config.api.listen}: "
                   f"{error.strerror}", err=True)
        sys.exit(exit_codes.FAILURE)
    sys.exit(code)


@click.group()
def state() -> None:
    """The daemon's state database (epochs, history, audit log)."""


@state.command("init")
@config_argument
def state_init(config_path: Path) -> None:
    """Create the state database of a new site. Refuses if one exists."""
    from drd.config.site_loader import load_site_config
    from drd.config.yaml_document import ConfigError
    from drd.state.errors import StateStoreError
    from drd.state.records import AuditResult
    from drd.state.store import StateStore

    try:
        config = load_site_config(config_path)
        config.paths.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        with StateStore.initialise(config.paths.state_dir, config.site.name) as store:
            # The first line of the audit trail says who created it, and when.
            store.audit(actor=os.environ.get("SUDO_USER") or getpass.getuser(), role="local",
                        action="state init", target=str(config.paths.state_dir),
                        result=AuditResult.OK, now=datetime.now(UTC))
    except (ConfigError, StateStoreError) as error:
        click.echo(f"drd state init: {error}", err=True)
        sys.exit(exit_codes.FAILURE)
    click.echo(f"initialised the state database of site {config.site.name} in "
               f"{config.paths.state_dir}")


@click.group()
def token() -> None:
    """API bearer tokens, stored hashed in a 0600 file."""


@token.command("add")
@click.option("--file", "tokens_file", type=click.Path(path_type=Path), required=True,
              help="The tokens file (api.tokens_file in the site config).")
@click.option("--name", required=True, help="Who holds the token, e.g. ops-alice, site-b.")
@click.option("--role", required=True, help="operator, peer, or tenant:<name>.")
def token_add(tokens_file: Path, name: str, role: str) -> None:
    """Issue a token. It is printed once, on stdout; only its hash is kept."""
    from drd.api.tokens import TokenFileError, add_token

    try:
        issued = add_token(tokens_file, name, role)
    except (TokenFileError, ValueError) as error:
        click.echo(f"drd token add: {error}", err=True)
        sys.exit(exit_codes.FAILURE)
    click.echo(issued)
