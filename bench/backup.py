"""Benchmark tenant backups: drd's throughput against the pipeline run by hand, a re-backup
of an unchanged image, and many tenants backing up at once.

It boots a lab (or reuses one) and works on site a with drd's own code and real restic:
1. throughput: a 1 GiB image of random data backed up by drd's job of one image and by
   `rbd export | restic backup --stdin` run by hand, side by side, each first in every
   other round, each into a fresh repository, with the step in between (restic with
   drd's argv running `rbd export` itself) that shows where drd's extra time goes
   (bench/backup_throughput.py);
2. re-backup: after each of drd's backups, the unchanged image again into the same
   repository: the time and the bytes it added;
3. tenants: 20 tenants with a repository each and 5 sharing one, backed up through drd's
   backup service and scheduler, first under the daemon's limits and then all at once
   (bench/backup_tenants.py): failed runs (from the state store's history), total wall
   time, and per-run p50 and max.
It prints figures and their ratio to the targets. It exits 0 whatever the figures, and 1
when there was nothing to measure or the history and the repositories disagree.

    .venv/bin/python bench/backup.py [--part all|throughput|tenants] [--rounds 4]
        [--block 66] [--dir /tmp/bench66/lab] [--reuse-lab DIR]
"""

import argparse
import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import IO

import structlog
from backup_lab import (
    MIB,
    CpuMeter,
    Workspace,
    create_random_images,
    describe,
    load_average,
    remove_images,
    site_osd,
)
from backup_report import phase_rows, print_table, rebackup_rows, throughput_rows
from backup_tenants import PhaseResult, make_tenants, run_phase
from backup_throughput import ThroughputBench
from daemon import LabRun
from daemon_process import BenchError
from daemon_report import Row

from drd.backup.restic import ResticError, ResticUnavailable, probe_version
from drd.backup.service import LIMITS
from drd.ceph.cluster import CephError
from drd.daemon.logging_setup import configure_logging
from drd.domain.replication_plan import ImageRef
from drd.domain.repository_locks import AdmissionLimits
from drd.lab.description import LabDescription
from drd.state import StateStore

MEMSTORE_GIB = 4  # the 1 GiB image, or 25 x 64 MiB, with room to spare
PHASE_TIMEOUT_S = 1200.0


@dataclass
class Results:
    """Each part's table section, as it ends; the tenant phases for their problems."""

    sections: list[list[Row | str]] = field(default_factory=list)
    phases: list[PhaseResult] = field(default_factory=list)


def _stop_on_sigterm(signum: int, frame: FrameType | None) -> None:
    # As Ctrl-C: unwinds through every finally, so the lab comes down and restic stops.
    signal.default_int_handler(signum, frame)


def log_to(path: Path) -> IO[str]:
    """drd's JSON log lines (as the daemon writes them) into `path`, off the console."""
    configure_logging("info", "a")
    stream = path.open("a")
    structlog.configure(logger_factory=structlog.WriteLoggerFactory(stream))
    return stream


def throughput(args: argparse.Namespace, description: LabDescription, workspace: Workspace,
               prefix: str, results: "Results") -> None:
    conf = description.sites["a"].conf
    ref = ImageRef("rbd", "", f"{prefix}throughput")
    size = args.size_mib * MIB
    started = time.monotonic()
    create_random_images(conf, [ref], size)
    print(f"throughput: {ref} of {args.size_mib} MiB of random data written in "
          f"{time.monotonic() - started:.1f} s", flush=True)
    with StateStore.initialise(workspace.root / "state-throughput", "a") as store:
        bench = ThroughputBench(conf, ref, size, workspace=workspace, store=store,
                                meter=CpuMeter(site_osd(description)),
                                breakdown=args.breakdown)
        try:
            for number in range(1, args.rounds + 1):
                bench.round(number)
        finally:
            # Whatever the rounds measured is reported, even if a later one failed.
            results.sections += [throughput_rows(bench.run), rebackup_rows(bench.run)]
            remove_images(conf, f"{prefix}throughput")


def tenants(args: argparse.Namespace, description: LabDescription, workspace: Workspace,
            prefix: str, results: "Results") -> None:
    conf = description.sites["a"].conf
    size = args.tenant_mib * MIB
    planned = make_tenants(workspace, "limits", prefix, args.tenants, args.shared)
    started = time.monotonic()
    create_random_images(conf, [ImageRef("rbd", "", t.image) for t in planned], size)
    print(f"tenants: {len(planned)} images of {args.tenant_mib} MiB written in "
          f"{time.monotonic() - started:.1f} s", flush=True)
    runs = [("daemon limits", planned, LIMITS)]
    if args.all_at_once:
        everyone = len(planned)
        runs.append(("all at once", make_tenants(workspace, "all", prefix, args.tenants,
                                                 args.shared),
                     AdmissionLimits(max_jobs=everyone,
                                     max_shared_per_repository=max(1, args.shared))))
    for name, phase_tenants, limits in runs:
        print(f"tenants, {name}: load average {load_average()}", flush=True)
        phase = asyncio.run(run_phase(name.replace(" ", "-"), conf, phase_tenants,
                                      image_bytes=size, limits=limits, workspace=workspace,
                                      timeout_s=PHASE_TIMEOUT_S))
        results.phases.append(phase)
        results.sections.append(phase_rows(phase))
        seconds = sorted(phase.run_seconds)
        print(f"  {len(phase.records)} runs, {len(phase.failed)} failed, "
              f"{phase.wall_s:.1f} s in all, per run {seconds[0] if seconds else 0:.1f} to "
              f"{seconds[-1] if seconds else 0:.1f} s", flush=True)
        for failure in phase.failed:
            print(f"  FAILED {failure.tenant}: {describe(failure.reason)}", flush=True)
        for repository in {t.repository.url: t.repository for t in phase_tenants}.values():
            workspace.remove_repository(repository)
    remove_images(conf, prefix)


def run(args: argparse.Namespace) -> int:
    lab = LabRun(args.block, args.dir, args.reuse_lab, memstore_gib=MEMSTORE_GIB)
    workspace = Workspace.fresh(args.workspace)
    prefix = f"bkbench-{uuid.uuid4().hex[:6]}-"
    results = Results()
    with contextlib.closing(log_to(workspace.log)):
        try:
            description = lab.up()
            try:
                if args.part in ("all", "throughput"):
                    throughput(args, description, workspace, prefix, results)
                if args.part in ("all", "tenants"):
                    tenants(args, description, workspace, prefix, results)
            finally:
                if args.reuse_lab is not None:  # a booted lab goes, and its images with it
                    remove_images(description.sites["a"].conf, prefix)
        finally:
            try:
                lab.down()
            finally:
                if any(results.sections):
                    print_table([s for s in results.sections if s])
    problems = [problem for phase in results.phases for problem in phase.problems]
    for problem in problems:
        print(f"PROBLEM: {problem}")
    print(f"drd's log: {workspace.log}")
    return 1 if problems else 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--part", choices=("all", "throughput", "tenants"), default="all",
                        help="what to measure (default all)")
    parser.add_argument("--rounds", type=int, default=4,
                        help="throughput: rounds, each with every way; an even number "
                             "puts drd first as often as hand (default 4)")
    parser.add_argument("--size-mib", type=int, default=1024,
                        help="throughput: image size in MiB (default 1024)")
    parser.add_argument("--no-breakdown", dest="breakdown", action="store_false",
                        help="throughput: only drd and the hand pipeline, not the step "
                             "between them")
    parser.add_argument("--tenants", type=int, default=20,
                        help="tenants with a repository each (default 20)")
    parser.add_argument("--shared", type=int, default=5,
                        help="tenants sharing one repository (default 5)")
    parser.add_argument("--tenant-mib", type=int, default=64,
                        help="each tenant's image in MiB (default 64)")
    parser.add_argument("--no-all-at-once", dest="all_at_once", action="store_false",
                        help="tenants: only the phase under the daemon's limits")
    parser.add_argument("--block", type=int, default=66,
                        help="address block of the lab to boot: 127.B.{1,2,3}.1 (default 66)")
    parser.add_argument("--dir", type=Path, default=None,
                        help="lab directory to boot (default /tmp/bench<BLOCK>/lab)")
    parser.add_argument("--reuse-lab", type=Path, default=None, metavar="DIR",
                        help="use the lab already up in DIR and leave it running")
    args = parser.parse_args(argv)
    if min(args.rounds, args.size_mib, args.tenant_mib) < 1 or args.tenants < 0 or \
            args.shared < 0 or args.tenants + args.shared < 1:
        parser.error("--rounds, --size-mib, --tenant-mib and some tenants are needed")
    root = Path(tempfile.gettempdir()) / f"bench{args.block}"
    args.dir = (args.dir or root / "lab").resolve()
    args.workspace = root / "backup-bench"
    if args.reuse_lab is not None:
        args.reuse_lab = args.reuse_lab.resolve()
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    print(f"backup benchmark: block {args.block}, {os.cpu_count()} CPUs, load average "
          f"{load_average()}", flush=True)
    try:
        version = asyncio.run(probe_version())
        print(f"restic {'.'.join(map(str, version))}", flush=True)
        return run(args)
    except (BenchError, CephError, ResticError, ResticUnavailable,
            subprocess.TimeoutExpired) as error:
        print(f"benchmark failed: {describe(error)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
