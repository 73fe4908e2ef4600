"""Benchmark drd's block replication: reconcile at 1,000 images, RPO under write load.

It boots a lab (or reuses one) and starts a second daemon of site a, as bench/daemon.py
does, with its own policies dir and a site config granting the benchmark's tenants
their namespaces. Then, side by side in one run:
- rpo: 20 images of one tenant (10 journal, 10 snapshot) under a continuous random
  write load from a separate process; drd's measured RPO read every second from
  GET /v1/rpo; then sha256 of every image on sites a, b and c;
- scale: 50 tenants x 20 images in snapshot mode, their policies PUT through the API;
  the first full reconcile, the steady-state pass time, RSS, CPU and RPO-loop round.
It prints each figure beside its target and exits 0 whatever the figures; non-zero
only when there was nothing to measure.

    .venv/bin/python bench/replication.py [--part all|rpo|scale] [--block 63]
        [--dir /tmp/bench63/lab] [--reuse-lab DIR] [--rate 300] [--load-seconds 150]
        [--flush-seconds 0.2]
        [--tenants 50] [--images-per-tenant 20] [--steady-seconds 90]
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import psutil
import replication_rpo
import replication_scale
from daemon import LabRun, other_drd_daemons
from daemon_log import read_log
from daemon_process import BenchError, NotifySocket, prepare_workspace
from replication_api import DaemonApi
from replication_daemon import DaemonRunner
from replication_lab import POOL, grant_tenants
from replication_report import Results, print_table

from drd.ceph.cluster import CephError

PORT = 8472
SITE = "a"
WORK_NAME = "replication-bench"  # the second daemon's files: /tmp/bench<BLOCK>/<this>


def _grants(args: argparse.Namespace) -> dict[str, str]:
    """Every tenant the benchmark may use, each granted the namespace of its name."""
    tenants = [replication_rpo.TENANT, replication_scale.PROBE_TENANT,
               *replication_scale.scale_tenants(args.tenants)]
    return {tenant: tenant for tenant in tenants}


def run(args: argparse.Namespace, results: Results) -> None:
    lab = LabRun(args.block, args.dir, args.reuse_lab)
    notify: NotifySocket | None = None
    runner: DaemonRunner | None = None
    try:
        description = lab.up()
        site = description.sites[SITE]
        work = Path(tempfile.gettempdir()) / f"bench{description.block}" / WORK_NAME
        workspace = prepare_workspace(site, work, PORT)
        grant_tenants(workspace, _grants(args))
        notify = NotifySocket(workspace.notify_path)
        runner = DaemonRunner(workspace, notify)
        started = runner.start()
        api = DaemonApi(workspace)
        print(f"second daemon of site {SITE} on {workspace.url}, READY=1 after "
              f"{started.ready_s:.2f} s; files in {work}", flush=True)
        # The write-load figures first, before 1,000 snapshot-mode images keep both
        # rbd-mirrors busy; the scale part then runs with these 20 images protected too.
        if args.part in ("all", "rpo"):
            try:
                results.rpo = replication_rpo.measure(description, api, runner, args.rate,
                                                      args.load_seconds,
                                                      flush_seconds=args.flush_seconds)
            except (BenchError, CephError) as error:
                results.problems.append(f"the rpo part could not finish: {error}")
            runner.crashed()
        if args.part in ("all", "scale"):
            try:
                results.scale = replication_scale.measure(
                    description, api, runner, tenants=args.tenants,
                    per_tenant=args.images_per_tenant, window_s=args.steady_seconds)
            except (BenchError, CephError) as error:
                results.problems.append(f"the scale part could not finish: {error}")
        stopped = runner.stop()
        if stopped is not None and stopped.exit_code != 0:
            results.problems.append(f"the daemon exited {stopped.exit_code} on SIGTERM")
        # The enable figures are the scale part's: its tenants' namespaces only.
        results.log = read_log(workspace.log, f"{POOL}/bench-t")
    finally:
        if runner is not None:
            results.crashes, results.began = runner.crashes, runner.began
            runner.kill()
        if notify is not None:
            notify.close()
        lab.down()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--part", choices=("all", "rpo", "scale"), default="all",
                        help="what to measure (default all)")
    parser.add_argument("--block", type=int, default=63,
                        help="address block of the lab to boot: 127.B.{1,2,3}.1 (default 63)")
    parser.add_argument("--dir", type=Path, default=None,
                        help="lab directory to boot (default /tmp/bench<BLOCK>/lab)")
    parser.add_argument("--reuse-lab", type=Path, default=None, metavar="DIR",
                        help="use the lab already up in DIR and leave it running; it must "
                             "not hold the benchmark's namespaces yet")
    parser.add_argument("--rate", type=float, default=300.0,
                        help="rpo: writes per second over the 20 images (default 300)")
    parser.add_argument("--load-seconds", type=float, default=150.0,
                        help="rpo: length of the write load (default 150)")
    parser.add_argument("--flush-seconds", type=float, default=0.2,
                        help="rpo: each image flushes this often, 0 for never (default 0.2)")
    parser.add_argument("--tenants", type=int, default=50, help="scale: tenants (default 50)")
    parser.add_argument("--images-per-tenant", type=int, default=20,
                        help="scale: images per tenant (default 20)")
    parser.add_argument("--steady-seconds", type=float, default=90.0,
                        help="scale: steady-state window (default 90)")
    args = parser.parse_args(argv)
    if min(args.rate, args.load_seconds, args.tenants, args.images_per_tenant,
           args.steady_seconds) <= 0 or args.tenants > 100 or args.flush_seconds < 0:
        parser.error("--rate, --load-seconds, --tenants (at most 100), --images-per-tenant "
                     "and --steady-seconds must be positive, --flush-seconds at least 0")
    args.dir = (args.dir or Path(tempfile.gettempdir()) / f"bench{args.block}" / "lab").resolve()
    if args.reuse_lab is not None:
        args.reuse_lab = args.reuse_lab.resolve()

    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"replication benchmark: {os.cpu_count()} CPUs, load average {load}, "
          f"{other_drd_daemons()} other drd daemons running", flush=True)
    began = time.monotonic()
    results = Results()
    try:
        run(args, results)
    except (BenchError, CephError, subprocess.TimeoutExpired) as error:
        print(f"benchmark failed: {error}", file=sys.stderr)
        return 1
    except psutil.NoSuchProcess:
        print(f"benchmark failed: the daemon died while it was measured; its log is "
              f"{WORK_NAME}/daemon.log under /tmp/bench{args.block}", file=sys.stderr)
        return 1
    print_table(results)
    print(f"\nthe whole run took {time.monotonic() - began:.0f} s", flush=True)
    # A crashed daemon or a part cut short is a finding; only nothing measured is a failure.
    return 0 if results.scale is not None or results.rpo is not None else 1


if __name__ == "__main__":
    sys.exit(main())
