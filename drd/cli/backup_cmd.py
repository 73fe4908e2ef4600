"""`drd backup run` and `drd backup list`: a tenant's backups now, with live progress,
and the snapshots in its repository; `drd restore`: a backed-up image into a new one."""

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import click
from rich.console import Console
from rich.progress import (
    DownloadColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TransferSpeedColumn,
)
from rich.table import Table

from drd.api.client import ApiTarget
from drd.backup.views import (
    BackupRun,
    BackupsStarted,
    RestoreDone,
    SnapshotList,
    TenantBackups,
)
from drd.cli import exit_codes
from drd.cli.api_client import get_json, post_json, resolve_target
from drd.cli.failures import CliFailure
from drd.cli.site_cmds import api_options

POLL_SECONDS = 0.5
RESTORE_TIMEOUT = 6 * 3600.0


@click.group()
def backup() -> None:
    """Tenant backups with restic: run one now, list the snapshots."""


@backup.command("run")
@click.argument("tenant")
@click.argument("source", required=False)
@click.option("--no-wait", is_flag=True, help="Queue the backups and return.")
@api_options
def run(*, tenant: str, source: str | None, no_wait: bool, url: str | None,
        config: Path | None, token_file: Path | None, as_json: bool) -> None:
    """Back up TENANT's images now, those of SOURCE or all, showing bytes read and
    throughput per image until every one has finished. Exit 1 if any failed."""
    target = resolve_target(url, config, token_file)
    before = _last_run_ids(_backups(target, tenant))
    started = BackupsStarted.model_validate(
        post_json(target, f"/v1/tenants/{tenant}/backups", {"source": source}))
    if no_wait:
        click.echo(started.model_dump_json(indent=2) if as_json else
                   "\n".join(f"queued: {job}" for job in started.jobs))
        return
    finished = _follow(target, tenant, started.sources, before, quiet=as_json)
    if as_json:
        click.echo("[" + ",".join(run.model_dump_json() for run in finished) + "]")
    failed = [run for run in finished if run.state != "succeeded"]
    for run in finished:
        click.echo(f"{run.source}: {run.state}"
                   + (f", {run.bytes_added or 0} bytes added, snapshot {run.snapshot_id}"
                      if run.state == "succeeded" else f": {run.reason}"),
                   err=run.state != "succeeded")
    if failed:
        raise CliFailure(f"{len(failed)} of {len(finished)} backups failed",
                         exit_codes.FAILURE)


def _backups(target: ApiTarget, tenant: str) -> TenantBackups:
    return TenantBackups.model_validate(get_json(target, f"/v1/tenants/{tenant}/backups"))


def _last_run_ids(view: TenantBackups) -> dict[str | None, int]:
    """Each source's newest run that had ended: a run still going is the one to follow,
    since asking for a backup of a running job does not start another."""
    last: dict[str | None, int] = {}
    for run in view.recent:
        if run.state != "running":
            last[run.source] = max(last.get(run.source, 0), run.id)
    return last


def _follow(target: ApiTarget, tenant: str, sources: list[str],
            before: dict[str | None, int], *, quiet: bool) -> list[BackupRun]:
    """Poll until each source has a run newer than `before` that has ended."""
    done: dict[str, BackupRun] = {}
    read: dict[str, int] = {}  # the newest bytes_done seen of each
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), DownloadColumn(),
                  TransferSpeedColumn(), TimeElapsedColumn(), disable=quiet,
                  console=Console(stderr=True)) as progress:
        tasks: dict[str, TaskID] = {source: progress.add_task(source, total=None)
                                    for source in sources}
        while len(done) < len(sources):
            view = _backups(target, tenant)
            for running in view.running:
                if running.source in tasks:
                    read[running.source] = running.bytes_done
                    progress.update(tasks[running.source], completed=running.bytes_done)
            for ended in view.recent:
                if (ended.source in tasks and ended.source not in done
                        and ended.id > before.get(ended.source, 0)
                        and ended.state != "running"):
                    done[ended.source] = ended
                    seen = read.get(ended.source)
                    progress.update(tasks[ended.source], total=seen, completed=seen or 0,
                                    description=f"{ended.source} {ended.state}")
            time.sleep(POLL_SECONDS)
    return [done[source] for source in sources]


@backup.command("list")
@click.argument("tenant")
@api_options
def list_snapshots(tenant: str, url: str | None, config: Path | None,
                   token_file: Path | None, as_json: bool) -> None:
    """The snapshots in TENANT's repository, with size and age."""
    target = resolve_target(url, config, token_file)
    listed = SnapshotList.model_validate(get_json(target, f"/v1/tenants/{tenant}/snapshots"))
    if as_json:
        click.echo(listed.model_dump_json(indent=2))
        return
    now = datetime.now(UTC)
    table = Table(title=f"{tenant}: snapshots in {listed.repository}")
    for column in ("snapshot", "taken (UTC)", "age", "image", "size", "added"):
        table.add_column(column)
    for snapshot in listed.snapshots:
        table.add_row(snapshot.id[:8], f"{snapshot.time:%Y-%m-%d %H:%M:%S}",
                      _age(now - snapshot.time), ", ".join(snapshot.paths),
                      _size(snapshot.size), _size(snapshot.added))
    Console().print(table)


@click.command()
@click.argument("tenant")
@click.argument("source")
@click.option("--snapshot", default="latest", show_default=True,
              help="A restic snapshot id, or latest.")
@click.option("--to", "to", required=True, help="The new image: POOL/IMAGE or "
                                                "POOL/NAMESPACE/IMAGE.")
@click.option("--site", default=None, help="Restore on this site (its daemon, as the site "
                                           "config names it); default: this site.")
@click.option("--force", is_flag=True, help="Replace the target image if it exists.")
@api_options
def restore(*, tenant: str, source: str, snapshot: str, to: str, site: str | None,
            force: bool, url: str | None, config: Path | None, token_file: Path | None,
            as_json: bool) -> None:
    """Restore TENANT's backup of the image SOURCE (POOL/[NAMESPACE/]IMAGE) into a new
    image; an existing one is replaced only with --force."""
    target = resolve_target(url, config, token_file, site)
    done = RestoreDone.model_validate(post_json(
        target, f"/v1/tenants/{tenant}/restores",
        {"source": source, "snapshot": snapshot, "to": to, "force": force},
        timeout=RESTORE_TIMEOUT))
    if as_json:
        click.echo(done.model_dump_json(indent=2))
    else:
        click.echo(f"restored {source} snapshot {done.snapshot[:8]} into {done.target}: "
                   f"{_size(done.bytes)} in {done.seconds:.1f} s, sha256 {done.sha256}")


def _size(value: int | None) -> str:
    if value is None:
        return "-"
    if value < 1024:
        return f"{value} B"
    scaled = float(value)
    for unit in ("KiB", "MiB", "GiB", "TiB"):
        scaled /= 1024
        if scaled < 1024 or unit == "TiB":
            break
    return f"{scaled:.1f} {unit}"


def _age(delta: timedelta) -> str:
    seconds = delta.total_seconds()
    if seconds < 3600:
        return f"{seconds / 60:.0f} min"
    if seconds < 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"
