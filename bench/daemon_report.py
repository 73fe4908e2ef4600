"""The daemon benchmark's figures, and the table that sets them beside their targets."""

import statistics
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from start_profile import ImportProfile, StartSteps

MIB = 1024**2
READY_TARGET_S = 2.0
IDLE_RSS_TARGET_MIB = 80.0
IDLE_CPU_TARGET_PERCENT = 1.0
P99_TARGET_MS = 50.0
RATE_TOLERANCE = 0.99  # the load counts as "at the rate" when it reached 99 % of it


@dataclass
class Report:
    """Everything one run measured; filled in phase by phase."""

    rate: float
    seconds: float
    idle_seconds: float
    ready_s: list[float] = field(default_factory=list)
    stop_s: list[float] = field(default_factory=list)
    steps: list[StartSteps] = field(default_factory=list)  # one per start
    profile: ImportProfile | None = None
    idle_rss: list[int] = field(default_factory=list)
    idle_cpu_percent: float = 0.0
    idle_uss: int = 0
    idle_watchdogs: int = 0  # WATCHDOG=1 datagrams while idle
    threads: int = 0
    ceph_health: str = "unknown"
    peers: dict[str, bool] = field(default_factory=dict)  # peer -> answered our heartbeats
    load: dict[str, Any] = field(default_factory=dict)  # status_load.py's JSON
    load_cpu_percent: float = 0.0
    load_rss_peak: int = 0
    load_watchdogs: int = 0  # WATCHDOG=1 datagrams while loaded
    problems: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Row:
    label: str
    value: float
    decimals: int = 2
    target: float | None = None
    at_most: bool = True  # the target is a ceiling; False: a floor
    judged: bool = False  # this row decides PASS or MISS for its target
    tolerance: float = 1.0  # a floor passes at target x tolerance

    def cells(self) -> str:
        text = f"{self.label:<44}{self.value:>10.{self.decimals}f}"
        if self.target is None:
            return text
        sign = "<=" if self.at_most else ">="
        ratio = f"{self.value / self.target:.2f}" if self.target else "-"
        text += f"{sign:>5} {self.target:<8.{self.decimals}f}{ratio:>7}"
        if self.judged:
            passed = (self.value <= self.target if self.at_most
                      else self.value >= self.target * self.tolerance)
            text += "   PASS" if passed else "   MISS"
        return text


def _spread(label: str, values: Sequence[float], target: float) -> list[Row]:
    return [Row(f"{label}, min", min(values), target=target),
            Row(f"{label}, median", statistics.median(values), target=target, judged=True),
            Row(f"{label}, max", max(values), target=target)]


def figure_rows(report: Report) -> list[Row | str]:
    """The table, section by section; a str is a section heading."""
    rows: list[Row | str] = [f"start (s), {len(report.ready_s)} starts"]
    rows += _spread("Popen -> READY=1 (s)", report.ready_s, READY_TARGET_S)
    rows.append(Row("SIGTERM -> exit 0 (s), median", statistics.median(report.stop_s)))
    if report.steps:
        steps = report.steps
        rows += [f"where a start goes (s, medians of {len(steps)} instrumented starts)",
                 Row("interpreter start", statistics.median(s.interpreter_s for s in steps)),
                 Row("+ import drd.cli.main", statistics.median(s.cli_import_s for s in steps)),
                 Row("+ import drd.daemon.lifecycle",
                     statistics.median(s.daemon_import_s for s in steps)),
                 Row("= imports done", statistics.median(s.imports_done_s for s in steps)),
                 Row("+ config, state db, listen -> READY=1",
                     statistics.median(s.rest_s for s in steps)),
                 Row("= Popen -> READY=1, instrumented", statistics.median(
                     s.imports_done_s + s.rest_s for s in steps), target=READY_TARGET_S)]
    rss = [value / MIB for value in report.idle_rss]
    rows += [f"idle, {report.idle_seconds:.0f} s ({len(rss)} samples), heartbeating "
             f"{len(report.peers)} peers",
             Row("RSS (MiB), median", statistics.median(rss), 1, IDLE_RSS_TARGET_MIB),
             Row("RSS (MiB), max", max(rss), 1, IDLE_RSS_TARGET_MIB, judged=True),
             Row("USS (MiB), at the end", report.idle_uss / MIB, 1),
             Row("CPU (% of one core), mean", report.idle_cpu_percent, 2,
                 IDLE_CPU_TARGET_PERCENT, judged=True),
             Row("threads", report.threads, 0),
             Row("WATCHDOG=1 pings (one a tick)", report.idle_watchdogs, 0)]
    load = report.load
    latency = load["latency_ms"]
    rows += [f"/v1/status, open loop at {report.rate:.0f} req/s for {report.seconds:.0f} s "
             f"({load['requested']} requests)",
             Row("achieved rate (ok answers/s)", load["achieved_rate"], 1, report.rate,
                 at_most=False, judged=True, tolerance=RATE_TOLERANCE),
             Row("errors", sum(load["errors"].values()), 0, 0.0, judged=True),
             Row("latency p50 (ms)", latency["p50"], 1, P99_TARGET_MS),
             Row("latency p90 (ms)", latency["p90"], 1, P99_TARGET_MS),
             Row("latency p99 (ms)", latency["p99"], 1, P99_TARGET_MS, judged=True),
             Row("latency max (ms)", latency["max"], 1, P99_TARGET_MS),
             Row("daemon CPU (% of one core), mean", report.load_cpu_percent, 1),
             Row("daemon RSS (MiB), peak", report.load_rss_peak / MIB, 1),
             Row("daemon WATCHDOG=1 pings (one a tick)", report.load_watchdogs, 0),
             Row("load generator CPU (% of one core)", load["client_cpu_percent"], 1),
             Row("load generator send lag p99 (ms)", load["send_lag_ms"]["p99"], 1)]
    return rows


def print_report(report: Report) -> None:
    header = f"{'figure':<44}{'value':>10}{'target':>14}{'ratio':>7}  verdict"
    print("\n" + header)
    print("-" * len(header))
    for row in figure_rows(report):
        print(f"\n{row}" if isinstance(row, str) else row.cells())
    if report.load["errors"]:
        print(f"\nerrors by kind: {report.load['errors']}")
    peers = ", ".join(f"{name} {'answering' if ok else 'NOT answering'}"
                      for name, ok in sorted(report.peers.items()))
    print(f"\nidle: Ceph {report.ceph_health}; peers: {peers or 'none'}")
    print("ratio = figure / target; below 1.00 is within a ceiling, at or above 1.00 meets "
          "a floor")
    if report.profile is not None:
        print_profile(report.profile)
    for problem in report.problems:
        print(f"PROBLEM: {problem}")


def print_profile(profile: ImportProfile, top: int = 8) -> None:
    print("\nimports of `drd daemon`: self time summed per package, medians of 3 runs of\n"
          f"-X importtime (inflated by the profiler): {profile.total_s:.2f} s")
    for label, figures in (("packages", profile.by_package[:top]),
                           ("slowest modules", profile.modules[:5]),
                           ("slowest drd modules", profile.drd_modules[:5])):
        text = ", ".join(f"{name} {seconds:.3f}" for name, seconds in figures)
        print(textwrap.fill(f"{label}: {text}", width=88, initial_indent="  ",
                            subsequent_indent="    "))
