"""Writers on site a while a drill runs: bench/rbd_write_load.py as a process of its own,
so its CPU and its GIL are not the engine's, started and stopped by its PID only."""

import json
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import IO, Any

from daemon_process import BenchError

WRITE_LOAD = Path(__file__).with_name("rbd_write_load.py")
START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 60.0
LONGEST_S = 7200.0  # the process's own bound, should the benchmark never stop it


class Writers:
    """Random 4 KiB writes at `rate` a second over `images`, each flushed every 0.2 s."""

    def __init__(self, conf: Path, namespace: str, images: list[str], rate: float) -> None:
        self._argv = [sys.executable, str(WRITE_LOAD), "--conf", str(conf),
                      "--namespace", namespace, "--images", ",".join(images),
                      "--rate", str(rate), "--seconds", str(LONGEST_S)]
        self._process: subprocess.Popen[str] | None = None
        self.images = images
        self.result: dict[str, Any] | None = None

    def start(self) -> None:
        """Start the writers; return once every image is open and writes are due."""
        process = subprocess.Popen(self._argv, stdout=subprocess.PIPE, text=True)
        self._process = process
        assert process.stdout is not None
        if _first_line(process.stdout, START_TIMEOUT_S) != "START":
            self.stop()
            raise BenchError(f"the writers did not start within {START_TIMEOUT_S:.0f} s "
                             f"(exit {process.poll()})")

    def stop(self) -> dict[str, Any] | None:
        """SIGTERM by PID, then what the writers report; SIGKILL if they hang."""
        process, self._process = self._process, None
        if process is None:
            return self.result
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        try:
            out, _ = process.communicate(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()
            return None
        lines = [line for line in out.splitlines() if line.startswith("{")]
        self.result = json.loads(lines[-1]) if lines else None
        return self.result


def _first_line(stream: IO[str], timeout: float) -> str:
    """The stream's first line, or "" once `timeout` passes without one."""
    found: list[str] = []
    reader = threading.Thread(target=lambda: found.append(stream.readline()), daemon=True)
    reader.start()
    reader.join(timeout)
    return found[0].strip() if found else ""


def describe(result: dict[str, Any] | None, seconds: float) -> str:
    if result is None:
        return "the writers reported nothing"
    latency = result.get("latency_ms", {})
    return (f"{result.get('done', 0)} writes in {seconds:.0f} s "
            f"({result.get('achieved_rate', 0.0):.0f}/s), {result.get('errors', 0)} errors, "
            f"latency p50 {latency.get('p50', 0.0):.1f} ms, p99 {latency.get('p99', 0.0):.1f} "
            f"ms, max {latency.get('max', 0.0):.0f} ms")
