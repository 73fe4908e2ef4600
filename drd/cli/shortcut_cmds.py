"""The built-in runbooks as commands of their own: `drd switchover`, `drd failover`,
`drd failback`, and `drd drill run|list|show`. Each is `drd runbook run NAME` with the
sites and scope given, so every one is journalled, resumable and audited alike."""

from pathlib import Path

import click

from drd.cli.api_client import resolve_target
from drd.cli.runbook_cmd import (
    fetch_run,
    list_runs,
    print_run,
    run_options,
    run_request,
    start_and_follow,
)
from drd.cli.site_cmds import api_options
from drd.runbooks.views import RunView


def _shortcut(runbook: str, summary: str) -> click.Command:
    @click.command(runbook, help=summary)
    @run_options
    @api_options
    def command(*, tenants: tuple[str, ...], source: str | None, target: str | None,
                confirm_winner: str | None, no_wait: bool, url: str | None,
                config: Path | None, token_file: Path | None, as_json: bool) -> None:
        start_and_follow(runbook, run_request(tenants, source, target, confirm_winner),
                         no_wait=no_wait, api=resolve_target(url, config, token_file),
                         as_json=as_json)

    return command


switchover = _shortcut(
    "switchover", "Planned switchover (RPO 0) of the primary from --from to --to, for "
                  "--tenant or all; done only once replication back is proven by data.")
failover = _shortcut(
    "failover", "Unplanned failover from a lost site (--from) to --to: guarded forced "
                "promote, and the data-loss window reported.")
failback = _shortcut(
    "failback", "Reprotect and return: demote the old site's stale copies, resync them, "
                "then switch back over.")


@click.group()
def drill() -> None:
    """Non-disruptive drills: clones of the replicated images, verified and removed."""


@drill.command("run")
@run_options
@api_options
def drill_run(*, tenants: tuple[str, ...], source: str | None, target: str | None,
              confirm_winner: str | None, no_wait: bool, url: str | None,
              config: Path | None, token_file: Path | None, as_json: bool) -> None:
    """Drill at --to (default b) from --from (default a), for --tenant or all."""
    start_and_follow("drill", run_request(tenants, source, target), no_wait=no_wait,
                     api=resolve_target(url, config, token_file), as_json=as_json)


@drill.command("list")
@api_options
def drill_list(url: str | None, config: Path | None, token_file: Path | None,
               as_json: bool) -> None:
    """Past and current drills with their measured RTO."""
    list_runs(resolve_target(url, config, token_file), "drill", as_json)


@drill.command("show")
@click.argument("run_id", type=int)
@api_options
def drill_show(run_id: int, url: str | None, config: Path | None, token_file: Path | None,
               as_json: bool) -> None:
    """One drill: every step with its output and time, and the report."""
    view: RunView = fetch_run(resolve_target(url, config, token_file), run_id)
    click.echo(view.model_dump_json(indent=2)) if as_json else print_run(view)
