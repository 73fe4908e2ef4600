"""Part 2 of the replication benchmark: drd's measured RPO under a continuous write load.

Tenant bench-load gets 10 images in journal mode to the same-city site (snapshot 1m
to remote; Ceph then replays their journal on both peers) and 10 in snapshot mode
(1m to both peers). A separate process writes random 4 KiB blocks to all 20 while the
benchmark reads GET /v1/rpo every second. Then the load stops, and the images are
compared by sha256 on sites a, b and c.
"""

import json
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from daemon_process import BenchError, Usage, cpu_percent
from data_age_probe import DataAgeProbe
from journal_probe import JournalProbe
from replication_api import DaemonApi, RpoSample
from replication_daemon import DaemonRunner
from replication_lab import (
    MIB,
    POOL,
    Selection,
    create_many,
    image_checksum,
    journal_destination,
    policy_yaml,
    prepare_namespaces,
    primary_enabled,
    snapshot_destination,
)

from drd.ceph.cluster import CephError, connect
from drd.ceph.rbd_images import take_mirror_snapshot
from drd.domain.replication_plan import ImageRef
from drd.domain.site import SiteKind
from drd.lab.description import LabDescription

TENANT = "bench-load"
NAMESPACE = "bench-load"
JOURNAL_IMAGES = [f"jrnl-{n:02d}" for n in range(10)]
SNAPSHOT_IMAGES = [f"snap-{n:02d}" for n in range(10)]
IMAGE_SIZE = 16 * MIB
LOAD_GENERATOR = Path(__file__).with_name("rbd_write_load.py")
READY_TIMEOUT_S = 180.0
VERIFY_TIMEOUT_S = 120.0
CATCH_UP_WATCH_S = 60.0  # after the load: how long to wait for commit positions
SAMPLE_S = 1.0
PROBED_IMAGES = JOURNAL_IMAGES[:3]  # sampled at 10 Hz by the journal and data-age probes
MARKER_EVERY = 3  # every third write of a probed image is a time marker in block 0


def load_policy() -> str:
    return policy_yaml(TENANT, [
        Selection("journal", NAMESPACE, "jrnl-*", journal_destination("5s"),
                  snapshot_destination("1m", "2m")),
        Selection("snapshot", NAMESPACE, "snap-*", snapshot_destination("1m", "2m"),
                  snapshot_destination("1m", "2m")),
    ])


@dataclass
class RpoRun:
    """What part 2 measured."""

    rate: float
    seconds: float
    flush_seconds: float  # each image flushes this often; 0: never
    ready_s: float = 0.0  # PUT -> every image and destination has a measured RPO
    load: dict[str, Any] = field(default_factory=dict)  # rbd_write_load.py's JSON
    daemon_cpu_percent: float = 0.0
    samples: int = 0  # GET /v1/rpo calls during the load
    # (mode, destination) -> measured RPO values; mode is journal or snapshot
    rpo: dict[tuple[str, str], list[float]] = field(default_factory=dict)
    unknown: Counter[tuple[str, str]] = field(default_factory=Counter)
    fine: dict[str, list[float]] = field(default_factory=dict)  # destination -> s, probe
    fine_rounds: int = 0
    fine_errors: int = 0
    fine_caught_up: dict[str, float | None] = field(default_factory=dict)  # s after stop
    data_age: dict[str, list[float]] = field(default_factory=dict)  # destination -> s
    # Nothing is written after the load: drd's journal readings then, by destination
    idle_max: dict[str, float] = field(default_factory=dict)
    idle_states: Counter[tuple[str, str]] = field(default_factory=Counter)
    watched_s: float = 0.0
    mon_sessions: dict[str, int] = field(default_factory=dict)  # site -> daemon sessions
    details: Counter[tuple[str, str, str]] = field(default_factory=Counter)
    matched: dict[str, float | None] = field(default_factory=dict)  # image -> s after stop
    problems: list[str] = field(default_factory=list)


def _mode(sample: RpoSample) -> str:
    return "journal" if sample.image.rsplit("/", 1)[-1].startswith("jrnl-") else "snapshot"


def prepare(description: LabDescription) -> None:
    """The namespace on every site and the 20 images on site a."""
    prepare_namespaces(description, [NAMESPACE])
    create_many(description.sites["a"].conf, {NAMESPACE: JOURNAL_IMAGES + SNAPSHOT_IMAGES},
                IMAGE_SIZE, first_block=False, threads=1)


def wait_protected(description: LabDescription, api: DaemonApi, run: RpoRun) -> None:
    """PUT the policy, then wait until drd measures an RPO for every image and destination."""
    images = len(JOURNAL_IMAGES) + len(SNAPSHOT_IMAGES)
    started = time.monotonic()
    api.put_policy(TENANT, load_policy())
    rows: list[RpoSample] = []
    while time.monotonic() - started < READY_TIMEOUT_S:
        rows = api.rpo(TENANT)
        if len(rows) == 2 * images and all(row.rpo_s is not None for row in rows):
            run.ready_s = time.monotonic() - started
            return
        time.sleep(1.0)
    enabled = primary_enabled(description.sites["a"].conf, [NAMESPACE])
    waiting = sorted({f"{row.image} {row.destination}: {row.detail}" for row in rows
                      if row.rpo_s is None})[:5]
    raise BenchError(f"after {READY_TIMEOUT_S:.0f} s, {enabled}/{images} images are "
                     f"mirror-enabled on a and drd reports {len(rows)} RPO rows, of which "
                     f"{len(waiting)}+ unmeasured, e.g. {waiting}")


def sample_under_load(description: LabDescription, api: DaemonApi, runner: DaemonRunner,
                      run: RpoRun) -> tuple[float, float]:
    """Start the writer, read /v1/rpo every second until it ends; (start, end) of the
    load, monotonic."""
    argv = [sys.executable, str(LOAD_GENERATOR), "--conf", str(description.sites["a"].conf),
            "--namespace", NAMESPACE, "--images", ",".join(JOURNAL_IMAGES + SNAPSHOT_IMAGES),
            "--rate", str(run.rate), "--seconds", str(run.seconds),
            "--flush-seconds", str(run.flush_seconds),
            "--marker-images", ",".join(PROBED_IMAGES), "--marker-every", str(MARKER_EVERY)]
    generator = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True,
                                 stdin=subprocess.DEVNULL)
    try:
        assert generator.stdout is not None
        if generator.stdout.readline().strip() != "START":
            raise BenchError(f"the write load failed (exit {generator.wait()})")
        daemon = runner.process
        first = Usage.of(daemon)
        deadline = first.at + run.seconds + 120
        next_at = first.at
        while generator.poll() is None:
            if time.monotonic() > deadline:
                raise BenchError("the write load overran its run time by 2 minutes")
            _record(runner.call(partial(api.rpo, TENANT)) or [], run)
            next_at += SAMPLE_S
            time.sleep(max(0.0, next_at - time.monotonic()))
        ended = time.monotonic()
        if runner.process is daemon:
            run.daemon_cpu_percent = cpu_percent(first, Usage.of(daemon))
        line = generator.stdout.readline()
    finally:
        if generator.poll() is None:
            generator.kill()
            generator.wait()
    if generator.returncode != 0 or not line.strip():
        raise BenchError(f"the write load exited {generator.returncode} without results")
    run.load = json.loads(line)
    return first.at, ended


def watch_catch_up(api: DaemonApi, probe: JournalProbe, ended: float, run: RpoRun) -> None:
    """From the end of the load until the peers' journal commit positions reach the
    primary's (at most CATCH_UP_WATCH_S): what drd reports for journal images nothing
    writes to any more. Runs in its own thread, beside the sha256 checks."""
    while time.monotonic() - ended < CATCH_UP_WATCH_S:
        try:
            rows = api.rpo(TENANT)
        except BenchError:
            rows = []  # the main thread notices a dead daemon
        for row in rows:
            if _mode(row) == "journal" and row.rpo_s is not None:
                run.idle_max[row.destination] = max(run.idle_max.get(row.destination, 0.0),
                                                    row.rpo_s)
                run.idle_states[(row.destination, row.state)] += 1
        caught_up = probe.caught_up_after(ended)
        if caught_up and all(value is not None for value in caught_up.values()):
            break
        time.sleep(SAMPLE_S)
    run.watched_s = time.monotonic() - ended


def _peer_sites(description: LabDescription) -> dict[str, str]:
    kinds = {SiteKind.SAME_CITY: "same_city", SiteKind.REMOTE: "remote"}
    return {kinds[site.kind]: name for name, site in description.sites.items()
            if site.kind in kinds}


def _record(rows: list[RpoSample], run: RpoRun) -> None:
    run.samples += 1
    for row in rows:
        key = (_mode(row), row.destination)
        run.details[(*key, row.detail)] += 1
        if row.rpo_s is None:
            run.unknown[key] += 1
        else:
            run.rpo.setdefault(key, []).append(row.rpo_s)


def verify_copies(description: LabDescription, run: RpoRun) -> None:
    """After the load: a mirror snapshot of each snapshot image (journal images ship by
    themselves), then sha256 on a, and on b and c until they match or time runs out."""
    stopped = time.monotonic()
    sites = description.sites
    with connect(sites["a"].conf, timeout=30.0) as cluster:
        for name in SNAPSHOT_IMAGES:
            take_mirror_snapshot(cluster, ImageRef(POOL, NAMESPACE, name))
        wanted = {name: image_checksum(cluster, NAMESPACE, name)
                  for name in JOURNAL_IMAGES + SNAPSHOT_IMAGES}
    pending: dict[str, tuple[str, ...]] = dict.fromkeys(wanted, ("b", "c"))
    with connect(sites["b"].conf, timeout=30.0) as b, connect(sites["c"].conf,
                                                               timeout=30.0) as c:
        peers = {"b": b, "c": c}
        while pending and time.monotonic() - stopped < VERIFY_TIMEOUT_S:
            for name, sites_left in list(pending.items()):
                left = tuple(site for site in sites_left if _differs(
                    partial(image_checksum, peers[site], NAMESPACE, name), wanted[name]))
                if left:
                    pending[name] = left
                else:
                    del pending[name]
                    run.matched[name] = time.monotonic() - stopped
            if pending:
                time.sleep(2.0)
    for name, left in sorted(pending.items()):
        run.matched[name] = None
        run.problems.append(f"{POOL}/{NAMESPACE}/{name}: sha256 on {' and '.join(left)} "
                            f"still differs from site a {VERIFY_TIMEOUT_S:.0f} s after the "
                            f"load stopped")


def _differs(checksum: Callable[[], str], wanted: str) -> bool:
    try:
        return checksum() != wanted
    except CephError:
        return True  # the copy is not readable yet


def measure(description: LabDescription, api: DaemonApi, runner: DaemonRunner,
            rate: float, seconds: float, *, flush_seconds: float) -> RpoRun:
    run = RpoRun(rate=rate, seconds=seconds, flush_seconds=flush_seconds)
    prepare(description)
    print(f"rpo: 20 images in {POOL}/{NAMESPACE}; PUT {TENANT}'s policy", flush=True)
    wait_protected(description, api, run)
    print(f"rpo: every image measured {run.ready_s:.1f} s after the PUT; "
          f"{rate:.0f} writes/s for {seconds:.0f} s", flush=True)
    probe = JournalProbe(description.sites["a"].conf, POOL, NAMESPACE, PROBED_IMAGES,
                         _peer_sites(description))
    peers = _peer_sites(description)
    data_age = DataAgeProbe({destination: description.sites[site].conf
                             for destination, site in peers.items()},
                            POOL, NAMESPACE, PROBED_IMAGES)
    probe.start()
    data_age.start()
    try:
        try:
            started, ended = sample_under_load(description, api, runner, run)
        finally:
            data_age.stop()
        run.data_age = data_age.during(started, ended)
        print(f"rpo: load done ({run.load['done']} writes); comparing sha256 on a, b, c",
              flush=True)
        watch = threading.Thread(target=watch_catch_up, args=(api, probe, ended, run),
                                 name="catch-up-watch", daemon=True)
        watch.start()
        verify_copies(description, run)
        watch.join()
    finally:
        probe.stop()
    run.mon_sessions = runner.mon_sessions({site.address: name for name, site
                                            in description.sites.items()})
    run.fine = probe.during(started, ended)
    run.fine_caught_up = probe.caught_up_after(ended)
    run.fine_rounds, run.fine_errors = probe.rounds, probe.errors
    run.problems += [failure for failure in (probe.failure, data_age.failure) if failure]
    return run
