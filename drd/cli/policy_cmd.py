"""`drd policy check FILE` and `drd policy schema`: how a tenant tries a policy locally,
before the daemon reads it (no daemon needed, nothing changed); and `drd policy apply
FILE`, which hands it to the daemon through the API."""

import json
import os
import sys
from datetime import UTC, datetime
from pathlib import Path

import click

from drd.cli import exit_codes
from drd.cli.api_client import put_text, resolve_target
from drd.cli.backup_summary import backup_lines
from drd.cli.site_cmds import api_options
from drd.config.policy_loader import load_policy, policy_json_schema
from drd.config.site_loader import load_site_config
from drd.config.yaml_document import ConfigError, ConfigIssue
from drd.domain.durations import format_duration
from drd.domain.object_selection import ObjectSelection, is_glob
from drd.domain.site_config import SiteConfig
from drd.domain.tenant_policy import (
    BlockSelection,
    RemoteDestination,
    SameCityDestination,
    TenantPolicy,
)

DEFAULT_CONFIG = Path("/etc/drd/drd.yaml")
# What only a site config makes checkable: it names the tenants, grants and limits, and
# where it is, is where the jobs run and the password file must be.
_UNCHECKED = "tenant, grants, limits and the backup password file"


@click.group()
def policy() -> None:
    """Tenant policies: check one, apply one, or print their JSON Schema."""


@policy.command()
@click.argument("file", type=click.Path(path_type=Path))
@click.option("--config", "config_path", type=click.Path(path_type=Path), default=None,
              help="Site config holding the tenants, grants and limits to check against "
                   "[default: $DRD_CONFIG, else /etc/drd/drd.yaml, when it exists].")
def check(file: Path, config_path: Path | None) -> None:
    """Check a tenant policy, printing every problem with its line.

    Problems go to stderr as FILE:LINE: PATH: MESSAGE and the exit code is 1; a valid
    policy prints one line per selection, its backups, and the next five run times of
    each backup schedule, and exits 0. Without a site config the tenant, its grants, the
    platform limits and the backup password file are not checked, and stderr says so.
    """
    site_config, site_issues, unchecked = _site_config(config_path)
    try:
        tenant_policy = load_policy(file, site_config)
    except ConfigError as error:
        _report([*site_issues, *error.issues], unchecked)
        sys.exit(exit_codes.FAILURE)
    if site_issues:
        _report(site_issues, unchecked)
        sys.exit(exit_codes.FAILURE)
    for line in summary(file, tenant_policy, site_config, utc_now()):
        click.echo(line)
    if unchecked:
        click.echo(unchecked, err=True)


@policy.command()
def schema() -> None:
    """Print the JSON Schema of a tenant policy (published as policies/schema.json)."""
    click.echo(schema_text())


def schema_text() -> str:
    """The schema exactly as `drd policy schema` prints it, without the final newline."""
    return json.dumps(policy_json_schema(), indent=2, ensure_ascii=False)


def utc_now() -> datetime:
    """The instant next run times are counted from; the one clock read of this command."""
    return datetime.now(UTC)


def summary(file: Path, tenant_policy: TenantPolicy, site_config: SiteConfig | None,
            now: datetime) -> list[str]:
    """`water.yaml: ok (...)`, then one line per selection, then the backups and the
    next run times of each backup schedule after `now`."""
    block, objects = tenant_policy.protection.block, tenant_policy.protection.object
    backup = tenant_policy.backup
    total = len(block) + len(objects)
    count = (f"{total} selection{'' if total == 1 else 's'}" if total
             else "nothing is protected")
    if backup is not None:
        sources = len(backup.sources)
        count += f", {sources} backup source{'' if sources == 1 else 's'}"
    against = (f"; within site {site_config.site.name}'s grants and limits"
               if site_config is not None else "")
    lines = [f"{file}: ok (tenant {tenant_policy.tenant}, {count}{against})"]
    lines += [f"  {_selection_line(selection)}" for selection in block]
    lines += [f"  {_object_line(selection)}" for selection in objects]
    if any(not is_glob(b) for selection in objects for b in selection.buckets):
        lines.append("  (who owns each named bucket is checked when the daemon applies it)")
    if backup is not None:
        lines += backup_lines(tenant_policy.tenant, backup, site_config, now)
    return lines


def _object_line(selection: ObjectSelection) -> str:
    targets = [f"{name} lag target {format_duration(destination.lag_target)}"
               for name, destination in (("same_city", selection.same_city),
                                         ("remote", selection.remote))
               if destination is not None]
    return (f"{selection.name}: buckets [{', '.join(selection.buckets)}] -> "
            f"{'; '.join(targets)}; repair {selection.repair.value}")


def _selection_line(selection: BlockSelection) -> str:
    destinations = [_destination(name, destination) for name, destination in
                    (("same_city", selection.same_city), ("remote", selection.remote))
                    if destination is not None]
    return (f"{selection.name}: {selection.spec} [{', '.join(selection.images)}] -> "
            f"{'; '.join(destinations)}")


def _destination(name: str, destination: SameCityDestination | RemoteDestination) -> str:
    every = (f" every {format_duration(destination.interval)}"
             if destination.interval is not None else "")
    return (f"{name} {destination.mode.value}{every}, "
            f"rpo target {format_duration(destination.rpo_target)}")


def _site_config(explicit: Path | None) -> tuple[SiteConfig | None, list[ConfigIssue], str]:
    """The site config to check against, its issues if it is invalid, and a note when the
    platform rules go unchecked."""
    if explicit is None:
        from_env = os.environ.get("DRD_CONFIG")
        path = Path(from_env) if from_env else DEFAULT_CONFIG
        if not path.exists():
            source = f"$DRD_CONFIG ({path})" if from_env else str(path)
            return None, [], (f"drd: {_UNCHECKED} were not checked: no --config given "
                              f"and {source} does not exist")
    else:
        path = explicit
    try:
        return load_site_config(path), [], ""
    except ConfigError as error:
        return None, list(error.issues), (f"drd: {_UNCHECKED} were not checked: the "
                                          f"site config {path} is invalid")


def _report(issues: list[ConfigIssue], note: str) -> None:
    for issue in issues:
        click.echo(issue.render(), err=True)
    if note:
        click.echo(note, err=True)


@policy.command()
@click.argument("file", type=click.Path(path_type=Path, exists=True, dir_okay=False))
@api_options
def apply(file: Path, url: str | None, config: Path | None, token_file: Path | None,
          as_json: bool) -> None:
    """Send a tenant policy to the daemon, which validates, stores and applies it.

    The tenant is the file's name (water.yaml is tenant water). An invalid policy
    changes nothing; every problem is printed with its line.
    """
    target = resolve_target(url, config, token_file)
    accepted = put_text(target, f"/v1/tenants/{file.stem}/policy", file.read_text(),
                        "application/yaml")
    if as_json:
        click.echo(json.dumps(accepted, indent=2))
    else:
        click.echo(f"{file}: applied as tenant {accepted['tenant']}'s policy "
                   f"({accepted['selections']} selections)")
