"""Continuous random 4 KiB writes on RBD images through librbd, on a fixed schedule.

Run as its own process by bench/replication.py, so its CPU is not the daemon's or the
benchmark's. One thread per image; write i of an image is due at start + i/rate per
image (images staggered), whatever happened to the others, and its latency counts from
that due time. Every write is acknowledged by librbd before the next of its image.

    .venv/bin/python bench/rbd_write_load.py --conf CEPH_CONF --namespace NS
        --images a,b,c [--rate 300] [--seconds 150]

With --flush-seconds F (default 0.2), each image's writer also flushes once F seconds
have passed since its last flush, as a guest's filesystem or database does on commit.
rbd-mirror records a replayed write as committed only once the replay is flushed, which
follows the primary's flush events (or 32 writes in flight): a writer that never
flushes (--flush-seconds 0) leaves every peer's commit position seconds behind data it
already holds, and drd can only report the commit position.

With --marker-images, every --marker-every'th write of those images goes to block 0
instead and holds the wall-clock time it was issued (MARKER format): a reader of the
peer's copy then sees how old the newest data there is, without asking drd or Ceph.

stdout gets `START` once every image is open and the first write is due, then one JSON
object of results when the run ends.
"""

import argparse
import json
import os
import random
import signal
import struct
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import rbd
from status_load import percentile

from drd.ceph.cluster import connect

BLOCK = 4096
POOL = "rbd"
MARKER = struct.Struct("<dQ")  # wall-clock time the write was issued, sequence number


@dataclass
class ImageLoad:
    """What one image's writer did."""

    name: str
    latencies: list[float] = field(default_factory=list)  # acknowledged, from due time
    errors: int = 0
    lag: float = 0.0  # the latest write's start past its due time


@dataclass(frozen=True)
class Schedule:
    """When one image's writes are due: start + i * interval, while before `until`."""

    start: float
    interval: float
    until: float
    marker_every: int = 0  # every n-th write is a marker in block 0; 0: none
    flush_seconds: float = 0.0  # flush after a write once this long since the last; 0: never


def _write_loop(image: Any, load: ImageLoad, schedule: Schedule, stop: threading.Event,
                seed: int) -> None:
    blocks = image.size() // BLOCK
    chooser = random.Random(seed)  # noqa: S311 (offsets, not secrets)
    number = 0
    every = schedule.marker_every
    flushed = time.monotonic()
    while not stop.is_set():
        due = schedule.start + number * schedule.interval
        if due >= schedule.until:
            if schedule.flush_seconds:
                image.flush()  # the last writes are committed, as a guest's would be
            return
        wait = due - time.monotonic()
        if wait > 0 and stop.wait(wait):
            return
        load.lag = max(0.0, time.monotonic() - due)
        try:
            if every and number % every == 0:
                marker = MARKER.pack(time.time(), number)
                image.write(marker + bytes(BLOCK - MARKER.size), 0)
            else:
                image.write(os.urandom(BLOCK), chooser.randrange(1, blocks) * BLOCK)
            if schedule.flush_seconds and time.monotonic() - flushed >= schedule.flush_seconds:
                image.flush()
                flushed = time.monotonic()
            load.latencies.append(time.monotonic() - due)
        except rbd.Error:
            load.errors += 1
        number += 1


def run(conf: Path, namespace: str, names: Sequence[str], *, rate: float, seconds: float,
        markers: dict[str, int], flush_seconds: float) -> dict[str, Any]:
    """`markers`: image -> write a marker every that many writes."""
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    per_image = rate / len(names)
    loads = [ImageLoad(name) for name in names]
    with connect(conf, timeout=30.0) as cluster:
        ioctx = cluster.open_ioctx(POOL)
        ioctx.set_namespace(namespace)
        images = [rbd.Image(ioctx, name) for name in names]
        try:
            start = time.monotonic() + 0.2
            until = start + seconds
            threads = [threading.Thread(
                target=_write_loop, name=f"write-{load.name}", daemon=True,
                args=(image, load, Schedule(start + index / rate, 1 / per_image, until,
                                            markers.get(load.name, 0), flush_seconds),
                      stop, index))
                for index, (image, load) in enumerate(zip(images, loads, strict=True))]
            cpu_before = time.process_time()
            for thread in threads:
                thread.start()
            print("START", flush=True)
            for thread in threads:
                thread.join()
            ended = time.monotonic()
            cpu = time.process_time() - cpu_before
        finally:
            for image in images:
                image.close()  # flushes: every acknowledged write is in the journal
            ioctx.close()
    latencies = [value for load in loads for value in load.latencies]
    elapsed = max(ended - start, 1e-9)
    return {
        "requested": round(rate * seconds),
        "done": len(latencies),
        "errors": sum(load.errors for load in loads),
        "achieved_rate": len(latencies) / elapsed,
        "seconds": elapsed,
        "latency_ms": {name: 1000 * percentile(latencies, fraction)
                       for name, fraction in (("p50", 0.5), ("p99", 0.99), ("max", 1.0))},
        "client_cpu_percent": 100 * cpu / elapsed,
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--conf", type=Path, required=True, help="ceph.conf of site a")
    parser.add_argument("--namespace", required=True, help="RBD namespace of the images")
    parser.add_argument("--images", required=True, help="comma-separated image names")
    parser.add_argument("--rate", type=float, default=300.0,
                        help="writes per second over all images (default 300)")
    parser.add_argument("--seconds", type=float, default=150.0, help="run time (default 150)")
    parser.add_argument("--marker-images", default="",
                        help="comma-separated images that also get time markers in block 0")
    parser.add_argument("--marker-every", type=int, default=3,
                        help="every n-th write of a marker image is a marker (default 3)")
    parser.add_argument("--flush-seconds", type=float, default=0.2,
                        help="flush each image this often, 0 for never (default 0.2)")
    args = parser.parse_args(argv)
    names = [name for name in args.images.split(",") if name]
    if not names or args.rate <= 0 or args.seconds <= 0 or args.marker_every < 1 \
            or args.flush_seconds < 0:
        parser.error("--images, --rate, --seconds and --marker-every must be non-empty "
                     "and positive")
    markers = {name: args.marker_every for name in args.marker_images.split(",") if name}
    print(json.dumps(run(args.conf, args.namespace, names, rate=args.rate,
                         seconds=args.seconds, markers=markers,
                         flush_seconds=args.flush_seconds)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
