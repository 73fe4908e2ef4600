"""`drd lab up|down|status`: the local multi-site Ceph lab."""

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click
from rich.console import Console
from rich.table import Table

from drd.lab.errors import LabError
from drd.lab.topology import DEFAULT_BLOCK, TopologyError, default_lab_dir, parse_sites

if TYPE_CHECKING:
    from drd.lab.lab_status import LabStatus

err_console = Console(stderr=True, soft_wrap=True)
EXIT_LAB_ERROR = 1
EXIT_UNHEALTHY = 3


def _report(message: str) -> None:
    err_console.print(f"[dim]lab:[/dim] {message}", highlight=False)


def resolve_dir(lab_dir: Path | None, block: int) -> Path:
    """--dir, else $DRD_LAB_DIR, else the block's default directory."""
    if lab_dir is not None:
        return lab_dir.resolve()
    from_env = os.environ.get("DRD_LAB_DIR")
    return Path(from_env).resolve() if from_env else default_lab_dir(block)


def fail(error: LabError) -> None:
    err_console.print(f"[bold red]error:[/bold red] {error.message}", highlight=False)
    if error.log_tail:
        err_console.print("[dim]--- last lines of the log ---[/dim]")
        err_console.print(error.log_tail, markup=False, highlight=False)
    if error.hint:
        err_console.print(f"[yellow]hint:[/yellow] {error.hint}", highlight=False)
    sys.exit(EXIT_LAB_ERROR)


dir_option = click.option("--dir", "lab_dir", type=click.Path(path_type=Path), default=None,
                          help="Lab directory [default: $DRD_LAB_DIR or /var/lib/drd-lab].")
block_option = click.option("--block", type=int, default=None, envvar="DRD_LAB_BLOCK",
                            help="Address block B: sites listen on 127.B.x.1 [default: 0].")


@click.group()
def lab() -> None:
    """A real three-site Ceph deployment on this machine, for demos and tests."""


@lab.command()
@click.option("--sites", default="a,b,c", show_default=True,
              help="Sites to boot: a (production), b (same-city), c (remote).")
@dir_option
@block_option
@click.option("--memstore-gib", type=click.IntRange(1, 16), default=2, show_default=True,
              help="RAM cap of each site's memstore OSD.")
def up(sites: str, lab_dir: Path | None, block: int | None, memstore_gib: int) -> None:
    """Boot the lab, or confirm it is already up."""
    from drd.lab.lab_up import lab_up  # imports rados; keep `drd --help` working without it

    chosen_block = DEFAULT_BLOCK if block is None else block
    try:
        names = parse_sites(sites)
        lab_up(resolve_dir(lab_dir, chosen_block), names, chosen_block, _report,
               memstore_bytes=memstore_gib * 1024**3)
    except TopologyError as error:
        raise click.BadParameter(str(error)) from error
    except LabError as error:
        fail(error)


@lab.command()
@dir_option
@block_option
@click.option("--keep", is_flag=True, help="Keep the lab directory (logs, mon stores).")
def down(lab_dir: Path | None, block: int | None, keep: bool) -> None:
    """Stop every lab process by PID, and remove the lab directory."""
    from drd.lab.lab_down import lab_down

    try:
        lab_down(resolve_dir(lab_dir, DEFAULT_BLOCK if block is None else block), keep, _report)
    except LabError as error:
        fail(error)


@lab.command()
@dir_option
@block_option
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
def status(lab_dir: Path | None, block: int | None, as_json: bool) -> None:
    """Health, daemons and mirroring peers of every site. Exit 3 if anything is down."""
    from drd.lab.lab_status import lab_status
    from drd.lab.lab_store import load_description

    directory = resolve_dir(lab_dir, DEFAULT_BLOCK if block is None else block)
    try:
        description = load_description(directory)
    except LabError as error:
        fail(error)
        return
    if description is None:
        fail(LabError(f"no lab at {directory}", hint="start one with `drd lab up`"))
        return
    result = lab_status(description)
    if as_json:
        click.echo(result.model_dump_json(indent=2))
    else:
        Console().print(_status_table(result))
    if not result.healthy:
        sys.exit(EXIT_UNHEALTHY)


def _status_table(result: "LabStatus") -> Table:
    table = Table(title=f"drd lab at {result.dir} (block {result.block}, {result.phase})")
    for column in ("site", "kind", "address", "health", "daemons", "mirror peers",
                   "object gateway and sync"):
        table.add_column(column)
    for site in result.sites:
        health_style = "green" if site.health == "HEALTH_OK" else "red"
        daemons = " ".join(
            f"[green]{d.role}[/]" if d.running else f"[bold red]{d.role} DOWN[/]"
            for d in site.daemons
        )
        peers = "\n".join(f"{p.site} {p.direction}" for p in site.mirror_peers) or "-"
        health = f"[{health_style}]{site.health}[/]"
        if site.health != "HEALTH_OK" and site.health_detail:
            health += f"\n{site.health_detail}"
        gateway = "\n".join([site.rgw_url or "-", *site.object_sync])
        table.add_row(site.name, site.kind, site.address, health, daemons, peers, gateway)
    return table
