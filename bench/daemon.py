"""Benchmark one `drd daemon`: start to READY=1, idle cost, /v1/status latency under load.

It boots a lab (or reuses one), then starts a second daemon of site a on its own port,
tokens and state, under a notify socket the benchmark owns, exactly as systemd would.
It prints figures and their ratio to the targets. It exits 0 whatever the figures,
and non-zero only when there is nothing to measure (the lab did not come up, the daemon
never said READY=1 or died); other misbehaviour is printed as a PROBLEM line.

    .venv/bin/python bench/daemon.py [--block 62] [--dir /tmp/bench62/lab]
        [--reuse-lab DIR] [--seconds 30] [--rate 200]
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import psutil
from daemon_process import (
    BenchError,
    NotifySocket,
    Stopped,
    Usage,
    Workspace,
    cpu_percent,
    kill_group,
    prepare_workspace,
    start_daemon,
    stop_daemon,
)
from daemon_report import Report, print_report
from start_profile import import_profile, read_steps

from drd.api.client import ApiClientError, ApiTarget, get_json
from drd.lab.description import LabDescription
from drd.lab.lab_store import load_description

DRD = str(Path(sys.executable).with_name("drd"))
LOAD_GENERATOR = Path(__file__).with_name("status_load.py")
PORT = 8472
SITE = "a"
LAB_UP_TIMEOUT_S = 300.0
LAB_DOWN_TIMEOUT_S = 120.0
SETTLE_S = 5.0  # after READY=1: first heartbeats and Ceph probe, before idle sampling
REQUEST_TIMEOUT_S = 5.0
WORK_NAME = "daemon-bench"  # the second daemon's files: /tmp/bench<BLOCK>/daemon-bench


class LabRun:
    """The lab the benchmark runs against; brings down only a lab it booted itself."""

    def __init__(self, block: int, lab_dir: Path, reuse: Path | None,
                 memstore_gib: int | None = None) -> None:
        self.block = block
        self.dir = reuse or lab_dir
        self.booted = reuse is None
        self.memstore_gib = memstore_gib  # None: `lab up`'s default

    def up(self) -> LabDescription:
        if self.booted:
            if self.dir.exists():
                self.down()  # left behind by an interrupted run of this benchmark
            started = time.monotonic()
            args = ["lab", "up", "--block", str(self.block), "--dir", str(self.dir)]
            if self.memstore_gib is not None:
                args += ["--memstore-gib", str(self.memstore_gib)]
            result = _drd(args, LAB_UP_TIMEOUT_S)
            if result.returncode != 0:
                raise BenchError(f"lab up exited {result.returncode}:\n{result.stderr.strip()}")
            print(f"lab up on block {self.block} in {time.monotonic() - started:.1f} s",
                  flush=True)
        description = load_description(self.dir)
        if description is None:
            raise BenchError(f"{self.dir} holds no lab.json")
        return description

    def down(self) -> None:
        if not self.booted:
            return
        result = _drd(["lab", "down", "--dir", str(self.dir)], LAB_DOWN_TIMEOUT_S)
        if result.returncode != 0:
            raise BenchError(f"lab down exited {result.returncode}:\n{result.stderr.strip()}")


def _drd(args: Sequence[str], timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run([DRD, *args], capture_output=True, text=True, timeout=timeout,
                          check=False)


def measure_starts(workspace: Workspace, notify: NotifySocket, runs: int,
                   report: Report) -> None:
    """Start, READY=1, SIGTERM, exit: `runs` times plain, each followed by an instrumented one.

    Interleaved, so a burst of load on the machine hits both kinds alike.
    """
    stamps = workspace.root / "start-stamps"
    for number in range(1, runs + 1):
        started = start_daemon(workspace, notify)
        stopped = stop_daemon(started.process, notify)
        report.ready_s.append(started.ready_s)
        report.stop_s.append(stopped.stop_s)
        _check_stop(f"start {number}", stopped, report)
        print(f"start {number}: READY=1 after {started.ready_s:.2f} s; SIGTERM to exit "
              f"{stopped.stop_s:.2f} s, code {stopped.exit_code}", flush=True)

        stamps.unlink(missing_ok=True)
        instrumented = start_daemon(workspace, notify, stamps=stamps)
        _check_stop(f"instrumented start {number}", stop_daemon(instrumented.process, notify),
                    report)
        report.steps.append(read_steps(stamps, instrumented.popened_at, instrumented.ready_at))


def _check_stop(what: str, stopped: Stopped, report: Report) -> None:
    if stopped.exit_code != 0:
        report.problems.append(f"{what}: exit code {stopped.exit_code} on SIGTERM")
    if not stopped.said_stopping:
        report.problems.append(f"{what}: no STOPPING=1 before the exit")


@dataclass(frozen=True)
class Subject:
    """The running daemon under measurement, with its files and notify socket."""

    process: psutil.Process
    workspace: Workspace
    notify: NotifySocket


def measure_idle(subject: Subject, seconds: float, report: Report) -> None:
    """RSS each second and the average CPU over `seconds`; then check peers were beating."""
    daemon, notify = subject.process, subject.notify
    mark = notify.mark()
    first = Usage.of(daemon)
    samples = [first]
    while (left := first.at + seconds - time.monotonic()) > 0:
        time.sleep(min(1.0, left))
        samples.append(Usage.of(daemon))
    report.idle_rss = [sample.rss for sample in samples]
    report.idle_cpu_percent = cpu_percent(first, samples[-1])
    report.idle_watchdogs = _watchdogs(notify, mark)
    report.threads = daemon.num_threads()
    # RSS counts shared library pages too; USS is what stopping the daemon would free.
    report.idle_uss = daemon.memory_full_info().uss
    target = ApiTarget(url=subject.workspace.url,
                       token=subject.workspace.token_file.read_text().strip())
    try:
        status = get_json(target, "/v1/status", timeout=REQUEST_TIMEOUT_S)
    except ApiClientError as error:
        report.problems.append(f"idle: /v1/status failed: {error}")
        return
    report.ceph_health = str(status["ceph"]["health"])
    for peer in status["peers"]:
        beating = bool(peer["reachable"]) and peer["last_heartbeat_answered"] is not None
        report.peers[str(peer["name"])] = beating
        if not beating:
            report.problems.append(f"idle: peer {peer['name']} was not answering heartbeats "
                                   f"({peer['last_error'] or 'never answered'})")


@dataclass
class _Sampler:
    """Samples the daemon's RSS in the background while the load runs."""

    daemon: psutil.Process
    peak: int = 0
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        while not self.stop.wait(0.5):
            try:
                self.peak = max(self.peak, self.daemon.memory_info().rss)
            except psutil.Error:
                return  # the daemon died; measure_load notices when it reads CPU times


def _watchdogs(notify: NotifySocket, mark: int) -> int:
    return sum("WATCHDOG=1" in message.splitlines() for message in notify.since(mark))


def measure_load(subject: Subject, rate: float, seconds: float, report: Report) -> None:
    """Open-loop load on /v1/status from a separate process; the daemon's CPU meanwhile."""
    daemon, workspace, notify = subject.process, subject.workspace, subject.notify
    argv = [sys.executable, str(LOAD_GENERATOR), "--url", workspace.url + "/v1/status",
            "--token-file", str(workspace.token_file), "--rate", str(rate),
            "--seconds", str(seconds), "--timeout", str(REQUEST_TIMEOUT_S)]
    generator = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True,
                                 stdin=subprocess.DEVNULL)
    # The generator bounds itself; this only guards against it hanging.
    watchdog = threading.Timer(seconds + REQUEST_TIMEOUT_S + 60, generator.kill)
    watchdog.start()
    sampler = _Sampler(daemon)
    try:
        assert generator.stdout is not None
        if generator.stdout.readline().strip() != "START":
            raise BenchError(f"the load generator failed (exit {generator.wait()})")
        first = Usage.of(daemon)
        mark = notify.mark()
        threading.Thread(target=sampler.run, daemon=True).start()
        line = generator.stdout.readline()
        last = Usage.of(daemon)
        report.load_watchdogs = _watchdogs(notify, mark)
        code = generator.wait()
    finally:
        watchdog.cancel()
        sampler.stop.set()
        if generator.poll() is None:
            generator.kill()
            generator.wait()
    if code != 0 or not line.strip():
        raise BenchError(f"the load generator exited {code} without results")
    report.load = json.loads(line)
    report.load_cpu_percent = cpu_percent(first, last)
    report.load_rss_peak = max(sampler.peak, last.rss)


def run(args: argparse.Namespace, report: Report) -> None:
    lab = LabRun(args.block, args.dir, args.reuse_lab)
    notify: NotifySocket | None = None
    daemon_process: subprocess.Popen[bytes] | None = None
    try:
        description = lab.up()
        site = description.sites[SITE]
        work = Path(tempfile.gettempdir()) / f"bench{description.block}" / WORK_NAME
        workspace = prepare_workspace(site, work, PORT)
        notify = NotifySocket(workspace.notify_path)
        print(f"second daemon of site {SITE} on {workspace.url}; files in {work}", flush=True)

        measure_starts(workspace, notify, args.starts, report)
        report.profile = import_profile()

        started = start_daemon(workspace, notify)
        daemon_process = started.process
        subject = Subject(psutil.Process(daemon_process.pid), workspace, notify)
        time.sleep(SETTLE_S)
        print(f"idle: sampling for {args.idle_seconds:.0f} s", flush=True)
        measure_idle(subject, args.idle_seconds, report)
        print(f"load: {args.rate:.0f} req/s on /v1/status for {args.seconds:.0f} s",
              flush=True)
        measure_load(subject, args.rate, args.seconds, report)
        _check_stop("after the load", stop_daemon(daemon_process, notify), report)
    finally:
        if daemon_process is not None:
            kill_group(daemon_process)
        if notify is not None:
            notify.close()
        lab.down()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--block", type=int, default=62,
                        help="address block of the lab to boot: 127.B.{1,2,3}.1 (default 62)")
    parser.add_argument("--dir", type=Path, default=None,
                        help="lab directory to boot (default /tmp/bench<BLOCK>/lab)")
    parser.add_argument("--reuse-lab", type=Path, default=None, metavar="DIR",
                        help="use the lab already up in DIR and leave it running")
    parser.add_argument("--starts", type=int, default=5, help="timed starts (default 5)")
    parser.add_argument("--idle-seconds", type=float, default=30.0,
                        help="idle sampling window (default 30)")
    parser.add_argument("--seconds", type=float, default=30.0,
                        help="length of the /v1/status load (default 30)")
    parser.add_argument("--rate", type=float, default=200.0,
                        help="/v1/status requests per second (default 200)")
    args = parser.parse_args(argv)
    if args.starts < 1 or args.idle_seconds <= 0 or args.seconds <= 0 or args.rate <= 0:
        parser.error("--starts, --idle-seconds, --seconds and --rate must be positive")
    args.dir = (args.dir or Path(tempfile.gettempdir()) / f"bench{args.block}" / "lab").resolve()
    if args.reuse_lab is not None:
        args.reuse_lab = args.reuse_lab.resolve()

    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"daemon benchmark: {os.cpu_count()} CPUs, load average {load}, "
          f"{other_drd_daemons()} other drd daemons running", flush=True)
    report = Report(rate=args.rate, seconds=args.seconds, idle_seconds=args.idle_seconds)
    try:
        run(args, report)
    except (BenchError, subprocess.TimeoutExpired) as error:
        print(f"benchmark failed: {error}", file=sys.stderr)
        return 1
    except psutil.NoSuchProcess:
        print("benchmark failed: the daemon died while it was measured; its log is in "
              f"{WORK_NAME} under the lab's /tmp/bench<BLOCK>", file=sys.stderr)
        return 1
    # A PROBLEM line (no STOPPING=1, a non-zero exit) is a finding, not a broken benchmark.
    print_report(report)
    return 0


def other_drd_daemons() -> int:
    """`drd daemon` processes this benchmark did not start; they share the CPU."""
    count = 0
    for process in psutil.process_iter(["cmdline"]):
        cmdline: list[str] = process.info["cmdline"] or []
        if "drd" in cmdline and "daemon" in cmdline:
            count += 1
    return count


if __name__ == "__main__":
    sys.exit(main())
