"""What the runbook benchmark prints: a table per run, as each run ends, and the summary
with medians, maxima and the ratio of each to its target."""

import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field

from runbook_phases import phases
from runbook_runs import RunFigures

SWITCHOVER_TARGET_S = 30.0  # issue 7: switchover of 100 images
DRILL_TARGET_S = 60.0  # issue 7: drill of 100 images
# Facts worth a look when asking where a step's time went, by key.
_FACTS = ("waited_seconds", "resynced", "probe_seconds", "unprotected_seconds", "demoted",
          "promoted", "already_primary", "rto_seconds")


@dataclass
class Checks:
    """What the benchmark checked itself around one run, outside drd."""

    lines: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def _load(values: tuple[float, float, float]) -> str:
    return ", ".join(f"{v:.2f}" for v in values)


def _number(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def summary_lines(lines: list[str], tenant: str) -> list[str]:
    """A step's output without its per-image lines: what it did as a whole, with times."""
    per_image = ("rbd/", f"{tenant}:", "  ", "removed snapshot ")
    return [line for line in lines if not line.startswith(per_image)]


def print_run(run: RunFigures, checks: Checks, tenant: str) -> None:
    print(f"\n{run.label}: run {run.run_id} of runbook {run.runbook} {run.state} in "
          f"{run.wall_s:.1f} s (load average {_load(run.load_before)} -> "
          f"{_load(run.load_after)})", flush=True)
    if run.left_out:
        print(f"  left out, no executor in this step library: {', '.join(run.left_out)}")
    print(f"  {'group':<12} {'step':<26} {'type':<20} {'seconds':>8} {'tries':>5}  state")
    for step in run.steps:
        print(f"  {step.group:<12} {step.name:<26} {step.type:<20} "
              f"{_number(step.seconds, 2):>8} {step.attempts:>5}  {step.state}")
    report = run.report
    windows = [f"{label} {_number(run.figure(key), 2)} s" for key, label in
               (("total_seconds", "total"), ("rto_seconds", "rto"),
                ("writes_blocked_seconds", "writes blocked"),
                ("unprotected_seconds", "unprotected")) if key in report]
    print("  report: " + ", ".join(windows))
    for step in run.steps:
        facts = {key: step.facts[key] for key in _FACTS if key in step.facts}
        said = summary_lines(step.lines, tenant)
        if step.error:
            said.append(f"error: {step.error}")
        if facts or said:
            print(f"  {step.name}: " + "; ".join(
                [f"{k}={v}" for k, v in facts.items()] + said[:6]))
    for line in checks.lines:
        print(f"  check: {line}")
    for problem in run.problems + checks.problems:
        print(f"  PROBLEM: {problem}")
    print(flush=True)


@dataclass
class Row:
    figure: str
    values: list[float]
    target: float | None = None

    def render(self) -> str:
        if not self.values:
            return f"{self.figure:<38} {0:>4} {'-':>8} {'-':>8}"
        median, most = statistics.median(self.values), max(self.values)
        text = f"{self.figure:<38} {len(self.values):>4} {median:>8.2f} {most:>8.2f}"
        if self.target is not None:
            text += (f" {self.target:>7.1f} {median / self.target:>8.2f} "
                     f"{most / self.target:>8.2f}")
        return text


def _values(runs: Sequence[RunFigures], key: str) -> list[float]:
    return [v for run in runs if run.succeeded and (v := run.figure(key)) is not None]


def _step_rows(runs: Sequence[RunFigures]) -> list[Row]:
    names: list[str] = []
    for run in runs:
        names += [s.name for s in run.steps if s.name not in names]
    rows = []
    for name in names:
        values = [s.seconds for run in runs if run.succeeded
                  if (s := run.step(name)) is not None and s.seconds is not None]
        rows.append(Row(f"  {name} (s)", values))
    return rows


def _phase_rows(runs: Sequence[RunFigures]) -> list[Row]:
    found = [phases(run) for run in runs if run.succeeded]
    names: list[str] = []
    for figures in found:
        names += [name for name in figures if name not in names]
    return [Row(f"  {name}", [f[name] for f in found if name in f]) for name in names]


def print_summary(runs: Sequence[RunFigures], header: list[str]) -> None:
    switchovers = [r for r in runs if r.runbook == "switchover"]
    drills = [r for r in runs if r.runbook == "drill"]
    print("\n" + "\n".join(header))
    print(f"\n{'figure':<38} {'runs':>4} {'median':>8} {'max':>8} {'target':>7} "
          f"{'med/tgt':>8} {'max/tgt':>8}")
    print("-" * 86)
    rows: list[Row | str] = [f"switchover of the tenant's images, {len(switchovers)} runs "
                             f"({sum(r.succeeded for r in switchovers)} succeeded)"]
    rows.append(Row("switchover total (s)", _values(switchovers, "total_seconds"),
                    SWITCHOVER_TARGET_S))
    for direction in ("a->b", "b->a"):
        rows.append(Row(f"  {direction} total (s)", _values(
            [r for r in switchovers if direction in r.label], "total_seconds"),
            SWITCHOVER_TARGET_S))
    rows += [Row("rto: start to all writable (s)", _values(switchovers, "rto_seconds"),
                 SWITCHOVER_TARGET_S),
             Row("writes blocked (s)", _values(switchovers, "writes_blocked_seconds")),
             Row("unprotected window (s)", _values(switchovers, "unprotected_seconds")),
             "per step (s)", *_step_rows(switchovers),
             "inside the steps (s from the step's start, or as the step said)",
             *_phase_rows(switchovers)]
    rows += ["", f"drill at b, {len(drills)} runs ({sum(r.succeeded for r in drills)} "
                 f"succeeded)",
             Row("drill total (s)", _values(drills, "total_seconds"), DRILL_TARGET_S),
             Row("rto: start to all clones usable (s)", _values(drills, "rto_seconds"),
                 DRILL_TARGET_S),
             "per step (s)", *_step_rows(drills),
             "inside the steps (s from the step's start, or as the step said)",
             *_phase_rows(drills)]
    for row in rows:
        print(row.render() if isinstance(row, Row) else f"\n{row}" if row else "", flush=True)
    print("\nratio = figure / target; below 1.00 is within the target. Figures of failed "
          "runs are left out of the medians.")
