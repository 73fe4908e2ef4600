"""Benchmark automatic takeover: production lost to the same-city site writable, for 100
images, with drd's default detector, heartbeat and lease settings.

Each run boots a fresh lab (its drd configs reset to the default heartbeat and reloaded),
creates the tenant's images on site a (by default 50 journal and 50 snapshot of 8 MiB),
applies a policy with `takeover: automatic` on every site, waits until site b holds every
image by sha256 (and holds a complete copy of each snapshot-mode image's newest
mirror snapshot) and every site has promised a the lease, then SIGKILLs every process of
site a at once. It then polls site b's daemon every 0.1 s and reports, from the kill:

- detection: b's failure detector first shows a lost;
- lease: b was promised epoch 2 by a majority (its own voter and c's, the witness);
- writable: the takeover run's forced promotion proved the last image writable (a writer
  can take its lock), as the step says; the step then restarts the replayers it fenced;
- and, separately, the fencing wait (lease minus detection) and the promote time
  (writable minus lease).

It checks that b's copies hold every byte (sha256) and that nothing of site a answers.
The summary gives median and p95 against the targets of issue 8 (15 s and 25 s).

    .venv/bin/python bench/takeover.py [--runs 10] [--block 66] [--dir /tmp/bench66]
        [--journal 50] [--snapshot 50] [--size-mib 8]
"""

import argparse
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Sequence
from datetime import datetime, timedelta
from datetime import time as time_of_day
from functools import partial
from pathlib import Path
from typing import Any

import runbook_lab as lab_ops
import yaml
from daemon_process import BenchError
from runbook_lab import MIB, Tenant

from drd.api.tokens import read_secret_file
from drd.lab.description import DaemonRole, LabDescription
from drd.lab.lab_store import load_description

DRD = str(Path(sys.executable).with_name("drd"))
TENANT = "water"  # a tenant the lab grants, rbd/water
TARGET_MEDIAN_S = 15.0
TARGET_P95_S = 25.0
POLL_S = 0.1


def _drd(*args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run([DRD, *args], capture_output=True, text=True, timeout=timeout,
                          check=False)


def _api(lab: LabDescription, site: str, path: str) -> dict[str, Any]:
    assert lab.operator_token_file is not None
    request = urllib.request.Request(  # noqa: S310 (the lab's own http:// URL)
        f"{lab.sites[site].api_url}{path}",
        headers={"Authorization": f"Bearer {read_secret_file(lab.operator_token_file)}"})
    with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310
        answer: dict[str, Any] = json.loads(response.read())
        return answer


def _default_heartbeats(lab: LabDescription) -> None:
    """The lab beats every second for demo pace; the bench measures drd's defaults."""
    for site in lab.sites.values():
        assert site.drd_config is not None
        config = yaml.safe_load(site.drd_config.read_text())
        config.pop("heartbeat", None)
        site.drd_config.write_text(yaml.safe_dump(config))
        drd = site.process(DaemonRole.DRD)
        assert drd is not None
        os.kill(drd.pid, signal.SIGHUP)


def _policy(tenant: Tenant, path: Path) -> Path:
    path.write_text(yaml.safe_dump({"tenant": TENANT, "protection": {"block": [
        {"name": "databases", "pool": "rbd", "namespace": TENANT,
         "images": [f"{lab_ops.JOURNAL_PREFIX}*"], "takeover": "automatic",
         "same_city": {"mode": "journal", "rpo_target": "30s"},
         "remote": {"mode": "snapshot", "interval": "5m", "rpo_target": "15m"}},
        {"name": "volumes", "pool": "rbd", "namespace": TENANT,
         "images": [f"{lab_ops.SNAPSHOT_PREFIX}*"], "takeover": "automatic",
         "same_city": {"mode": "snapshot", "interval": "1m", "rpo_target": "2m"},
         "remote": {"mode": "snapshot", "interval": "5m", "rpo_target": "15m"}}]}}))
    return path


def _wait(check: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise BenchError(f"not within {timeout:.0f} s: {what}")
        time.sleep(0.5)


def _leases(lab: LabDescription, site: str) -> list[dict[str, Any]]:
    leases: list[dict[str, Any]] = _api(lab, site, "/v1/status")["leases"]
    return leases


def _held_by(lab: LabDescription, site: str, holder: str) -> bool:
    leases = _leases(lab, site)
    return len(leases) == 2 and all(lease["holder"] == holder for lease in leases)


def _revive_mirrors(lab: LabDescription) -> None:
    """rbd-mirror 16.2.15 can die bootstrapping 50 journal images at once (~ImageWatcher:
    FAILED ceph_assert(m_pending_ops == 0)); `lab up` restarts it, as systemd would."""
    current = load_description(lab.dir) or lab
    if lab_ops.dead_mirrors(current):
        print(f"restarting dead {', '.join(lab_ops.dead_mirrors(current))}", flush=True)
        _drd("lab", "up", "--dir", str(lab.dir), "--block", str(lab.block))


def prepare(args: argparse.Namespace, lab_dir: Path, tenant: Tenant) -> LabDescription:
    up = _drd("lab", "up", "--dir", str(lab_dir), "--block", str(args.block),
              "--memstore-gib", "4")
    if up.returncode != 0:
        raise BenchError(f"lab up failed: {up.stderr.strip()[-500:]}")
    lab = load_description(lab_dir)
    assert lab is not None
    _default_heartbeats(lab)
    lab_ops.create_images(lab, tenant)
    policy = _policy(tenant, lab_dir.parent / "water.yaml")
    assert lab.operator_token_file is not None
    for site in lab.sites.values():
        applied = subprocess.run(
            [DRD, "policy", "apply", str(policy), "--config", str(site.drd_config)],
            capture_output=True, text=True, timeout=60, check=False,
            env={**os.environ, "DRD_TOKEN": read_secret_file(lab.operator_token_file)})
        if applied.returncode != 0:
            raise BenchError(f"policy apply on {site.name}: {applied.stderr.strip()}")
    expected = lab_ops.checksums(lab.sites["a"].conf, tenant)
    # Revived here too: a b whose rbd-mirror died bootstrapping never caught up (2 runs
    # of 10 failed setup so, "images differ on b after 300 s").
    _, pending = lab_ops.wait_equal(lab.sites["b"].conf, tenant, expected, 300,
                                    lambda: _revive_mirrors(lab))
    if pending:
        raise BenchError(f"{len(pending)} images differ on b after 300 s")
    # A copy can read equal before rbd-mirror marks it complete; the takeover's forced
    # promote would then roll it back (1 run of 13 "differed on 1 image" so).
    lab_ops.wait_snapshot_copies(lab, "b", tenant, 300, lambda: _revive_mirrors(lab))
    lab_ops.wait_replaying(lab, tenant, 300, lambda: _revive_mirrors(lab))
    for name in "abc":
        _wait(partial(_held_by, lab, name, "a"), 60, f"{name} promised a the lease")
    return lab


def one_run(lab: LabDescription, tenant: Tenant) -> dict[str, float]:
    expected = lab_ops.checksums(lab.sites["a"].conf, tenant)
    victims = [p.pid for p in lab.sites["a"].processes]
    killed = time.time()
    for pid in victims:
        os.kill(pid, signal.SIGKILL)
    detected: float | None = None
    deadline = time.monotonic() + 120
    status: dict[str, Any] = {}
    while True:
        if time.monotonic() > deadline:
            raise BenchError(f"b did not start a takeover within 120 s; b says: "
                             f"peers {[(p['name'], p['detector']) for p in status['peers']]}, "
                             f"leases {status['leases']}")
        try:
            status = _api(lab, "b", "/v1/status")
        except OSError:
            time.sleep(POLL_S)
            continue
        peer_a = next(p for p in status["peers"] if p["name"] == "a")
        if detected is None and peer_a["detector"] == "lost":
            detected = time.time()
        taken = next((lease["takeover"] for lease in status["leases"]
                      if lease["takeover"].get("run")), None)
        if taken is not None:
            break
        time.sleep(POLL_S)
    promote = _promoted(lab, int(taken["run"]))
    writable = _writable_at(promote)
    promised = datetime.fromisoformat(taken["promised_at"]).timestamp()
    on_b = lab_ops.checksums(lab.sites["b"].conf, tenant)
    if on_b != expected:
        # Seen once in 13 runs, with nothing kept to explain it: name the images, and
        # say what the promotion said of them.
        differing = sorted(n for n, d in expected.items() if on_b[n] != d)
        told = [line for line in promote["output"] if any(n in line for n in differing)]
        raise BenchError(f"b differs on {len(differing)} images: {', '.join(differing)}; "
                         f"the promotion said: {told}")
    assert detected is not None
    step_started = datetime.fromisoformat(promote["started_at"]).timestamp()
    phases = next((line for line in promote["output"] if line.startswith("phases")), "")
    print(f"  the run's forced promotion started {step_started - promised:.2f} s after the "
          f"lease and took {float(promote['seconds']):.2f} s; {phases}")
    return {"detection": detected - killed, "lease": promised - killed,
            "writable": writable - killed, "fencing wait": promised - detected,
            "promote": writable - promised}


def _promoted(lab: LabDescription, run_id: int) -> dict[str, Any]:
    """The takeover run's forced promotion, once it ended: b writable at its end. The
    rest of the run (the remote site following, the RPO) is protection, not RTO."""
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        run = _api(lab, "b", f"/v1/runs/{run_id}")
        step: dict[str, Any] = next(s for s in run["steps"]
                                    if s["name"] == "force-promote-target")
        if step["state"] == "succeeded":
            return step
        if step["state"] not in ("pending", "running"):
            raise BenchError(f"the forced promotion {step['state']}: {step['error']}")
        time.sleep(POLL_S)
    raise BenchError("the forced promotion did not end within 180 s")


def _writable_at(promote: dict[str, Any]) -> float:
    """When the step proved the last image writable ("... all writable at HH:MM:SS.f",
    UTC): before its end, which also restarts the fenced replayers."""
    started = datetime.fromisoformat(promote["started_at"])
    said = next((m for line in promote["output"]
                 if (m := re.search(r"all writable at (\d\d:\d\d:\d\d\.\d+)", line))), None)
    if said is None:
        raise BenchError(f"the forced promotion did not say when all was writable: "
                         f"{promote['output'][-3:]}")
    at = datetime.combine(started.date(), time_of_day.fromisoformat(said.group(1)),
                          tzinfo=started.tzinfo)
    if at < started:  # past midnight
        at += timedelta(days=1)
    return at.timestamp()


def _p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--block", type=int, default=66)
    parser.add_argument("--dir", type=Path, default=None)
    parser.add_argument("--journal", type=int, default=50)
    parser.add_argument("--snapshot", type=int, default=50)
    parser.add_argument("--size-mib", type=int, default=8)
    parser.add_argument("--keep", action="store_true",
                        help="leave each run's lab up, to look at it (lab down yourself)")
    args = parser.parse_args(argv)
    work = args.dir or Path(tempfile.gettempdir()) / f"bench{args.block}" / "takeover"
    tenant = lab_ops.make_tenant(TENANT, args.journal, args.snapshot, args.size_mib * MIB)
    print(f"takeover benchmark: block {args.block}, {os.cpu_count()} CPUs, {args.journal} "
          f"journal + {args.snapshot} snapshot images of {args.size_mib} MiB, "
          f"{args.runs} runs", flush=True)
    figures: list[dict[str, float]] = []
    failures: list[str] = []
    for number in range(1, args.runs + 1):
        lab_dir = work / f"run{number}" / "lab"
        shutil.rmtree(lab_dir.parent, ignore_errors=True)
        lab_dir.parent.mkdir(parents=True)
        try:
            lab = prepare(args, lab_dir, tenant)
            found = one_run(lab, tenant)
            figures.append(found)
            print(f"run {number}: " + ", ".join(f"{k} {v:.2f} s" for k, v in found.items()),
                  flush=True)
        except BenchError as error:
            failures.append(f"run {number}: {error}")
            print(f"run {number}: FAILED: {error}", flush=True)
        finally:
            if not args.keep:
                _drd("lab", "down", "--dir", str(lab_dir))
    print(f"\n{'figure (s after a was killed)':<32} {'runs':>4} {'median':>8} {'p95':>8} "
          f"{'max':>8}")
    for name in ("detection", "lease", "writable", "fencing wait", "promote"):
        values = [f[name] for f in figures]
        if values:
            print(f"{name:<32} {len(values):>4} {statistics.median(values):>8.2f} "
                  f"{_p95(values):>8.2f} {max(values):>8.2f}")
    writable = [f["writable"] for f in figures]
    if writable:
        print(f"\nwritable: median {statistics.median(writable):.2f} s against "
              f"{TARGET_MEDIAN_S:.0f} s ({statistics.median(writable) / TARGET_MEDIAN_S:.2f}),"
              f" p95 {_p95(writable):.2f} s against {TARGET_P95_S:.0f} s "
              f"({_p95(writable) / TARGET_P95_S:.2f})")
    for failure in failures:
        print(f"PROBLEM: {failure}")
    return 1 if failures or not figures else 0


if __name__ == "__main__":
    sys.exit(main())
