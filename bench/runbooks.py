"""Benchmark the built-in runbooks on 100 images: switchover a->b and back, and a drill at b
while site a keeps writing, run by drd's real engine, step by step.

It boots a lab (or reuses one), creates the tenant's images on site a (by default 50 in
journal mode and 50 in snapshot mode, 8 MiB of random data each, in a namespace of
their own), mirrors them with drd's reconciler and waits until site b holds the same
sha256 for every one. Then, each round: the `switchover` runbook a->b and b->a, and the
`drill` runbook at b while writers on a write to some of the images, each run by
`RunbookEngine` in-process as site b's daemon would run it (bench/runbook_runs.py). Per
run it prints each step's seconds, the total and the windows of the run's own report
(rto, writes blocked, unprotected), and what it checked itself: the sha256 of every image
on both sites before and after each switchover (RPO 0), the roles, and that nothing of
a drill remains on any site. The summary gives medians and maxima against the targets
of issue 7 (switchover 30 s, drill 60 s). It exits 0 whatever the times, and 1 when a
run failed, a check found a difference, or there was nothing to measure.

    .venv/bin/python bench/runbooks.py [--part all|switchover|drill] [--rounds 2]
        [--block 65] [--dir /tmp/bench65/lab] [--reuse-lab DIR] [--memstore-gib 4]
        [--journal 50] [--snapshot 50] [--size-mib 8] [--writers 10] [--write-rate 300]
"""

import argparse
import asyncio
import contextlib
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from types import FrameType
from typing import IO

import runbook_lab as lab_ops
import structlog
from daemon import DRD, LabRun
from daemon_process import BenchError
from replication_lab import primary_enabled
from runbook_lab import MIB, Tenant
from runbook_report import Checks, print_run, print_summary
from runbook_runs import EngineBench, RunFigures
from runbook_writers import Writers, describe

from drd.ceph.cluster import CephError
from drd.daemon.logging_setup import configure_logging
from drd.lab.description import LabDescription
from drd.lab.lab_store import load_description

WORK_NAME = "runbook-bench"  # the benchmark's files: /tmp/bench<BLOCK>/<this>
MEMSTORE_GIB = 4  # 100 x 8 MiB on each site, journals, clones, and snapshots being trimmed
REPLICATED_TIMEOUT_S = 600.0
CONVERGE_TIMEOUT_S = 180.0
LEFTOVER_WAIT_S = 30.0
RESTART_TIMEOUT_S = 300.0


def _stop_on_sigterm(signum: int, frame: FrameType | None) -> None:
    # As Ctrl-C: unwinds through every finally, so the writers stop and the lab comes down.
    signal.default_int_handler(signum, frame)


def _load() -> str:
    return ", ".join(f"{x:.2f}" for x in os.getloadavg())


def log_to(path: Path) -> IO[str]:
    """drd's JSON log lines (as the daemon writes them) into `path`, off the console."""
    configure_logging("info", "b")
    stream = path.open("a")
    structlog.configure(logger_factory=structlog.WriteLoggerFactory(stream))
    return stream


class MirrorGuard:
    """Restarts the lab's rbd-mirror daemons that died. rbd-mirror 16.2.15 can crash
    bootstrapping many journal images at once (`~ImageWatcher`: FAILED
    ceph_assert(m_pending_ops == 0), seen here with 50 new ones, no write yet; see
    tests/integration/test_runbook_rbd_steps.py); `lab up` restarts what died."""

    def __init__(self, lab: LabDescription) -> None:
        self.lab = lab

    def __call__(self) -> list[str]:
        """The daemons found dead, now restarted. lab.json is read afresh: a runbook
        step restarts rbd-mirror itself (rbd_remote_follow), recording the new PID."""
        self.lab = load_description(self.lab.dir) or self.lab
        dead = lab_ops.dead_mirrors(self.lab)
        if not dead:
            return []
        print(f"{', '.join(dead)} died; restarting with drd lab up", flush=True)
        result = subprocess.run([DRD, "lab", "up", "--dir", str(self.lab.dir), "--block",
                                 str(self.lab.block)], capture_output=True, text=True,
                                timeout=RESTART_TIMEOUT_S, check=False)
        if result.returncode != 0:
            raise BenchError(f"lab up exited {result.returncode}: {result.stderr.strip()}")
        self.lab = load_description(self.lab.dir) or self.lab
        return dead


def prepare(args: argparse.Namespace, lab: LabDescription, tenant: Tenant,
            guard: MirrorGuard) -> None:
    """The tenant's images on a, mirrored by drd's reconciler, whole on b."""
    started = time.monotonic()
    lab_ops.create_images(lab, tenant)
    print(f"{len(tenant.images)} images of {args.size_mib} MiB of random data in "
          f"rbd/{tenant.name} on a ({len(tenant.journal)} journal, {len(tenant.snapshot)} "
          f"snapshot) in {time.monotonic() - started:.1f} s", flush=True)
    started = time.monotonic()
    actions = lab_ops.enable_mirroring(lab, tenant)
    expected = lab_ops.checksums(lab.sites["a"].conf, tenant)
    took, different = lab_ops.wait_equal(lab.sites["b"].conf, tenant, expected,
                                         REPLICATED_TIMEOUT_S, guard)
    if different:
        raise BenchError(f"{len(different)} images never reached b whole within "
                         f"{REPLICATED_TIMEOUT_S:.0f} s: {sorted(different)[:5]}")
    print(f"drd's reconciler enabled mirroring ({actions} actions); every image equal on b "
          f"by sha256 {took:.1f} s later", flush=True)
    if tenant.journal:
        took = lab_ops.wait_replaying(lab, tenant, REPLICATED_TIMEOUT_S, guard)
        print(f"every journal image replaying on every peer after {took:.1f} s more",
              flush=True)


async def switchover(bench: EngineBench, lab: LabDescription, tenant: Tenant, source: str,
                     target: str, *, label: str) -> RunFigures:
    """The switchover runbook from `source` to `target`, checked by sha256 and roles."""
    before = await asyncio.to_thread(lab_ops.checksums, lab.sites[source].conf, tenant)
    run = await bench.run(label, "switchover", source, target)
    checks = Checks()
    after = await asyncio.to_thread(lab_ops.checksums, lab.sites[target].conf, tenant)
    differ = sorted(name for name in before if after[name] != before[name])
    if differ:
        checks.problems.append(f"RPO not 0: {len(differ)} images on {target} differ from "
                               f"{source}'s content before the run: {differ[:5]}")
    else:
        checks.lines.append(f"{target} holds every image's sha256 from before the run, "
                            f"right after it ({len(before)} images): RPO 0")
    took, stale = await asyncio.to_thread(lab_ops.wait_equal, lab.sites[source].conf, tenant,
                                          before, CONVERGE_TIMEOUT_S)
    if stale:
        checks.problems.append(f"{len(stale)} images on {source} still differ "
                               f"{CONVERGE_TIMEOUT_S:.0f} s after the run: {sorted(stale)[:5]}")
    else:
        checks.lines.append(f"{source}'s copies equal by sha256 {took:.1f} s after the run")
    roles = {site: await asyncio.to_thread(primary_enabled, lab.sites[site].conf,
                                           [tenant.name]) for site in (source, target)}
    checks.lines.append(f"primary images: {target} {roles[target]}, {source} {roles[source]}")
    if run.succeeded and (roles[target], roles[source]) != (len(tenant.images), 0):
        checks.problems.append(f"roles after the run: {roles}")
    print_run(run, checks, tenant.name)
    run.problems += checks.problems
    return run


async def drill(bench: EngineBench, lab: LabDescription, tenant: Tenant, writers: Writers | None,
                label: str) -> RunFigures:
    """The drill runbook at b while the writers write on a; then what is left of it."""
    checks = Checks()
    started = time.monotonic()
    if writers is not None:
        await asyncio.to_thread(writers.start)
    try:
        run = await bench.run(label, "drill", "a", "b")
    finally:
        if writers is not None:
            result = await asyncio.to_thread(writers.stop)
            checks.lines.append(f"writers on a ({len(writers.images)} images): "
                                + describe(result, time.monotonic() - started))
            if result is None or result.get("errors"):
                checks.problems.append("the writers on a failed during the drill: "
                                       + describe(result, time.monotonic() - started))
    left = await asyncio.to_thread(lab_ops.drill_leftovers, lab, tenant, run.run_id)
    if left:
        found, waited = list(left), time.monotonic()
        while left and time.monotonic() - waited < LEFTOVER_WAIT_S:
            await asyncio.sleep(1.0)
            left = await asyncio.to_thread(lab_ops.drill_leftovers, lab, tenant, run.run_id)
        checks.problems.append(
            f"the drill left {len(found)} things on the sites right after it ended, "
            f"such as {found[:3]}; " + (f"{len(left)} still there after "
                                        f"{LEFTOVER_WAIT_S:.0f} s" if left
                                        else "gone within a few seconds"))
    else:
        checks.lines.append("nothing of the drill remains on a, b or c: no clone, no "
                            "drill snapshot, none in the trash")
    print_run(run, checks, tenant.name)
    run.problems += checks.problems
    return run


async def measure(args: argparse.Namespace, tenant: Tenant, bench: EngineBench,
                  guard: MirrorGuard, *, writers: Writers | None,
                  runs: list[RunFigures]) -> None:
    """The rounds; a switchover that failed ends them, as the next would start wrong."""
    lab = guard.lab

    async def kept(run: RunFigures) -> bool:
        """Note the run; an rbd-mirror that died during it is a finding, and restarted
        for the next run. Whether the rounds go on."""
        runs.append(run)
        dead = await asyncio.to_thread(guard)
        if dead:
            run.problems.append(f"{run.label}: {', '.join(dead)} died during the run "
                                f"(restarted for the next one)")
        return run.succeeded

    for number in range(1, args.rounds + 1):
        print(f"round {number}: load average {_load()}", flush=True)
        if args.part in ("all", "switchover"):
            for source, target in (("a", "b"), ("b", "a")):
                if not await kept(await switchover(
                        bench, lab, tenant, source, target,
                        label=f"switchover {source}->{target}, round {number}")):
                    return
        if args.part in ("all", "drill"):
            await kept(await drill(bench, lab, tenant, writers, f"drill at b, round {number}"))


def writer_images(tenant: Tenant, count: int) -> list[str]:
    """Half the writers on journal-mode images, half on snapshot-mode ones."""
    journal = list(tenant.journal[:(count + 1) // 2])
    return journal + list(tenant.snapshot[:count - len(journal)])


def run(args: argparse.Namespace, header: list[str]) -> int:
    """Lab, set-up, rounds and summary; the exit code."""
    workspace = Path(tempfile.gettempdir()) / f"bench{args.block}" / WORK_NAME
    shutil.rmtree(workspace, ignore_errors=True)
    workspace.mkdir(parents=True, mode=0o700)
    tenant = lab_ops.make_tenant(f"rbbench-{secrets.token_hex(3)}", args.journal,
                                 args.snapshot, args.size_mib * MIB)
    labrun = LabRun(args.block, args.dir, args.reuse_lab, memstore_gib=args.memstore_gib)
    runs: list[RunFigures] = []
    bench: EngineBench | None = None
    lab: LabDescription | None = None
    writers: Writers | None = None
    with contextlib.closing(log_to(workspace / "drd.log")):
        try:
            lab = labrun.up()
            site_b = lab.sites["b"].drd_config
            if site_b is None:
                raise BenchError("the lab has no drd config for site b")
            guard = MirrorGuard(lab)
            prepare(args, lab, tenant, guard)
            bench = EngineBench(workspace, site_b, tenant.policy())
            written = writer_images(tenant, args.writers)
            if written:
                writers = Writers(lab.sites["a"].conf, tenant.name, written, args.write_rate)
            asyncio.run(measure(args, tenant, bench, guard, writers=writers, runs=runs))
        finally:
            if writers is not None:
                writers.stop()  # by its PID; already stopped unless the run was interrupted
            if bench is not None:
                bench.close()
            if args.reuse_lab is not None and lab is not None:
                for problem in lab_ops.remove_tenant(lab, tenant):
                    print(f"could not remove the tenant's images: {problem}")
            labrun.down()
            if runs:  # also what an interrupted or failed benchmark measured so far
                header.append(f"load average at the end {_load()}")
                print_summary(runs, header)
    problems = [problem for r in runs for problem in r.problems]
    for problem in problems:
        print(f"PROBLEM: {problem}")
    print(f"drd's log: {workspace / 'drd.log'}; state store: {workspace / 'state'}")
    return 1 if problems or not runs else 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--part", choices=("all", "switchover", "drill"), default="all",
                        help="what each round runs: switchovers a->b and b->a, the drill, "
                             "or all (default all)")
    parser.add_argument("--rounds", type=int, default=2,
                        help="rounds of switchover a->b, b->a and drill (default 2)")
    parser.add_argument("--journal", type=int, default=50,
                        help="images in journal mode (default 50)")
    parser.add_argument("--snapshot", type=int, default=50,
                        help="images in snapshot mode (default 50)")
    parser.add_argument("--size-mib", type=int, default=8,
                        help="size of each image, all random data (default 8)")
    parser.add_argument("--writers", type=int, default=10,
                        help="images site a writes to during each drill, 0 for none "
                             "(default 10)")
    parser.add_argument("--write-rate", type=float, default=300.0,
                        help="4 KiB writes per second over the writers' images (default 300)")
    parser.add_argument("--block", type=int, default=65,
                        help="address block of the lab to boot: 127.B.{1,2,3}.1 (default 65)")
    parser.add_argument("--dir", type=Path, default=None,
                        help="lab directory to boot (default /tmp/bench<BLOCK>/lab)")
    parser.add_argument("--reuse-lab", type=Path, default=None, metavar="DIR",
                        help="use the lab already up in DIR and leave it running")
    parser.add_argument("--memstore-gib", type=int, default=MEMSTORE_GIB,
                        help=f"memstore of each site of a booted lab (default {MEMSTORE_GIB})")
    args = parser.parse_args(argv)
    if min(args.rounds, args.size_mib, args.journal + args.snapshot) < 1 or \
            min(args.journal, args.snapshot, args.writers) < 0 or args.write_rate <= 0 or \
            args.writers > args.journal + args.snapshot:
        parser.error("--rounds, --size-mib and some images are needed; --writers at most "
                     "the images, --write-rate positive")
    args.dir = (args.dir or Path(tempfile.gettempdir()) / f"bench{args.block}" / "lab").resolve()
    if args.reuse_lab is not None:
        args.reuse_lab = args.reuse_lab.resolve()
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    header = [f"runbook benchmark: block {args.block}, {os.cpu_count()} CPUs, load average "
              f"at the start {_load()}",
              f"{args.journal} journal + {args.snapshot} snapshot images of {args.size_mib} "
              f"MiB; rounds: {args.rounds} of {args.part}; drill writers: {args.writers} images at "
              f"{args.write_rate:g} writes/s"]
    print(header[0], flush=True)
    try:
        return run(args, header)
    except (BenchError, CephError, subprocess.TimeoutExpired) as error:
        print(f"benchmark failed: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
