"""Benchmark the lab's lifecycle: `drd lab up` and `drd lab down` wall time, idle memory.

Each run boots the three-site lab through the CLI, exactly as a user or the test suite
does, lets it idle, measures the resident memory of every process in lab.json, stops it
and checks that none of those processes survived. It prints figures and their ratio to
the targets; it never fails on a timing, only when the lab itself misbehaves.

    .venv/bin/python bench/lab_lifecycle.py [--runs N] [--block 60] [--dir-root /tmp/bench60]
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from drd.lab.description import LabDescription, ProcessRecord
from drd.lab.lab_status import lab_status
from drd.lab.lab_store import load_description
from drd.lab.processes import is_running, resident_bytes

DRD = str(Path(sys.executable).with_name("drd"))
UP_TARGET_S = 30.0
DOWN_TARGET_S = 15.0
UP_TIMEOUT_S = 300.0
DOWN_TIMEOUT_S = 120.0
MIB = 1024**2
CEPH_DAEMONS = frozenset({"ceph-mon", "ceph-osd", "ceph-mgr", "rbd-mirror", "radosgw"})


class BenchError(Exception):
    """The lab did not do its job, so there is nothing meaningful to measure."""


@dataclass
class RunFigures:
    """What one up/idle/down cycle measured."""

    up_s: float
    down_s: float
    rss_by_site: dict[str, int]
    rss_by_role: dict[str, int]
    survivors: list[str] = field(default_factory=list)

    @property
    def rss_total(self) -> int:
        return sum(self.rss_by_site.values())


def run_drd(args: Sequence[str], timeout: float) -> tuple[float, subprocess.CompletedProcess[str]]:
    """Run the drd CLI; its wall time and result."""
    started = time.monotonic()
    result = subprocess.run([DRD, *args], capture_output=True, text=True, timeout=timeout,
                            check=False)
    return time.monotonic() - started, result


def lab_down(lab_dir: Path) -> float:
    """`drd lab down` by PID; its wall time. A missing lab is not an error."""
    elapsed, result = run_drd(["lab", "down", "--dir", str(lab_dir)], DOWN_TIMEOUT_S)
    if result.returncode != 0:
        raise BenchError(f"lab down on {lab_dir} exited {result.returncode}:\n"
                         f"{result.stderr.strip()}")
    return elapsed


def check_ready(description: LabDescription) -> None:
    """Confirm what `lab up` promised: every site HEALTH_OK and mirroring peers in place."""
    status = lab_status(description)
    problems = [f"site {s.name}: {s.health} {s.health_detail}".strip()
                for s in status.sites if s.health != "HEALTH_OK"]
    problems += [f"site {s.name}: {d.entity} is not running"
                 for s in status.sites for d in s.daemons if not d.running]
    problems += [f"site {s.name}: no mirroring peer" for s in status.sites if not s.mirror_peers]
    if problems:
        raise BenchError("the lab was not ready after `lab up`: " + "; ".join(problems))


def measure_memory(description: LabDescription) -> tuple[dict[str, int], dict[str, int]]:
    """RSS of the lab's live processes, per site and per daemon role."""
    by_site = {name: resident_bytes(site.processes)
               for name, site in sorted(description.sites.items())}
    by_role: dict[str, int] = {}
    for _, process in description.all_processes():
        by_role[process.role.value] = by_role.get(process.role.value, 0) + \
            resident_bytes([process])
    return by_site, by_role


def one_run(lab_dir: Path, block: int, idle_s: float) -> RunFigures:
    """Up, check, idle, measure, down; the lab is always brought down, even on failure."""
    if lab_dir.exists():
        lab_down(lab_dir)  # a lab left behind by an interrupted run of this benchmark
    records: list[ProcessRecord] = []
    stopped = False
    try:
        up_s, result = run_drd(["lab", "up", "--block", str(block), "--dir", str(lab_dir)],
                               UP_TIMEOUT_S)
        if result.returncode != 0:
            raise BenchError(f"lab up exited {result.returncode}:\n{result.stderr.strip()}")
        description = load_description(lab_dir)
        if description is None:
            raise BenchError(f"lab up succeeded but {lab_dir} holds no lab.json")
        records = [process for _, process in description.all_processes()]
        up_done = time.monotonic()
        check_ready(description)
        time.sleep(max(0.0, idle_s - (time.monotonic() - up_done)))
        rss_by_site, rss_by_role = measure_memory(description)
        down_s = lab_down(lab_dir)
        stopped = True
    finally:
        if not stopped:
            lab_down(lab_dir)
    survivors = [f"{p.entity} (pid {p.pid})" for p in records if is_running(p)]
    return RunFigures(up_s=up_s, down_s=down_s, rss_by_site=rss_by_site,
                      rss_by_role=rss_by_role, survivors=survivors)


def other_ceph_daemons() -> int:
    """Ceph daemons on this machine that this benchmark did not start; they share the CPU."""
    count = 0
    for process in psutil.process_iter(["name"]):
        if process.info["name"] in CEPH_DAEMONS:
            count += 1
    return count


def spread(values: Sequence[float]) -> tuple[float, float, float]:
    return min(values), statistics.median(values), max(values)


def figure_row(label: str, values: Sequence[float], target: float | None = None) -> str:
    low, median, high = spread(values)
    row = f"{label:<26}{low:>9.1f}{median:>9.1f}{high:>9.1f}"
    if target is not None:
        row += f"{target:>9.1f}{median / target:>11.2f}{high / target:>9.2f}"
    return row


def print_run(number: int, figures: RunFigures) -> None:
    sites = "  ".join(f"{name} {rss / MIB:.0f}" for name, rss in figures.rss_by_site.items())
    print(f"run {number}: up {figures.up_s:.1f} s, down {figures.down_s:.1f} s, "
          f"RSS {figures.rss_total / MIB:.0f} MiB ({sites} MiB), "
          f"survivors {len(figures.survivors)}", flush=True)


def print_summary(runs: Sequence[RunFigures], idle_s: float) -> None:
    header = f"{'figure':<26}{'min':>9}{'median':>9}{'max':>9}"
    print(f"\n{len(runs)} runs; RSS sampled {idle_s:.0f} s after `lab up` returned\n")
    print(header + f"{'target':>9}{'med/target':>11}{'max/tgt':>9}")
    print("-" * (len(header) + 29))
    print(figure_row("lab up (s)", [r.up_s for r in runs], UP_TARGET_S))
    print(figure_row("lab down (s)", [r.down_s for r in runs], DOWN_TARGET_S))
    for site in runs[0].rss_by_site:
        print(figure_row(f"RSS site {site} (MiB)", [r.rss_by_site[site] / MIB for r in runs]))
    for role in runs[0].rss_by_role:
        print(figure_row(f"RSS all {role} (MiB)", [r.rss_by_role[role] / MIB for r in runs]))
    print(figure_row("RSS total (MiB)", [r.rss_total / MIB for r in runs]))
    survivors = sorted({s for r in runs for s in r.survivors})
    print(f"\nlab processes surviving `lab down`: {len(survivors)}"
          + (f" ({', '.join(survivors)})" if survivors else ""))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=3, help="up/down cycles (default 3)")
    parser.add_argument("--block", type=int, default=60,
                        help="address block: sites on 127.B.{1,2,3}.1 (default 60)")
    parser.add_argument("--dir-root", type=Path, default=None,
                        help="each run's lab lives in DIR_ROOT/lifecycle-N "
                             "(default: /tmp/bench<BLOCK>, so /tmp/bench60)")
    parser.add_argument("--idle", type=float, default=10.0,
                        help="seconds to let the lab idle before sampling RSS (default 10)")
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    # Block and directory go together, so two benchmarks on two blocks never share files.
    dir_root: Path = args.dir_root or Path(tempfile.gettempdir()) / f"bench{args.block}"

    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"lab lifecycle benchmark: block {args.block}, {os.cpu_count()} CPUs, "
          f"load average {load}, {other_ceph_daemons()} other Ceph daemons running")
    runs: list[RunFigures] = []
    for number in range(1, args.runs + 1):
        lab_dir = (dir_root / f"lifecycle-{number}").resolve()
        try:
            figures = one_run(lab_dir, args.block, args.idle)
        except (BenchError, subprocess.TimeoutExpired) as error:
            print(f"run {number} failed: {error}", file=sys.stderr)
            return 1
        print_run(number, figures)
        runs.append(figures)
    print_summary(runs, args.idle)
    return 1 if any(r.survivors for r in runs) else 0


if __name__ == "__main__":
    sys.exit(main())
