"""Start lab daemons, tell whether they still run, and stop them by PID.

Every daemon runs in the foreground (`-f`) in a session of its own, so its PID is
known from the start and its whole process group can be signalled. A record's
`create_time` guards against signalling an unrelated process that reused the PID.
"""

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import psutil

from drd.lab.description import DaemonRole, ProcessRecord
from drd.lab.site_cgroups import joining_argv

# psutil reports create_time rounded to clock ticks; allow for that.
_CREATE_TIME_SLACK = 0.05


@dataclass
class Started:
    """A daemon this process has just spawned: its record, and the handle to reap it."""

    record: ProcessRecord
    handle: subprocess.Popen[bytes]


def start_daemon(role: DaemonRole, entity: str, argv: list[str], *, log: Path,
                 console: Path, env: dict[str, str] | None = None,
                 cgroup: Path | None = None) -> Started:
    """Spawn one daemon in its own session, its console output going to `console`, inside
    the cgroup v2 group `cgroup` when given."""
    extra_env = env or {}
    with console.open("ab") as out:
        handle = subprocess.Popen(
            joining_argv(cgroup, argv), stdin=subprocess.DEVNULL, stdout=out,
            stderr=subprocess.STDOUT, env={**os.environ, **extra_env}, start_new_session=True,
        )
    try:
        create_time = psutil.Process(handle.pid).create_time()
    except psutil.NoSuchProcess:
        create_time = 0.0  # died at once; is_running() will say so
    record = ProcessRecord(role=role, entity=entity, pid=handle.pid, create_time=create_time,
                           argv=argv, env=extra_env, log=log, console=console)
    return Started(record=record, handle=handle)


def find_process(record: ProcessRecord) -> psutil.Process | None:
    """The live process behind `record`, or None if it has exited or the PID was reused."""
    try:
        process = psutil.Process(record.pid)
        if abs(process.create_time() - record.create_time) > _CREATE_TIME_SLACK:
            return None
        if process.status() == psutil.STATUS_ZOMBIE:
            return None
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return None
    return process


def is_running(record: ProcessRecord) -> bool:
    return find_process(record) is not None


def resident_bytes(records: Sequence[ProcessRecord]) -> int:
    """Total RSS of the live processes among `records`."""
    total = 0
    for record in records:
        process = find_process(record)
        if process is not None:
            try:
                total += process.memory_info().rss
            except psutil.NoSuchProcess:
                continue
    return total


@dataclass(frozen=True)
class StopOutcome:
    record: ProcessRecord
    killed: bool  # True when SIGTERM was not enough


def _signal_group(process: psutil.Process, sig: signal.Signals) -> None:
    # Daemons lead their own session, so their group is theirs alone.
    try:
        if os.getpgid(process.pid) == process.pid:
            os.killpg(process.pid, sig)
        else:
            process.send_signal(sig)
    except (ProcessLookupError, psutil.NoSuchProcess):
        pass


def stop_processes(records: Sequence[ProcessRecord], grace: float) -> list[StopOutcome]:
    """SIGTERM every live process in `records`, then SIGKILL what is left after `grace` s."""
    live = [(record, process) for record in records
            if (process := find_process(record)) is not None]
    for _, process in live:
        _signal_group(process, signal.SIGTERM)
    survivors = _wait_exited([p for _, p in live], grace)
    for process in survivors:
        _signal_group(process, signal.SIGKILL)
    unkillable = _wait_exited(survivors, 5)
    if unkillable:
        pids = ", ".join(str(p.pid) for p in unkillable)
        raise RuntimeError(f"processes {pids} survived SIGKILL")
    killed_pids = {p.pid for p in survivors}
    return [StopOutcome(record, record.pid in killed_pids) for record, _ in live]


def stop_pids(pids: Sequence[int], grace: float) -> list[str]:
    """SIGTERM each PID, SIGKILL those left after `grace`; `name (pid N)` of each stopped."""
    found: list[psutil.Process] = []
    names: list[str] = []
    for pid in pids:
        try:
            process = psutil.Process(pid)
            names.append(f"{process.name()} (pid {pid})")
            process.terminate()
            found.append(process)
        except psutil.NoSuchProcess:
            continue
    for process in _wait_exited(found, grace):
        with contextlib.suppress(psutil.NoSuchProcess):
            process.kill()
    return names


def _exited(process: psutil.Process) -> bool:
    try:
        return process.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def _wait_exited(processes: list[psutil.Process], timeout: float) -> list[psutil.Process]:
    """Wait until each process has exited; return those still running after `timeout`.

    A daemon that outlived the `lab up` that started them is reaped by init, which
    may take seconds; a zombie has stopped all the same, so it counts as exited.
    """
    deadline = time.monotonic() + timeout
    running = list(processes)
    while running and time.monotonic() < deadline:
        running = [p for p in running if not _exited(p)]
        if running:
            time.sleep(0.05)
    return [p for p in running if not _exited(p)]


def wait_for_exit_or(handle: subprocess.Popen[bytes], seconds: float) -> int | None:
    """Wait up to `seconds` for a spawned daemon to exit; its exit code, or None if it runs."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        code = handle.poll()
        if code is not None:
            return code
        time.sleep(0.05)
    return handle.poll()


def tail(path: Path, lines: int = 20) -> str:
    """The last `lines` lines of a log, for error messages."""
    try:
        with path.open("rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - 64 * 1024))
            text = handle.read().decode("utf-8", errors="replace")
    except FileNotFoundError:
        return f"({path} does not exist)"
    return "\n".join(text.splitlines()[-lines:])
