"""Benchmark observing many namespaces' mirroring: librbd's `mirror_image_info_list`
(`observe_pool`) or batched cls calls (`observe_pool_batched`).

It boots a lab (or reuses one), creates NAMESPACES namespaces of IMAGES thin images
each on site a, mirrors them in snapshot mode with three mirror snapshots each, and
waits for b and c to hold every image's newest snapshot complete. Then, on a and b,
in alternating rounds over one librados handle, it observes every namespace one
after another with each reader, and prints the median wall time and process CPU
(every thread, librados' too) of a whole pass. It exits 0 whatever the figures; 1
when the two readers disagree in every round.

    .venv/bin/python bench/observe_reads.py [--namespaces 20] [--images 20] [--rounds 5]
        [--block 64] [--dir /tmp/bench64/lab] [--reuse-lab DIR]
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from daemon import LabRun
from daemon_process import BenchError
from replication_lab import CEPH_TIMEOUT_S, MIB, POOL, create_many, prepare_namespaces
from snapshot_reads import SNAPSHOTS, Figures, mirror_all, timed, wait_synced

from drd.ceph import rbd_images
from drd.ceph.cluster import CephError, connect
from drd.ceph.rbd_observe import observe_pool_batched
from drd.domain.replication_plan import ObservedImage

Observe = Callable[[Any, str, str], list[ObservedImage]]


def measure_site(conf: Path, namespaces: list[str], rounds: int
                 ) -> tuple[Figures, Figures, int]:
    librbd, batched, agreeing = Figures(), Figures(), 0
    with connect(conf, timeout=CEPH_TIMEOUT_S) as cluster:
        def everything(observe: Observe) -> list[ObservedImage]:
            found = [image for namespace in namespaces
                     for image in observe(cluster, POOL, namespace)]
            return sorted(found, key=lambda image: image.ref)

        everything(observe_pool_batched), everything(rbd_images.observe_pool)  # warm-up
        for number in range(rounds):
            # Alternate the order, so neither reader always runs on a warmer cache.
            if number % 2:
                one = timed(lambda: everything(rbd_images.observe_pool), librbd)
                many = timed(lambda: everything(observe_pool_batched), batched)
            else:
                many = timed(lambda: everything(observe_pool_batched), batched)
                one = timed(lambda: everything(rbd_images.observe_pool), librbd)
            agreeing += many == one
    return librbd, batched, agreeing


def print_table(images: int, runs: dict[str, tuple[Figures, Figures, int]]) -> None:
    print(f"\n{images} snapshot-mirrored images per site; a pass observes every namespace "
          "in turn; median of the rounds; CPU is the whole process's\n")
    print(f"{'site':<5}{'reader':>22}{'wall s':>9}{'max s':>8}{'CPU s':>8}{'wall x':>8}"
          f"{'agree':>7}")
    for site, (librbd, batched, agreeing) in runs.items():
        one = statistics.median(librbd.wall_s)
        many = statistics.median(batched.wall_s)
        agree = f"{agreeing}/{len(batched.wall_s)}"
        print(f"{site:<5}{'mirror_image_info_list':>22}{one:>9.3f}{max(librbd.wall_s):>8.3f}"
              f"{statistics.median(librbd.cpu_s):>8.3f}")
        print(f"{'':<5}{'batched cls calls':>22}{many:>9.3f}{max(batched.wall_s):>8.3f}"
              f"{statistics.median(batched.cpu_s):>8.3f}{one / many:>8.1f}{agree:>7}")


def run(args: argparse.Namespace) -> int:
    lab = LabRun(args.block, args.dir, args.reuse_lab)
    try:
        description = lab.up()
        run_id = uuid.uuid4().hex[:6]
        namespaces = [f"observe-{run_id}-{n:02d}" for n in range(args.namespaces)]
        names = [f"img-{n:04d}" for n in range(args.images)]
        started = time.monotonic()
        prepare_namespaces(description, namespaces)
        a = description.sites["a"]
        create_many(a.conf, dict.fromkeys(namespaces, names), 4 * MIB, first_block=False)
        for namespace in namespaces:
            mirror_all(a.conf, namespace, names)
        print(f"{len(namespaces)} x {args.images} images in {POOL} on a, mirrored with "
              f"{SNAPSHOTS + 1} snapshots each, in {time.monotonic() - started:.0f} s",
              flush=True)
        for namespace in namespaces:
            wait_synced(description, namespace, names)
        runs = {site: measure_site(description.sites[site].conf, namespaces, args.rounds)
                for site in ("a", "b")}
    finally:
        lab.down()
    print_table(args.namespaces * args.images, runs)
    if any(agreeing == 0 for _, _, agreeing in runs.values()):
        print("PROBLEM: on some site the two readers disagreed in every round",
              file=sys.stderr)
        return 1
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--namespaces", type=int, default=20, help="namespaces (default 20)")
    parser.add_argument("--images", type=int, default=20,
                        help="images per namespace (default 20)")
    parser.add_argument("--rounds", type=int, default=5, help="timed rounds (default 5)")
    parser.add_argument("--block", type=int, default=64,
                        help="address block of the lab to boot: 127.B.{1,2,3}.1 (default 64)")
    parser.add_argument("--dir", type=Path, default=None,
                        help="lab directory to boot (default /tmp/bench<BLOCK>/lab)")
    parser.add_argument("--reuse-lab", type=Path, default=None, metavar="DIR",
                        help="use the lab already up in DIR and leave it running; the "
                             "benchmark's namespaces and images stay there")
    args = parser.parse_args(argv)
    if min(args.namespaces, args.images, args.rounds) < 1:
        parser.error("--namespaces, --images and --rounds must be positive")
    args.dir = (args.dir or Path(tempfile.gettempdir()) / f"bench{args.block}" / "lab").resolve()
    if args.reuse_lab is not None:
        args.reuse_lab = args.reuse_lab.resolve()
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"observe benchmark: {os.cpu_count()} CPUs, load average {load}", flush=True)
    try:
        return run(args)
    except (BenchError, CephError, subprocess.TimeoutExpired) as error:
        print(f"benchmark failed: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
