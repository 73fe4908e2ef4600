"""Where a daemon start's time goes: the interpreter, the imports, then drd's own start.

An instrumented start runs exactly what `python -m drd daemon` runs (drd/__main__.py
only imports drd.cli.main and calls main()), but first notes CLOCK_MONOTONIC, the same
clock in every process, after each import step. With the benchmark's own clock at
Popen and at READY=1 that splits one start into its steps. The import profile
(`python -X importtime`) then attributes import time to top-level packages.
"""

import statistics
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

# What `drd daemon` imports before it reads its config: the CLI, then the daemon.
DAEMON_IMPORT = "import drd.cli.main, drd.daemon.lifecycle"
STAMPS_VARIABLE = "DRD_BENCH_STAMPS"
# sys.argv[1:] is the daemon's command line, as click reads it.
STAMPED_MAIN = f"""
import os, time
t0 = time.monotonic()
import drd.cli.main
t1 = time.monotonic()
import drd.daemon.lifecycle
t2 = time.monotonic()
with open(os.environ.pop("{STAMPS_VARIABLE}"), "w") as stamps:
    stamps.write(f"{{t0}} {{t1}} {{t2}}")
drd.cli.main.main()
"""


@dataclass(frozen=True)
class StartSteps:
    """Seconds one start spent on each step, Popen to READY=1."""

    interpreter_s: float  # fork, exec, interpreter and site start
    cli_import_s: float  # import drd.cli.main
    daemon_import_s: float  # then import drd.daemon.lifecycle
    rest_s: float  # config, tokens, state db, app, listen, then READY=1

    @property
    def imports_done_s(self) -> float:
        return self.interpreter_s + self.cli_import_s + self.daemon_import_s


def read_steps(stamps: Path, popened_at: float, ready_at: float) -> StartSteps:
    """Split one instrumented start, given the benchmark's monotonic clock at both ends."""
    started, cli, daemon = (float(value) for value in stamps.read_text().split())
    return StartSteps(started - popened_at, cli - started, daemon - cli, ready_at - daemon)


@dataclass(frozen=True)
class ImportProfile:
    """`python -X importtime` figures; its own overhead inflates every one a little."""

    total_s: float
    by_package: list[tuple[str, float]]  # self time summed per top-level package, largest first
    drd_modules: list[tuple[str, float]]  # drd's own modules by self time, largest first
    modules: list[tuple[str, float]]  # every module by self time, largest first


def _self_times(code: str) -> dict[str, float]:
    """Seconds each module took to import, without its own imports (one run)."""
    result = subprocess.run([sys.executable, "-X", "importtime", "-c", code], check=True,
                            capture_output=True, text=True, stdin=subprocess.DEVNULL,
                            timeout=60)
    times: dict[str, float] = {}
    for line in result.stderr.splitlines():
        # "import time: self [us] | cumulative | imported package", then one row a module
        fields = line.removeprefix("import time:").split("|")
        if len(fields) == 3 and fields[0].strip().isdigit():
            times[fields[2].strip()] = int(fields[0]) / 1e6
    return times


def _largest(times: dict[str, float]) -> list[tuple[str, float]]:
    return sorted(times.items(), key=lambda item: item[1], reverse=True)


def import_profile(code: str = DAEMON_IMPORT, runs: int = 3) -> ImportProfile:
    """Which packages a start pays for, by import self time; medians of `runs` runs."""
    samples = [_self_times(code) for _ in range(runs)]
    modules = {name: statistics.median(s.get(name, 0.0) for s in samples)
               for name in samples[0]}
    by_package: dict[str, float] = {}
    for name, seconds in modules.items():
        package = name.split(".")[0]
        by_package[package] = by_package.get(package, 0.0) + seconds
    own = {name: seconds for name, seconds in modules.items() if name.split(".")[0] == "drd"}
    return ImportProfile(total_s=sum(by_package.values()), by_package=_largest(by_package),
                         drd_modules=_largest(own), modules=_largest(modules))
