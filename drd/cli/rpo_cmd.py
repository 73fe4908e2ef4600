"""`drd rpo`: measured RPO of every protected image and destination, against its target."""

from datetime import UTC, datetime
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from drd.cli.api_client import fail_unhealthy, get_json, resolve_target
from drd.cli.site_cmds import api_options
from drd.replication.views import RpoReport

STATE_STYLE = {"OK": "green", "WARN": "yellow", "BREACH": "bold red", "UNKNOWN": "dim"}


def _seconds(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.1f} s" if value < 120 else f"{value / 60:.1f} min"


@click.command()
@click.option("--tenant", default=None, help="Only this tenant's images.")
@api_options
def rpo(tenant: str | None, url: str | None, config: Path | None, token_file: Path | None,
        as_json: bool) -> None:
    """Target, measured RPO and state (OK, WARN over 1x target, BREACH over 2x), of
    every protected image and, where the site runs RGW, the sync lag of every selected
    bucket.

    Exit 3 when any image or bucket is in BREACH.
    """
    target = resolve_target(url, config, token_file)
    path = "/v1/rpo" + (f"?tenant={tenant}" if tenant else "")
    report = RpoReport.model_validate(get_json(target, path))
    if as_json:
        click.echo(report.model_dump_json(indent=2))
    else:
        now = datetime.now(UTC)
        table = Table(title=f"RPO, measured {now:%Y-%m-%d %H:%M:%S} UTC")
        for column in ("tenant", "image", "destination", "target", "measured", "state",
                       "detail"):
            table.add_column(column)
        for row in report.rows:
            style = STATE_STYLE.get(row.rpo_state, "")
            table.add_row(row.tenant, row.image, f"{row.destination} ({row.site or '-'})",
                          _seconds(row.rpo_target_seconds), _seconds(row.rpo_seconds),
                          f"[{style}]{row.rpo_state}[/]", row.detail)
        console = Console()
        console.print(table)
        if report.buckets:
            console.print(_bucket_table(report, now))
        click.echo(f"{len(report.rows)} image destinations, {len(report.buckets)} bucket "
                   f"destinations, {report.warnings} WARN, {report.breaches} BREACH")
    if report.breaches:
        fail_unhealthy()


def _bucket_table(report: RpoReport, now: datetime) -> Table:
    table = Table(title=f"Bucket sync lag, measured {now:%Y-%m-%d %H:%M:%S} UTC")
    for column in ("tenant", "bucket", "destination", "target", "lag", "state", "detail"):
        table.add_column(column)
    for row in report.buckets:
        style = STATE_STYLE.get(row.lag_state, "")
        detail = row.detail + (f"; STUCK, repair: {row.repair}" if row.stuck_shards else "")
        table.add_row(row.tenant, row.bucket, f"{row.destination} ({row.site or '-'})",
                      _seconds(row.lag_target_seconds), _seconds(row.lag_seconds),
                      f"[{style}]{row.lag_state}[/]", detail)
    return table
