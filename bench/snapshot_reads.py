"""Benchmark reading many images' mirror snapshots: one image open each, or one batch.

It boots a lab (or reuses one), creates N thin images in a namespace of its own on
site a, mirrors them in snapshot mode with three mirror snapshots each, and waits for
b and c to hold every image's newest snapshot complete. Then, on each site, in
alternating rounds over one librados handle: `mirror_snapshots` image by image (an
open, a snapshot listing and a close each: what drd's RPO loop does today) against
`image_ids_by_name` + `mirror_snapshots_many` (two rounds of cls_rbd calls, no
open). It prints the median wall time and process CPU (every thread, librados' too)
of each. It exits 0 whatever the figures; 1 when there was nothing to measure, or
when the two readers disagree in every round.

    .venv/bin/python bench/snapshot_reads.py [--images 200] [--rounds 5] [--block 64]
        [--dir /tmp/bench64/lab] [--reuse-lab DIR]
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
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import rbd
from daemon import LabRun
from daemon_process import BenchError
from replication_lab import CEPH_TIMEOUT_S, MIB, POOL, create_many, prepare_namespaces

from drd.ceph import rbd_images
from drd.ceph.cluster import CephError, connect
from drd.domain.replication_plan import ImageRef
from drd.lab.description import LabDescription

SNAPSHOTS = 2  # taken by the benchmark, after the one enabling mirroring takes
SYNC_TIMEOUT_S = 600.0
CREATE_THREADS = 8


@dataclass
class Figures:
    wall_s: list[float] = field(default_factory=list)
    cpu_s: list[float] = field(default_factory=list)


@dataclass
class SiteRun:
    per_image: Figures = field(default_factory=Figures)
    batch: Figures = field(default_factory=Figures)
    snapshots: int = 0
    agreeing_rounds: int = 0


def timed(action: Callable[[], Any], figures: Figures) -> Any:
    wall, cpu = time.perf_counter(), time.process_time()
    result = action()
    figures.wall_s.append(time.perf_counter() - wall)
    figures.cpu_s.append(time.process_time() - cpu)
    return result


def mirror_all(conf: Path, namespace: str, names: list[str]) -> None:
    """Enable snapshot mirroring and take SNAPSHOTS mirror snapshots of each image."""
    def one(name: str) -> None:
        with connect(conf, timeout=CEPH_TIMEOUT_S) as cluster, \
                cluster.open_ioctx(POOL) as ioctx:
            ioctx.set_namespace(namespace)
            with rbd.Image(ioctx, name) as image:
                image.mirror_image_enable(rbd.RBD_MIRROR_IMAGE_MODE_SNAPSHOT)
                for _ in range(SNAPSHOTS):
                    image.mirror_image_create_snapshot()

    with ThreadPoolExecutor(max_workers=CREATE_THREADS) as pool:
        for future in [pool.submit(one, name) for name in names]:
            future.result()


def wait_synced(description: LabDescription, namespace: str, names: list[str]) -> None:
    """Until b and c hold every image with its newest snapshot complete."""
    deadline = time.monotonic() + SYNC_TIMEOUT_S
    with connect(description.sites["a"].conf, timeout=CEPH_TIMEOUT_S) as cluster:
        ids = rbd_images.image_ids_by_name(cluster, POOL, namespace)
        primary = rbd_images.mirror_snapshots_many(cluster, POOL, namespace,
                                                   [ids[n] for n in names])
    newest = {}
    for name in names:
        snapshots = primary[ids[name]]
        if isinstance(snapshots, CephError):
            raise BenchError(f"reading {name} on a: {snapshots}")
        newest[name] = snapshots[-1].snap_id
    for peer in ("b", "c"):
        with connect(description.sites[peer].conf, timeout=CEPH_TIMEOUT_S) as cluster:
            while True:
                waiting = _unsynced(cluster, namespace, newest)
                if not waiting:
                    break
                if time.monotonic() > deadline:
                    raise BenchError(f"{waiting} of {len(names)} images not synced to "
                                     f"{peer} after {SYNC_TIMEOUT_S:.0f} s")
                time.sleep(2.0)
        print(f"all {len(names)} images synced to {peer}", flush=True)


def _unsynced(cluster: Any, namespace: str, newest: dict[str, int]) -> int:
    ids = rbd_images.image_ids_by_name(cluster, POOL, namespace)
    present = {name: ids[name] for name in newest if name in ids}
    found = rbd_images.mirror_snapshots_many(cluster, POOL, namespace, list(present.values()))
    waiting = len(newest) - len(present)
    for name, image_id in present.items():
        snapshots = found[image_id]
        if isinstance(snapshots, CephError) or not any(
                s.complete and s.primary_snap_id == newest[name] for s in snapshots):
            waiting += 1
    return waiting


def measure_site(conf: Path, namespace: str, names: list[str], rounds: int) -> SiteRun:
    run = SiteRun()
    with connect(conf, timeout=CEPH_TIMEOUT_S) as cluster:
        def per_image() -> dict[str, Any]:
            return {name: rbd_images.mirror_snapshots(cluster, ImageRef(POOL, namespace, name))
                    for name in names}

        def batch() -> dict[str, Any]:
            ids = rbd_images.image_ids_by_name(cluster, POOL, namespace)
            found = rbd_images.mirror_snapshots_many(cluster, POOL, namespace,
                                                     [ids[name] for name in names])
            return {name: found[ids[name]] for name in names}

        batch(), per_image()  # warm-up: the pool's first ioctx, the OSD map
        for number in range(rounds):
            # Alternate the order, so neither reader always runs on a warmer cache.
            if number % 2:
                one, many = timed(per_image, run.per_image), timed(batch, run.batch)
            else:
                many, one = timed(batch, run.batch), timed(per_image, run.per_image)
            run.agreeing_rounds += many == one
            run.snapshots = sum(len(s) for s in one.values())
    return run


def print_table(images: int, runs: dict[str, SiteRun]) -> None:
    print(f"\n{images} images per site; median of {len(runs['a'].batch.wall_s)} rounds; "
          "CPU is the whole process's (Python and librados threads)\n")
    print(f"{'site':<5}{'snapshots':>10}{'reader':>12}{'wall s':>9}{'CPU s':>8}"
          f"{'CPU ms/img':>12}{'wall x':>8}{'CPU x':>7}{'agree':>7}")
    for site, run in runs.items():
        one_wall, one_cpu = (statistics.median(run.per_image.wall_s),
                             statistics.median(run.per_image.cpu_s))
        many_wall, many_cpu = (statistics.median(run.batch.wall_s),
                               statistics.median(run.batch.cpu_s))
        agree = f"{run.agreeing_rounds}/{len(run.batch.wall_s)}"
        print(f"{site:<5}{run.snapshots:>10}{'per image':>12}{one_wall:>9.3f}{one_cpu:>8.3f}"
              f"{1000 * one_cpu / images:>12.2f}")
        print(f"{'':<5}{'':>10}{'batch':>12}{many_wall:>9.3f}{many_cpu:>8.3f}"
              f"{1000 * many_cpu / images:>12.2f}{one_wall / many_wall:>8.1f}"
              f"{one_cpu / many_cpu:>7.1f}{agree:>7}")


def run(args: argparse.Namespace) -> int:
    lab = LabRun(args.block, args.dir, args.reuse_lab)
    try:
        description = lab.up()
        namespace = f"snapreads-{uuid.uuid4().hex[:6]}"
        names = [f"img-{n:04d}" for n in range(args.images)]
        started = time.monotonic()
        prepare_namespaces(description, [namespace])
        a = description.sites["a"]
        create_many(a.conf, {namespace: names}, 4 * MIB, first_block=True, threads=1)
        mirror_all(a.conf, namespace, names)
        print(f"{args.images} images in {POOL}/{namespace} on a, mirrored with "
              f"{SNAPSHOTS + 1} snapshots each, in {time.monotonic() - started:.0f} s",
              flush=True)
        wait_synced(description, namespace, names)
        runs = {site: measure_site(description.sites[site].conf, namespace, names,
                                   args.rounds) for site in ("a", "b", "c")}
    finally:
        lab.down()
    print_table(args.images, runs)
    if any(run.agreeing_rounds == 0 for run in runs.values()):
        print("PROBLEM: on some site the two readers disagreed in every round",
              file=sys.stderr)
        return 1
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--images", type=int, default=200, help="images (default 200)")
    parser.add_argument("--rounds", type=int, default=5, help="timed rounds (default 5)")
    parser.add_argument("--block", type=int, default=64,
                        help="address block of the lab to boot: 127.B.{1,2,3}.1 (default 64)")
    parser.add_argument("--dir", type=Path, default=None,
                        help="lab directory to boot (default /tmp/bench<BLOCK>/lab)")
    parser.add_argument("--reuse-lab", type=Path, default=None, metavar="DIR",
                        help="use the lab already up in DIR and leave it running; the "
                             "benchmark's namespace and images stay there")
    args = parser.parse_args(argv)
    if args.images < 1 or args.rounds < 1:
        parser.error("--images and --rounds must be positive")
    args.dir = (args.dir or Path(tempfile.gettempdir()) / f"bench{args.block}" / "lab").resolve()
    if args.reuse_lab is not None:
        args.reuse_lab = args.reuse_lab.resolve()
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"snapshot reads benchmark: {os.cpu_count()} CPUs, load average {load}", flush=True)
    try:
        return run(args)
    except (BenchError, CephError, subprocess.TimeoutExpired) as error:
        print(f"benchmark failed: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
