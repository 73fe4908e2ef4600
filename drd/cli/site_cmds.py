"""`drd status` and `drd sites`: what the daemon says, through its API only."""

import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from drd.api.schemas import SiteStatus
from drd.cli.api_client import fail_unhealthy, get_json, resolve_target

Command = Callable[..., None]


def api_options(command: Command) -> Command:
    """--url, --config, --token-file and --json, shared by every API command."""
    for option in reversed([
        click.option("--url", envvar="DRD_URL", help="Daemon API base URL [env DRD_URL]."),
        click.option("--config", "config", type=click.Path(path_type=Path),
                     help="Site config to find the daemon in [env DRD_CONFIG, "
                          "default /etc/drd/drd.yaml]."),
        click.option("--token-file", type=click.Path(path_type=Path),
                     help="File holding the API token [env DRD_TOKEN_FILE or DRD_TOKEN]."),
        click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts."),
    ]):
        command = option(command)
    return command


def _fetch_status(url: str | None, config: Path | None, token_file: Path | None) -> SiteStatus:
    target = resolve_target(url, config, token_file)
    return SiteStatus.model_validate(get_json(target, "/v1/status"))


def _ago(moment: datetime | None, now: datetime) -> str:
    if moment is None:
        return "never"
    return f"{(now - moment).total_seconds():.1f} s ago"


def _healthy(status: SiteStatus) -> bool:
    return (status.ceph.health == "HEALTH_OK" and all(p.reachable for p in status.peers)
            and status.rpo_breaches == 0 and not status.policy_problems)


@click.command()
@api_options
def status(url: str | None, config: Path | None, token_file: Path | None,
           as_json: bool) -> None:
    """This site, its Ceph health, its peers and RPO breaches. Exit 3 if anything is
    unhealthy: Ceph not OK, a peer lost, an RPO breach or a refused policy file."""
    result = _fetch_status(url, config, token_file)
    if as_json:
        click.echo(result.model_dump_json(indent=2))
    else:
        _print_status(result)
    if not _healthy(result):
        fail_unhealthy()


_DETECTOR_STYLES = {"alive": "[green]alive[/]", "suspect": "[yellow]suspect[/]",
                    "lost": "[bold red]LOST[/]"}


_PROTECTION_STYLES = {"protected": "[green]protected[/]", "degraded": "[yellow]degraded[/]",
                      "unprotected": "[bold red]UNPROTECTED[/]"}


def _protected_again(taken: dict[str, Any]) -> str:
    if taken.get("protected_again_seconds") is not None:
        return f", protected again {taken['protected_again_seconds']:.1f} s after"
    if taken.get("protection") == "unprotected":
        return ", [bold red]not protected again yet[/]"
    return ""


def _print_status(result: SiteStatus) -> None:
    now = datetime.now(UTC)
    console = Console()
    health_style = "green" if result.ceph.health == "HEALTH_OK" else "red"
    detail = "" if result.ceph.health == "HEALTH_OK" else f" ({result.ceph.detail})"
    console.print(f"[bold]site {result.site}[/] ({result.kind.value}), drd {result.version}, "
                  f"up {result.uptime_seconds:.0f} s; ceph [{health_style}]"
                  f"{result.ceph.health}[/]{detail}", highlight=False)
    table = Table(title="peers")
    for column in ("peer", "kind", "reachable", "last seen", "round trip", "their ceph",
                   "detector", "last error"):
        table.add_column(column)
    for peer in result.peers:
        table.add_row(
            peer.name, peer.kind.value,
            "[green]yes[/]" if peer.reachable else f"[bold red]NO[/] ({peer.missed} missed)",
            _ago(peer.last_seen, now),
            f"{peer.round_trip_ms:.1f} ms" if peer.round_trip_ms is not None else "-",
            peer.peer_ceph_health, _DETECTOR_STYLES.get(peer.detector, peer.detector),
            peer.last_error or "-")
    console.print(table)
    for peer in result.peers:
        if peer.detector != "alive":
            console.print(f"detector: {peer.name} {peer.detector}: {peer.detector_reason}",
                          highlight=False)
    rpo_style = "bold red" if result.rpo_breaches else "yellow" if result.rpo_warnings \
        else "green"
    console.print(f"RPO: [{rpo_style}]{result.rpo_breaches} BREACH, {result.rpo_warnings} "
                  f"WARN[/] (details: drd rpo)", highlight=False)
    for line in result.object_sync:
        console.print(f"object sync: {line}", highlight=False)
    for lease in result.leases:
        held = (f"{lease.holder} at epoch {lease.epoch}, {lease.remaining_seconds:.1f} s left "
                f"here" if lease.holder and lease.remaining_seconds is not None else "nobody")
        console.print(f"lease {lease.group}: {held}; {lease.move}: {lease.reason}",
                      highlight=False)
        if lease.fenced:
            console.print(f"[bold red]  fenced:[/] {lease.fenced}", highlight=False)
        if lease.takeover:
            taken = lease.takeover
            report = taken.get("report") or {}
            console.print(f"  last takeover: from {taken.get('from')} at epoch "
                          f"{taken.get('epoch')}, run {taken.get('run', '-')} "
                          f"{taken.get('run_state', 'running' if taken.get('running') else '')}"
                          f", rto {report.get('rto_seconds', '-')} s"
                          + _protected_again(taken), highlight=False)
    for group in result.protection:
        style = _PROTECTION_STYLES.get(group.state, group.state)
        since = (f" since {group.unprotected_since:%H:%M:%S} "
                 f"({_ago(group.unprotected_since, now)})" if group.unprotected_since else "")
        again = (f"; last unprotected for {group.protected_again_seconds:.1f} s"
                 if group.protected_again_seconds is not None else "")
        console.print(f"group {group.group}: {style}{since}{again}: {group.reason}",
                      highlight=False)
    for probe in result.service_probes:
        answer = "[green]answers[/]" if probe.answering else "[bold red]silent[/]"
        console.print(f"service {probe.tenant}/{probe.probe} at {probe.site_kind.value} "
                      f"({probe.endpoint}): {answer}: {probe.result}", highlight=False)
    for problem in result.policy_problems:
        console.print(f"[bold red]policy refused:[/] {problem}", highlight=False)


@click.command()
@api_options
def sites(url: str | None, config: Path | None, token_file: Path | None,
          as_json: bool) -> None:
    """Every site this daemon knows: itself and its peers, with kind and reachability."""
    result = _fetch_status(url, config, token_file)
    rows: list[dict[str, Any]] = [{"name": result.site, "kind": result.kind.value,
                                   "self": True, "reachable": True, "url": None}]
    rows += [{"name": p.name, "kind": p.kind.value, "self": False,
              "reachable": p.reachable, "url": p.url} for p in result.peers]
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    table = Table()
    for column in ("site", "kind", "reachable", "url"):
        table.add_column(column)
    for row in rows:
        name = f"{row['name']} (this site)" if row["self"] else row["name"]
        reachable = "[green]yes[/]" if row["reachable"] else "[bold red]NO[/]"
        table.add_row(name, row["kind"], reachable, row["url"] or "-")
    Console().print(table)
