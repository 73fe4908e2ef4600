"""The benchmark's own `drd daemon` of site a, restarted after a crash as systemd would.

drd.service has Restart=on-failure; a benchmark that stopped at the first crash
would measure nothing after it. Each crash is recorded with its exit status and the
reason the daemon's log gives (a Ceph assert, a Python fatal error), then the daemon
is started again on the same files, so it reloads the stored policies.
"""

import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

import psutil
from daemon_process import (
    BenchError,
    NotifySocket,
    Started,
    Stopped,
    Workspace,
    kill_group,
    start_daemon,
    stop_daemon,
)

T = TypeVar("T")
MON_PORT = 3300
# Lines of a dying daemon's log that say why it died, most telling first.
CAUSE_MARKERS = ("FAILED ceph_assert", "Fatal Python error", "Traceback", "Error")


@dataclass(frozen=True)
class Crash:
    at: float  # monotonic, when the benchmark noticed
    exit_code: int  # negative: killed by that signal
    cause: str
    threads: str  # where each Python thread was in drd's code, from faulthandler


@dataclass
class DaemonRunner:
    workspace: Workspace
    notify: NotifySocket
    restarts_left: int = 5
    crashes: list[Crash] = field(default_factory=list)
    began: float = field(default_factory=time.monotonic)  # crash times count from here
    _popen: subprocess.Popen[bytes] | None = None
    _process: psutil.Process | None = None
    _log_offset: int = 0

    def start(self) -> Started:
        self._log_offset = self.workspace.log.stat().st_size if self.workspace.log.exists() else 0
        started = start_daemon(self.workspace, self.notify)
        self._popen = started.process
        self._process = psutil.Process(started.process.pid)
        return started

    @property
    def process(self) -> psutil.Process:
        if self._process is None:
            raise BenchError("the daemon is not running")
        return self._process

    def crashed(self) -> bool:
        """Whether the daemon died since the last look; if so, record it and restart it."""
        if self._popen is None or self._popen.poll() is None:
            return False
        cause, threads = self._cause()
        self.crashes.append(Crash(time.monotonic(), self._popen.returncode, cause, threads))
        print(f"PROBLEM: the daemon died (exit {self._popen.returncode}) at "
              f"+{time.monotonic() - self.began:.0f} s: {cause}", flush=True)
        if self.restarts_left <= 0:
            raise BenchError(f"the daemon died {len(self.crashes)} times; giving up")
        self.restarts_left -= 1
        started = self.start()
        print(f"restarted the daemon, READY=1 after {started.ready_s:.2f} s", flush=True)
        return True

    def call(self, action: Callable[[], T]) -> T | None:
        """`action()`, or None when it failed because the daemon died (it is restarted)."""
        try:
            return action()
        except BenchError:
            time.sleep(0.5)  # let a dying process finish dying before looking
            if self.crashed():
                return None
            raise

    def _cause(self) -> tuple[str, str]:
        try:
            with self.workspace.log.open("rb") as log:
                log.seek(self._log_offset)
                lines = log.read().decode(errors="replace").splitlines()
        except OSError:
            return "no log", ""
        cause = next((line.strip() for marker in CAUSE_MARKERS for line in lines
                      if marker in line), lines[-1] if lines else "empty log")
        return cause[:200], _drd_frames(lines)

    def mon_sessions(self, sites: dict[str, str]) -> dict[str, int]:
        """Site -> the daemon's established connections to that site's mon (address ->
        site in `sites`): one per open librados handle."""
        counts = dict.fromkeys(sites.values(), 0)
        for connection in self.process.net_connections(kind="tcp"):
            remote = connection.raddr
            if (connection.status == psutil.CONN_ESTABLISHED and remote
                    and remote.port == MON_PORT and remote.ip in sites):
                counts[sites[remote.ip]] += 1
        return counts

    def stop(self) -> Stopped | None:
        if self._popen is None or self._popen.poll() is not None:
            return None
        return stop_daemon(self._popen, self.notify)

    def kill(self) -> None:
        if self._popen is not None:
            kill_group(self._popen)


def _drd_frames(lines: list[str]) -> str:
    """Where each Python thread was in drd's code when the process died (faulthandler's
    dump, innermost frame of each thread), e.g. two threads on one librados handle."""
    innermost: list[str] = []
    in_thread = False
    for line in lines:
        if line.startswith(("Thread 0x", "Current thread")):
            in_thread = True
        elif (in_thread and "/drd/" in line and line.strip().startswith("File ")
              and not any(skip in line for skip in ("/drd/cli/", "/drd/__main__"))):
            path, _, where = line.strip().removeprefix('File "').partition('", ')
            innermost.append(f"{path.split('/drd/', 1)[1]} {where}")
            in_thread = False
    return "; ".join(sorted(set(innermost)))
