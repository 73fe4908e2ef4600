"""A second `drd daemon` of one lab site, run by the benchmark as systemd would run it.

It gets its own port, tokens and state directory, so it never disturbs the lab's own
daemons, and a notify socket the benchmark owns, so READY=1, STOPPING=1 and the
watchdog pings arrive exactly where systemd would read them. Only processes started
here are ever signalled, and only by their own PID or process group.
"""

import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import psutil
import yaml
from start_profile import STAMPED_MAIN, STAMPS_VARIABLE

from drd.api.tokens import add_token
from drd.lab.description import SiteRecord
from drd.state.store import StateStore

# What systemd/drd.service passes: WatchdogSec=20s, unbuffered logs, tracebacks on abort.
UNIT_ENVIRONMENT = {
    "WATCHDOG_USEC": "20000000",
    "PYTHONUNBUFFERED": "1",
    "PYTHONFAULTHANDLER": "1",
}
STOP_TIMEOUT_S = 30.0


class BenchError(Exception):
    """Something the benchmark needs did not happen, so there is nothing to measure."""


@dataclass(frozen=True)
class Workspace:
    """Config, tokens, state and logs of the benchmark's own daemon."""

    root: Path
    config: Path
    url: str
    token_file: Path  # an operator token valid on this daemon only
    notify_path: Path
    log: Path


def prepare_workspace(site: SiteRecord, root: Path, port: int) -> Workspace:
    """A fresh copy of `site`'s daemon config, moved to `port` with its own tokens and state."""
    if site.drd_config is None:
        raise BenchError(f"site {site.name} has no drd daemon in this lab")
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True, mode=0o700)
    config = yaml.safe_load(site.drd_config.read_text())
    config["api"]["listen"] = f"{site.address}:{port}"
    config["api"]["tokens_file"] = str(root / "tokens.yaml")
    config["paths"]["state_dir"] = str(root / "state")
    config_path = root / "drd.yaml"
    config_path.write_text(yaml.safe_dump(config))
    token = add_token(root / "tokens.yaml", "bench-operator", "operator")
    token_file = root / "operator.token"
    fd = os.open(token_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(token + "\n")
    (root / "state").mkdir(mode=0o700)
    StateStore.initialise(root / "state", site.name).close()
    return Workspace(root=root, config=config_path, url=f"http://{site.address}:{port}",
                     token_file=token_file, notify_path=root / "notify.sock",
                     log=root / "daemon.log")


class NotifySocket:
    """The datagram socket systemd would listen on; the daemon's NOTIFY_SOCKET.

    A thread reads it all the time, as systemd does: the kernel queues only
    net.unix.max_dgram_qlen datagrams (often 10), and the daemon drops what does not fit.
    """

    def __init__(self, path: Path) -> None:
        path.unlink(missing_ok=True)
        self.path = path
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._sock.bind(str(path))
        self._sock.settimeout(0.2)
        self._received: list[tuple[float, str]] = []  # (monotonic arrival, datagram)
        self._arrived = threading.Condition()
        self._closing = threading.Event()
        self._reader = threading.Thread(target=self._read, name="notify-socket", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        while not self._closing.is_set():
            try:
                data = self._sock.recv(4096)
            except TimeoutError:
                continue
            except OSError:
                return
            with self._arrived:
                self._received.append((time.monotonic(), data.decode(errors="replace")))
                self._arrived.notify_all()

    def mark(self) -> int:
        """A position in the stream of datagrams, for `since` and `wait_for`."""
        with self._arrived:
            return len(self._received)

    def since(self, mark: int) -> list[str]:
        with self._arrived:
            return [message for _, message in self._received[mark:]]

    def wait_for(self, wanted: str, mark: int, timeout: float,
                 process: subprocess.Popen[bytes] | None = None) -> float | None:
        """When a datagram after `mark` with the line `wanted` arrived; None on timeout.

        Raises BenchError as soon as `process` (when given) exits instead.
        """
        deadline = time.monotonic() + timeout
        with self._arrived:
            while True:
                for arrived, message in self._received[mark:]:
                    if wanted in message.splitlines():
                        return arrived
                mark = len(self._received)
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                if process is not None and process.poll() is not None:
                    raise BenchError(f"the daemon exited {process.returncode} before {wanted}")
                self._arrived.wait(min(left, 0.1))

    def close(self) -> None:
        self._closing.set()
        self._reader.join()
        self._sock.close()
        self.path.unlink(missing_ok=True)


@dataclass
class Started:
    process: subprocess.Popen[bytes]
    popened_at: float  # monotonic, just before Popen
    ready_at: float  # monotonic, when READY=1 arrived

    @property
    def ready_s(self) -> float:
        return self.ready_at - self.popened_at


def start_daemon(workspace: Workspace, notify: NotifySocket, stamps: Path | None = None,
                 ready_timeout: float = 60.0) -> Started:
    """Start the daemon and wait for READY=1; the wall time includes interpreter start.

    With `stamps`, the start is instrumented (see start_profile) and notes its steps there.
    """
    mark = notify.mark()
    env = {**os.environ, **UNIT_ENVIRONMENT, "NOTIFY_SOCKET": str(notify.path)}
    env.pop("WATCHDOG_PID", None)
    program = ["-m", "drd"]
    if stamps is not None:
        program = ["-c", STAMPED_MAIN]
        env[STAMPS_VARIABLE] = str(stamps)
    with workspace.log.open("ab") as log:
        started = time.monotonic()
        process = subprocess.Popen(
            [sys.executable, *program, "daemon", "--config", str(workspace.config)],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env,
            start_new_session=True)
    try:
        ready = notify.wait_for("READY=1", mark, ready_timeout, process)
    except BenchError as error:
        raise BenchError(f"{error}; its log:\n{tail(workspace.log)}") from None
    if ready is None:
        kill_group(process)
        raise BenchError(f"no READY=1 within {ready_timeout:.0f} s; the daemon's log:\n"
                         f"{tail(workspace.log)}")
    return Started(process=process, popened_at=started, ready_at=ready)


@dataclass(frozen=True)
class Stopped:
    stop_s: float  # SIGTERM to exit
    exit_code: int
    said_stopping: bool


def stop_daemon(process: subprocess.Popen[bytes], notify: NotifySocket) -> Stopped:
    """SIGTERM, as systemd sends it, then wait for the exit; SIGKILL past STOP_TIMEOUT_S."""
    mark = notify.mark()
    started = time.monotonic()
    process.send_signal(signal.SIGTERM)
    try:
        code = process.wait(timeout=STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        kill_group(process)
        raise BenchError(f"the daemon ignored SIGTERM for {STOP_TIMEOUT_S:.0f} s") from None
    elapsed = time.monotonic() - started
    # Sent before the drain, so it is long there; the wait only covers the reader thread.
    said_stopping = notify.wait_for("STOPPING=1", mark, 1.0) is not None
    return Stopped(stop_s=elapsed, exit_code=code, said_stopping=said_stopping)


def kill_group(process: subprocess.Popen[bytes]) -> None:
    """SIGKILL the process group the daemon leads (it was started in a session of its own)."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


@dataclass(frozen=True)
class Usage:
    """CPU seconds (user + system, threads included) and RSS of one process, at one moment."""

    at: float
    cpu_s: float
    rss: int

    @classmethod
    def of(cls, process: psutil.Process) -> "Usage":
        with process.oneshot():
            times = process.cpu_times()
            rss = process.memory_info().rss
        return cls(at=time.monotonic(), cpu_s=times.user + times.system, rss=rss)


def cpu_percent(first: Usage, last: Usage) -> float:
    """Average CPU between two samples, in % of one core."""
    return 100 * (last.cpu_s - first.cpu_s) / max(last.at - first.at, 1e-9)


def tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"
