"""Benchmark RGW zone failover and failback on the lab: a's gateway dies, b is writable
how soon; and how long giving the master role back to a takes.

Each run kills zone a's radosgw (SIGKILL, by PID, nothing else), promotes zone b with
force (with a's gateway gone Ceph cannot prove b caught up), and retries creating a
new bucket and writing an object on b until both succeed: that is the promote time,
from the kill. Then it fails back to a, which pulls the realm on a, starts a's gateway,
waits for a to catch up, promotes a and waits for b and c to follow: the failback
time. It prints figures and their ratio to the target; it never fails on a timing,
only when the failover itself fails.

    .venv/bin/python bench/rgw_failover.py [--runs 3] [--block 60] [--lab-dir DIR]
"""

import argparse
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from drd.ceph.rgw_admin import RgwAdmin, RgwAdminError, S3Keys
from drd.ceph.rgw_failback import failback_zone
from drd.ceph.rgw_failover import current_period, promote_zone
from drd.ceph.rgw_multisite import ensure_user
from drd.lab.description import LabDescription
from drd.lab.lab_store import load_description
from drd.lab.rgw_gateways import LabGateways, lab_zones
from drd.lab.rgw_lab import LAB_CITY, read_system_keys

DRD = str(Path(sys.executable).with_name("drd"))
PROMOTE_TARGET_S = 30.0
WRITABLE_DEADLINE_S = 120.0
METADATA_DEADLINE_S = 120.0
TENANT_UID = "bench-failover"


class BenchError(Exception):
    """The lab or the failover misbehaved, so there is nothing meaningful to measure."""


@dataclass(frozen=True)
class RunFigures:
    writable_s: float  # a's gateway killed -> b accepted a new bucket and object
    promote_call_s: float
    failback_s: float
    gateway_start_s: float  # within failback: start a's gateway on the pulled period
    follow_s: float  # within failback: the slowest other zone to follow the new period


def s3_client(url: str, keys: S3Keys) -> Any:
    return boto3.client(
        "s3", endpoint_url=url, aws_access_key_id=keys.access_key,
        aws_secret_access_key=keys.secret_key, region_name="city",
        config=Config(retries={"max_attempts": 1}, connect_timeout=3, read_timeout=30,
                      s3={"addressing_style": "path"}))


def first_write(client: Any, bucket: str) -> None:
    deadline = time.monotonic() + WRITABLE_DEADLINE_S
    while True:
        try:
            client.create_bucket(Bucket=bucket)
            client.put_object(Bucket=bucket, Key="first", Body=b"written on the new master")
            return
        except (ClientError, BotoCoreError) as error:
            if time.monotonic() > deadline:
                raise BenchError(f"b accepted no write within {WRITABLE_DEADLINE_S:.0f} s: "
                                 f"{error}") from error
            time.sleep(0.2)


def wait_metadata(description: LabDescription, *command: str) -> None:
    deadline = time.monotonic() + METADATA_DEADLINE_S
    for name in ("b", "c"):
        admin = RgwAdmin(description.sites[name].conf)
        while True:
            try:
                admin.json(*command)
                break
            except RgwAdminError as error:
                if time.monotonic() > deadline:
                    raise BenchError(f"{' '.join(command)} never reached {name}") from error
                time.sleep(0.5)


def one_run(description: LabDescription, keys: S3Keys, tenant: S3Keys) -> RunFigures:
    zones, gateways = lab_zones(description), LabGateways(description.dir)
    if current_period(zones["b"], LAB_CITY).master_zone != "a":
        raise BenchError("zone a is not master at the start of the run")
    url_b = description.sites["b"].rgw_url
    assert url_b is not None
    killed = time.monotonic()
    gateways.kill("a")
    promoted = promote_zone(zones["b"], LAB_CITY, gateways, force=True)
    first_write(s3_client(url_b, tenant), f"bench-fo-{secrets.token_hex(3)}")
    writable_s = time.monotonic() - killed
    back = failback_zone(zones["a"], [zones["b"], zones["c"]], LAB_CITY, keys, gateways)
    if back.master_after != "a" or not gateways.running("a"):
        raise BenchError(f"failback left master {back.master_after}")
    start = sum(s.elapsed_s for s in back.steps if s.name == "start gateways")
    follow = max((s.elapsed_s for s in back.steps if s.name == "zone follows"), default=0.0)
    return RunFigures(writable_s, promoted.elapsed_s, back.elapsed_s, start, follow)


def figure_row(label: str, values: Sequence[float], target: float | None = None) -> str:
    low, median, high = min(values), statistics.median(values), max(values)
    row = f"{label:<34}{low:>8.1f}{median:>8.1f}{high:>8.1f}"
    if target is not None:
        row += f"{target:>8.1f}{median / target:>11.2f}{high / target:>9.2f}"
    return row


def run_drd(*args: str, timeout: float) -> None:
    result = subprocess.run([DRD, *args], capture_output=True, text=True, timeout=timeout,
                            check=False)
    if result.returncode != 0:
        raise BenchError(f"drd {' '.join(args)} exited {result.returncode}:\n"
                         f"{result.stderr.strip()}")


def bench(description: LabDescription, runs: int) -> list[RunFigures]:
    assert description.rgw_system_keys_file is not None
    keys = read_system_keys(description.rgw_system_keys_file)
    tenant = ensure_user(RgwAdmin(description.sites["a"].conf), TENANT_UID, "Failover bench")
    wait_metadata(description, "user", "info", "--uid", TENANT_UID)
    figures = []
    for number in range(1, runs + 1):
        run = one_run(description, keys, tenant)
        print(f"run {number}: b writable {run.writable_s:.1f} s after the kill (promote "
              f"{run.promote_call_s:.1f} s); failback {run.failback_s:.1f} s (a's gateway "
              f"start {run.gateway_start_s:.1f} s, slowest zone to follow "
              f"{run.follow_s:.1f} s)", flush=True)
        figures.append(run)
    return figures


def print_summary(runs: Sequence[RunFigures]) -> None:
    header = f"{'figure':<34}{'min':>8}{'median':>8}{'max':>8}"
    print(f"\n{len(runs)} runs\n\n{header}{'target':>8}{'med/target':>11}{'max/tgt':>9}")
    print("-" * (len(header) + 28))
    print(figure_row("kill a -> b writable (s)", [r.writable_s for r in runs],
                     PROMOTE_TARGET_S))
    print(figure_row("promote_zone call (s)", [r.promote_call_s for r in runs]))
    print(figure_row("failback_zone call (s)", [r.failback_s for r in runs]))
    print(figure_row("  start a's gateway (s)", [r.gateway_start_s for r in runs]))
    print(figure_row("  slowest zone follows (s)", [r.follow_s for r in runs]))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=3, help="failover/failback cycles")
    parser.add_argument("--block", type=int, default=60,
                        help="address block of the lab it boots (default 60)")
    parser.add_argument("--lab-dir", type=Path, default=None,
                        help="reuse the lab that is up there (left running), instead of "
                             "booting one in /tmp/bench<BLOCK>/rgw-failover")
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    lab_dir: Path = args.lab_dir or \
        Path(tempfile.gettempdir()) / f"bench{args.block}" / "rgw-failover"
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"RGW failover benchmark: {os.cpu_count()} CPUs, load average {load}")
    try:
        if args.lab_dir is None:
            run_drd("lab", "up", "--dir", str(lab_dir), "--block", str(args.block),
                    timeout=600)
        description = load_description(lab_dir)
        if description is None:
            raise BenchError(f"no lab at {lab_dir}")
        runs = bench(description, args.runs)
    except (BenchError, RgwAdminError, subprocess.TimeoutExpired) as error:
        print(f"benchmark failed: {error}", file=sys.stderr)
        return 1
    finally:
        if args.lab_dir is None:
            run_drd("lab", "down", "--dir", str(lab_dir), timeout=180)
    print_summary(runs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
