"""Benchmark RGW multisite: sync lag of a steady stream of objects, and the gateways' RSS.

It boots a lab (or reuses one), creates a tenant user and bucket on the master zone a
and waits until b and c know both. Then it writes `--rate` objects of `--size` bytes
per second to a for `--seconds` s, open-loop, and notes when each object is first
listed on b and on c with the ETag a acknowledged: the true sync lag. Meanwhile
`radosgw-admin sync status` and `bucket sync status` on b are read every few seconds,
to set Ceph's verdicts beside that lag. At the end it reads the objects back from b
and c and compares sha256, and samples the three gateways' RSS again once idle. It
prints figures; it exits non-zero only when there was nothing to measure.

    .venv/bin/python bench/rgw_sync.py [--block 62] [--dir /tmp/h62lab] [--lab-dir DIR]
        [--rate 10] [--seconds 60] [--size 1048576] [--rgw-config NAME=VALUE ...]
"""

import argparse
import os
import random
import secrets
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from botocore.exceptions import BotoCoreError, ClientError
from daemon import LabRun
from daemon_process import BenchError
from lab_lifecycle import other_ceph_daemons
from rgw_sync_ceph import MemorySampler, StatusSampler, gateway_rss
from rgw_sync_load import Put, Watcher, object_key, write_stream
from rgw_sync_report import SyncRun, print_table, save_record
from rgw_sync_s3 import create_bucket, tenant_zones, verify

from drd.ceph.rgw_admin import RgwAdminError
from drd.lab.description import LabDescription

DESTINATIONS = ("b", "c")
CONFIG_TIMEOUT_S = 30.0


def apply_rgw_config(description: LabDescription, settings: dict[str, str]) -> None:
    """`ceph config set client.rgw.<site> NAME VALUE` on every site: for this lab only."""
    for name, site in sorted(description.sites.items()):
        for key, value in settings.items():
            result = subprocess.run(
                ["ceph", "-c", str(site.conf), "config", "set", f"client.rgw.{name}", key,
                 value], capture_output=True, text=True, timeout=CONFIG_TIMEOUT_S, check=False)
            if result.returncode != 0:
                raise BenchError(f"site {name}: ceph config set {key} {value}: "
                                 f"{result.stderr.strip()}")


def measure(description: LabDescription, args: argparse.Namespace, run: SyncRun) -> None:
    """Bucket, idle RSS, the stream with its watchers and status readings, sha256, RSS."""
    _, zones = tenant_zones(description, args.writers)
    run.metadata_wait_s = create_bucket(zones, run.bucket)
    print(f"bucket {run.bucket} on zone a; user and bucket known on b and c after "
          f"{run.metadata_wait_s:.1f} s", flush=True)
    time.sleep(args.idle)
    run.rss_before = gateway_rss(description)

    count = round(args.rate * args.seconds)
    keys = [object_key(number) for number in range(count)]
    published: dict[str, Put] = {}
    watchers = {name: Watcher(zones[name], run.bucket, keys, published, args.poll)
                for name in DESTINATIONS}
    status = StatusSampler(zones[run.status_zone].admin, run.status_zone, run.bucket,
                           args.status_every)
    memory = MemorySampler(description)
    memory.start()
    status.start()
    for watcher in watchers.values():
        watcher.start()
    try:
        print(f"writing {count} objects to zone a over {args.seconds:g} s", flush=True)
        run.write = write_stream(zones["a"], run.bucket, rate=args.rate, seconds=args.seconds,
                                 size=args.size, workers=args.writers, published=published)
        print(f"writes done: {len(run.write.acked)} acknowledged; waiting for b and c "
              f"(at most {args.timeout:g} s)", flush=True)
        deadline = time.monotonic() + args.timeout
        for watcher in watchers.values():
            watcher.finish(deadline)
        run.watchers = watchers
        acked = sorted(run.write.acked, key=lambda put: put.key)
        sample = acked if args.verify == 0 else \
            random.Random(7).sample(acked, min(args.verify, len(acked)))  # noqa: S311
        for name in DESTINATIONS:
            run.checks.append(verify(zones[name], run.bucket,
                                     ((p.key, p.sha256) for p in sample)))
        # Sync status keeps being read while the gateways settle: it is slower to say
        # "caught up" than the objects are to arrive.
        finished = [w.finished for w in watchers.values() if w.finished is not None]
        quiet_from = max(finished) if finished else time.monotonic()
        time.sleep(max(0.0, args.settle - (time.monotonic() - quiet_from)))
    finally:
        status.stop()
        memory.stop()
    run.status, run.rss_peak = status.samples, memory.peak
    run.settle_s = time.monotonic() - quiet_from
    run.rss_after = gateway_rss(description)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--block", type=int, default=62,
                        help="address block of the lab to boot: 127.B.{1,2,3}.1 (default 62)")
    parser.add_argument("--dir", type=Path, default=Path("/tmp/h62lab"),  # noqa: S108
                        help="lab directory to boot; brought down at the end "
                             "(default /tmp/h62lab)")
    parser.add_argument("--lab-dir", type=Path, default=None, metavar="DIR",
                        help="use the lab already up in DIR and leave it running")
    parser.add_argument("--rate", type=float, default=10.0,
                        help="objects written to zone a per second (default 10)")
    parser.add_argument("--seconds", type=float, default=60.0,
                        help="length of the write stream (default 60)")
    parser.add_argument("--size", type=int, default=2**20,
                        help="bytes per object (default 1048576)")
    parser.add_argument("--writers", type=int, default=4,
                        help="threads sending the PUTs (default 4)")
    parser.add_argument("--poll", type=float, default=0.2,
                        help="seconds between listings of b and of c (default 0.2)")
    parser.add_argument("--status-every", type=float, default=5.0,
                        help="seconds between sync status readings on b (default 5)")
    parser.add_argument("--timeout", type=float, default=300.0,
                        help="after the last PUT, how long to wait for b and c (default 300)")
    parser.add_argument("--verify", type=int, default=0,
                        help="objects to read back from b and c for sha256; 0: all (default)")
    parser.add_argument("--idle", type=float, default=10.0,
                        help="seconds the gateways idle before the first RSS (default 10)")
    parser.add_argument("--settle", type=float, default=30.0,
                        help="seconds after the last object synced before the last RSS "
                             "(default 30)")
    parser.add_argument("--record", type=Path, default=None, metavar="FILE",
                        help="write every object's times and every status reading to FILE "
                             "as JSON")
    parser.add_argument("--rgw-config", action="append", default=[], metavar="NAME=VALUE",
                        help="`ceph config set client.rgw.<site>` on every site first; "
                             "only options a running radosgw applies (repeatable)")
    args = parser.parse_args(argv)
    if min(args.rate, args.seconds, args.size, args.writers, args.poll,
           args.status_every, args.timeout) <= 0 or min(args.verify, args.idle,
                                                       args.settle) < 0:
        parser.error("--rate, --seconds, --size, --writers, --poll, --status-every and "
                     "--timeout must be positive; --verify, --idle and --settle at least 0")
    tuning = dict(setting.split("=", 1) for setting in args.rgw_config if "=" in setting)
    if len(tuning) != len(args.rgw_config):
        parser.error("--rgw-config takes NAME=VALUE")

    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"RGW sync benchmark: {os.cpu_count()} CPUs, load average {load}, "
          f"{other_ceph_daemons()} Ceph daemons running before the lab", flush=True)
    began = time.monotonic()
    run = SyncRun(rate=args.rate, seconds=args.seconds, size=args.size, workers=args.writers,
                  interval=args.poll, bucket=f"sync-bench-{secrets.token_hex(3)}",
                  tuning=tuning)
    lab = LabRun(args.block, args.dir.resolve(),
                 args.lab_dir.resolve() if args.lab_dir else None)
    try:
        try:
            description = lab.up()
            if tuning:
                apply_rgw_config(description, tuning)
                print("radosgw config set on every site: "
                      + ", ".join(f"{k}={v}" for k, v in tuning.items()), flush=True)
            measure(description, args, run)
        finally:
            lab.down()
    except (BenchError, RgwAdminError, ClientError, BotoCoreError,
            subprocess.TimeoutExpired) as error:
        print(f"benchmark failed: {error}", file=sys.stderr)
        return 1
    print_table(run)
    if args.record is not None:
        save_record(run, args.record)
        print(f"\nper-object times and status readings: {args.record}")
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"load average at the end: {load}")
    print(f"\nthe whole run took {time.monotonic() - began:.0f} s", flush=True)
    return 0 if run.write is not None and run.write.acked else 1


if __name__ == "__main__":
    sys.exit(main())
