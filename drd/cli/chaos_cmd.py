"""`drd chaos list|run`: the fault experiments of `chaos/`, run against a lab with daemons.

`run` boots a lab of its own on --block (70 unless told) in a directory of its own and
removes it after, or uses a running lab given with --lab. A run that ends with b primary is
failed back, which both proves the state healable and readies the lab for the next one; a
run that leaves the lab unhealed makes the command rebuild its own lab before the next.
"""

import sys
from pathlib import Path

import click
from rich.console import Console

from drd.chaos.experiment import Experiment, builtin_experiments_dir, load_experiments
from drd.cli import exit_codes
from drd.cli.failures import CliFailure
from drd.config.yaml_document import ConfigError

console = Console(stderr=True, soft_wrap=True, highlight=False)
DEFAULT_BLOCK = 70


def _experiments(directory: Path) -> dict[str, Experiment]:
    try:
        return load_experiments(directory)
    except ConfigError as error:
        raise CliFailure(str(error), exit_codes.USAGE) from error


@click.group()
def chaos() -> None:
    """Inject faults into a lab with a write load, and check the invariants."""


@chaos.command("list")
@click.option("--dir", "directory", type=click.Path(path_type=Path, file_okay=False),
              default=None, help="Where the experiments are [default: the repository's chaos/].")
def list_experiments(directory: Path | None) -> None:
    """Every experiment, its fault and what it expects."""
    for experiment in _experiments(directory or builtin_experiments_dir()).values():
        marks = ", ".join(filter(None, ["smoke" if experiment.smoke else "",
                                        f"x{experiment.repeat}"]))
        click.echo(f"{experiment.name:40} {experiment.fault.kind:22} {marks}")
        click.echo(f"    {experiment.description}")


@chaos.command("run")
@click.argument("names", nargs=-1)
@click.option("--all", "run_all", is_flag=True, help="Every experiment, each its repeat times.")
@click.option("--smoke", is_flag=True, help="The short set CI runs, once each.")
@click.option("--repeat", type=click.IntRange(1, 100), default=None,
              help="Runs of each named experiment [default: 1; with --all, its own repeat].")
@click.option("--lab", "lab_dir", type=click.Path(path_type=Path, file_okay=False),
              default=None, help="Use this running lab instead of booting one.")
@click.option("--block", type=click.IntRange(0, 255), default=DEFAULT_BLOCK, show_default=True,
              help="Address block of the lab this command boots.")
@click.option("--out", type=click.Path(path_type=Path, file_okay=False),
              default=Path("chaos/results"), show_default=True,
              help="Where each run's JSON result goes.")
@click.option("--no-failback", is_flag=True, help="Leave the lab as a takeover left it.")
@click.option("--keep", is_flag=True, help="Keep the lab this command booted.")
@click.option("--dir", "directory", type=click.Path(path_type=Path, file_okay=False),
              default=None, help="Where the experiments are [default: the repository's chaos/].")
def run(*, names: tuple[str, ...], run_all: bool, smoke: bool, repeat: int | None,
        lab_dir: Path | None, block: int, out: Path, no_failback: bool, keep: bool,
        directory: Path | None) -> None:
    """Run experiments by NAME (or --all, or --smoke); exit 1 when any invariant broke."""
    known = _experiments(directory or builtin_experiments_dir())
    plan = _plan(known, names, run_all, smoke, repeat)
    from drd.chaos.session import ChaosSession  # loads librados: only when running
    session = ChaosSession(lab_dir, block, out, failback=not no_failback,
                           note=console.print)
    try:
        failed = session.run_all(plan)
    finally:
        if lab_dir is None and not keep:
            session.remove_own_lab()
    if failed:
        console.print(f"[bold red]{failed} of {len(plan)} runs broke an invariant[/bold red]")
        sys.exit(exit_codes.FAILURE)
    console.print(f"[green]all {len(plan)} runs held every invariant[/green]")


def _plan(known: dict[str, Experiment], names: tuple[str, ...], run_all: bool, smoke: bool,
          repeat: int | None) -> list[Experiment]:
    if sum([bool(names), run_all, smoke]) != 1:
        raise CliFailure("name experiments, or give --all or --smoke (one of them)",
                         exit_codes.USAGE)
    unknown = [name for name in names if name not in known]
    if unknown:
        raise CliFailure(f"no experiment {', '.join(unknown)}; known: {', '.join(known)}",
                         exit_codes.USAGE)
    if smoke:
        chosen = [(e, 1) for e in known.values() if e.smoke]
    elif run_all:
        chosen = [(e, repeat or e.repeat) for e in known.values()]
    else:
        chosen = [(known[name], repeat or 1) for name in names]
    return [experiment for experiment, times in chosen for _ in range(times)]

