"""`drd runbook list|show|plan|run|resume|abort`, `drd drill run|list|show`, and the
shortcuts `drd switchover`, `drd failover` and `drd failback`.

A run is started on the daemon the CLI talks to, which journals it; the CLI then follows
it (group, step, elapsed time, result) until it ends or pauses. Ctrl-C stops only the
following: the run goes on in the daemon, and `drd runbook show RUN` finds it again.
"""

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.live import Live
from rich.table import Table

from drd.api.client import ApiTarget
from drd.cli import exit_codes
from drd.cli.api_client import get_json, post_json, resolve_target
from drd.cli.failures import CliFailure
from drd.cli.site_cmds import api_options
from drd.runbooks.views import PlanOut, RunbookList, RunbookText, RunView, RunViewList

POLL_SECONDS = 0.5
ENDED = {"succeeded", "failed", "cancelled", "paused", "interrupted"}
MARK = {"succeeded": "[green]ok[/]", "failed": "[red]FAILED[/]", "running": "[cyan]...[/]",
        "pending": "", "cancelled": "[yellow]cancelled[/]", "paused": "[yellow]paused[/]"}


def run_options(function: Callable[..., Any]) -> Callable[..., Any]:
    for option in reversed([
        click.option("--tenant", "tenants", multiple=True,
                     help="Act on this tenant only (repeat for several); default: the "
                          "runbook's scope."),
        click.option("--from", "source", default=None, help="The source site."),
        click.option("--to", "target", default=None, help="The target site."),
        click.option("--confirm-winner", default=None,
                     help="After an unplanned failover: the site confirmed as split-brain "
                          "winner, so that the losing side may be resynced."),
        click.option("--no-wait", is_flag=True, help="Start the run and return its id."),
    ]):
        function = option(function)
    return function


def run_request(tenants: tuple[str, ...], source: str | None, target: str | None,
             confirm_winner: str | None = None) -> dict[str, Any]:
    return {"tenants": list(tenants) or None, "source": source, "target": target,
            "confirm_winner": confirm_winner}


@click.group()
def runbook() -> None:
    """Runbooks: list, show, plan (dry run), run, resume, abort."""


@runbook.command("list")
@api_options
def list_runbooks(url: str | None, config: Path | None, token_file: Path | None,
                  as_json: bool) -> None:
    """The runbooks the daemon can run, and any files it refused."""
    api = resolve_target(url, config, token_file)
    listed = RunbookList.model_validate(get_json(api, "/v1/runbooks"))
    if as_json:
        click.echo(listed.model_dump_json(indent=2))
        return
    table = Table(title="runbooks")
    for column in ("name", "kind", "from", "to", "scope", "steps", "file"):
        table.add_column(column)
    for book in listed.runbooks:
        table.add_row(book.name, book.kind, book.source, book.target, book.scope,
                      str(book.steps), book.path + (" (built-in)" if book.builtin else ""))
    Console().print(table)
    for problem in listed.problems:
        click.echo(f"refused: {problem}", err=True)


@runbook.command("show")
@click.argument("name_or_run")
@api_options
def show(name_or_run: str, url: str | None, config: Path | None, token_file: Path | None,
         as_json: bool) -> None:
    """A runbook's YAML (by NAME), or a run with every step (by RUN id)."""
    api = resolve_target(url, config, token_file)
    if name_or_run.isdigit():
        view = fetch_run(api, int(name_or_run))
        click.echo(view.model_dump_json(indent=2)) if as_json else print_run(view)
        return
    text = RunbookText.model_validate(get_json(api, f"/v1/runbooks/{name_or_run}"))
    click.echo(text.model_dump_json(indent=2) if as_json else text.text)


@runbook.command("plan")
@click.argument("name")
@run_options
@api_options
def plan(*, name: str, tenants: tuple[str, ...], source: str | None, target: str | None,
         confirm_winner: str | None, no_wait: bool, url: str | None, config: Path | None,
         token_file: Path | None, as_json: bool) -> None:
    """The dry run: each step of NAME with what it would do now. Changes nothing."""
    api = resolve_target(url, config, token_file)
    planned = PlanOut.model_validate(post_json(
        api, f"/v1/runbooks/{name}/plan", run_request(tenants, source, target)))
    if as_json:
        click.echo(planned.model_dump_json(indent=2))
        return
    scope = ", ".join(planned.tenants) if planned.tenants else "all tenants"
    click.echo(f"{name}: {planned.source} -> {planned.target}, {scope}")
    group = None
    for step in planned.steps:
        if step.group != group:
            group = step.group
            click.echo(f"\n[{group}]")
        click.echo(f"  {step.step} ({step.type})")
        for line in step.lines:
            click.echo(f"      {line}")


@runbook.command("run")
@click.argument("name")
@run_options
@api_options
def run(*, name: str, tenants: tuple[str, ...], source: str | None, target: str | None,
        confirm_winner: str | None, no_wait: bool, url: str | None, config: Path | None,
        token_file: Path | None, as_json: bool) -> None:
    """Run NAME and follow it to its end. Exit 1 if it failed, 3 if it paused."""
    start_and_follow(name, run_request(tenants, source, target, confirm_winner),
                     no_wait=no_wait, api=resolve_target(url, config, token_file),
                     as_json=as_json)


@runbook.command("resume")
@click.argument("run_id", type=int)
@click.option("--approve", is_flag=True, help="Approve the gate the run waits at.")
@click.option("--confirm-winner", default=None, help="Confirm the split-brain winner.")
@click.option("--no-wait", is_flag=True, help="Resume and return.")
@api_options
def resume(*, run_id: int, approve: bool, confirm_winner: str | None, no_wait: bool,
           url: str | None, config: Path | None, token_file: Path | None,
           as_json: bool) -> None:
    """Continue a paused or interrupted run from where it stopped."""
    api = resolve_target(url, config, token_file)
    view = RunView.model_validate(post_json(
        api, f"/v1/runs/{run_id}/resume",
        {"approve": approve, "confirm_winner": confirm_winner}))
    _finish(api, view, no_wait=no_wait, as_json=as_json)


@runbook.command("abort")
@click.argument("run_id", type=int)
@api_options
def abort(run_id: int, url: str | None, config: Path | None, token_file: Path | None,
          as_json: bool) -> None:
    """Stop a run for good: its step in flight is cancelled."""
    api = resolve_target(url, config, token_file)
    view = RunView.model_validate(post_json(api, f"/v1/runs/{run_id}/abort", {}))
    click.echo(view.model_dump_json(indent=2)) if as_json else print_run(view)


def start_and_follow(name: str, request: dict[str, Any], *, no_wait: bool, api: ApiTarget,
                     as_json: bool) -> None:
    view = RunView.model_validate(post_json(api, f"/v1/runbooks/{name}/runs", request))
    _finish(api, view, no_wait=no_wait, as_json=as_json)


def _finish(api: ApiTarget, view: RunView, *, no_wait: bool, as_json: bool) -> None:
    if no_wait:
        click.echo(view.model_dump_json(indent=2) if as_json else f"run {view.id} started")
        return
    view = _follow(api, view.id, quiet=as_json)
    if as_json:
        click.echo(view.model_dump_json(indent=2))
    else:
        print_run(view)
    if view.state == "paused":
        raise CliFailure(f"run {view.id} is paused; see the step above, then `drd runbook "
                         f"resume {view.id}`", exit_codes.UNHEALTHY)
    if view.state != "succeeded":
        raise CliFailure(f"run {view.id} {view.state}", exit_codes.FAILURE)


def fetch_run(api: ApiTarget, run_id: int) -> RunView:
    return RunView.model_validate(get_json(api, f"/v1/runs/{run_id}"))


def _follow(api: ApiTarget, run_id: int, *, quiet: bool) -> RunView:
    view = fetch_run(api, run_id)
    if quiet:
        while view.state not in ENDED:
            time.sleep(POLL_SECONDS)
            view = fetch_run(api, run_id)
        return view
    with Live(_progress_table(view), console=Console(stderr=True),
              refresh_per_second=4, transient=True) as live:
        while view.state not in ENDED:
            time.sleep(POLL_SECONDS)
            view = fetch_run(api, run_id)
            live.update(_progress_table(view))
    return view


def _progress_table(view: RunView) -> Table:
    scope = ", ".join(view.tenants) if view.tenants else "all tenants"
    table = Table(title=f"run {view.id}: {view.runbook} {view.source} -> {view.target} "
                        f"({scope}) {view.state}")
    for column in ("group", "step", "type", "time", "result"):
        table.add_column(column)
    for step in view.steps:
        seconds = f"{step.seconds:.1f} s" if step.seconds is not None else ""
        retried = f" (attempt {step.attempts})" if step.attempts > 1 else ""
        table.add_row(step.group, step.name, step.type, seconds,
                      MARK.get(step.state, step.state) + retried)
    return table


def print_run(view: RunView) -> None:
    console = Console()
    console.print(_progress_table(view))
    for step in view.steps:
        if step.output or step.error:
            console.print(f"[bold]{step.name}[/]")
            for line in step.output:
                console.print(f"  {line}", markup=False, highlight=False)
            if step.error:
                console.print(f"  [red]{step.error}[/]", highlight=False)
    if view.report:
        console.print("report: " + ", ".join(f"{k} {v}" for k, v in view.report.items()
                                             if k != "step_seconds"), highlight=False)


def list_runs(api: ApiTarget, kind: str | None, as_json: bool) -> None:
    query = f"?kind={kind}" if kind else ""
    listed = RunViewList.model_validate(get_json(api, f"/v1/runs{query}"))
    if as_json:
        click.echo(listed.model_dump_json(indent=2))
        return
    table = Table(title="runs" if kind is None else f"{kind} runs")
    for column in ("run", "runbook", "from", "to", "tenants", "state", "started (UTC)",
                   "total", "rto"):
        table.add_column(column)
    for view in listed.runs:
        total, rto = view.report.get("total_seconds"), view.report.get("rto_seconds")
        table.add_row(str(view.id), view.runbook, view.source, view.target,
                      ", ".join(view.tenants or ["all"]), view.state,
                      f"{view.started_at:%Y-%m-%d %H:%M:%S}",
                      f"{total:.1f} s" if total is not None else "",
                      f"{rto:.1f} s" if rto is not None else "")
    Console().print(table)
