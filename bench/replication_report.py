"""The replication benchmark's table: each figure beside its target from issue 4."""

import statistics
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from daemon_log import LogSummary
from daemon_report import Row
from journal_probe import PERIOD_S
from replication_daemon import Crash
from replication_rpo import PROBED_IMAGES, RpoRun
from replication_scale import ScaleRun
from status_load import percentile

MB = 1e6
MIB = 1024**2
STEADY_PASS_TARGET_S = 2.0
RSS_TARGET_MB = 150.0
JOURNAL_RPO_TARGET_S = 1.0
SNAPSHOT_INTERVAL_S = 60.0
SNAPSHOT_RPO_TARGET_S = SNAPSHOT_INTERVAL_S + 15.0


def _spread(label: str, values: Sequence[float], target: float | None,
            judge: str | None, decimals: int = 2) -> list[Row | str]:
    """min/median/p99/max rows; `judge` names the one that decides (median, p99 or max)."""
    if not values:
        return [f"  {label}: no values measured"]
    figures = (("p50", percentile(values, 0.5)), ("p99", percentile(values, 0.99)),
               ("max", max(values)))
    return [Row(f"{label}, {name}", value, decimals, target, judged=name == judge)
            for name, value in figures]


def scale_rows(run: ScaleRun) -> list[Row | str]:
    rows: list[Row | str] = [
        f"scale: {run.images} images, {run.tenants} tenants x {run.per_tenant}, snapshot 1m "
        f"to b and c",
        Row("set-up: namespaces x3 sites, images (s)", run.create_s, 1),
        Row(f"PUT of {run.tenants} policies, in turn (s)", run.put_s, 1)]
    if run.enabled_s is not None:
        rows.append(Row(f"first PUT -> {run.images} enabled on a (s)", run.enabled_s, 1))
    else:
        rows.append(f"  first full reconcile: NOT DONE, {run.enabled}/{run.images} enabled")
    if run.first_passes:
        rows += [Row("  reconcile passes meanwhile (count)", len(run.first_passes), 0),
                 Row("  longest of them (s, drd gauge)", max(run.first_passes), 2)]
    if run.protected_s is not None:
        rows.append(Row("first PUT -> all listed in /v1/rpo (s)", run.protected_s, 1))
    rows.append(Row("enable actions ok, since last (re)start",
                    run.enable_actions.get("ok", 0), 0))
    rows.append(Row("enable actions failed, since last (re)start",
                    run.enable_actions.get("failed", 0), 0))

    rows.append(f"steady state, {run.window_s:.0f} s with {run.images} protected images, "
                f"no API load")
    if run.steady_passes:
        rows += [Row("reconcile passes seen (count)", len(run.steady_passes), 0),
                 Row("reconcile pass (s), median", statistics.median(run.steady_passes), 2,
                     STEADY_PASS_TARGET_S),
                 Row("reconcile pass (s), max", max(run.steady_passes), 2,
                     STEADY_PASS_TARGET_S, judged=True)]
    else:
        rows.append("  reconcile pass: NO PASS COMPLETED in the window (see the log counts)")
    rss = [value / MB for value in run.rss]
    rows += [Row("daemon RSS (MB), median", statistics.median(rss), 1, RSS_TARGET_MB),
             Row("daemon RSS (MB), max", max(rss), 1, RSS_TARGET_MB, judged=True),
             Row("daemon USS (MiB), at the end", run.uss / MIB, 1),
             Row("daemon CPU (% of one core), mean", run.cpu_percent, 1),
             Row("daemon threads, window start", run.threads_at_start, 0),
             Row("daemon threads, window end", run.threads, 0),
             *(Row(f"daemon mon sessions to site {site} (handles)", count, 0)
               for site, count in sorted(run.mon_sessions.items())),
             Row("mirror snapshots taken (ok)", run.snapshots.get("ok", 0), 0),
             Row("  needed at 1m each, for the window", run.images * run.window_s / 60, 0),
             Row("mirror snapshots failed", run.snapshots.get("failed", 0), 0)]
    rows += _spread("journal RPO-loop round (s, probe staleness)", run.probe_staleness, None, None)
    for destination in ("same_city", "remote"):
        values = run.rpo.get(destination, [])
        rows.append(Row(f"{destination}: images with a measured RPO", len(values), 0))
        if values:
            rows.append(Row(f"{destination}: measured RPO (s), max", max(values), 1,
                            SNAPSHOT_RPO_TARGET_S, judged=destination == "remote"))
    return rows


def rpo_rows(run: RpoRun) -> list[Row | str]:
    load = run.load
    rows: list[Row | str] = [
        f"RPO under load: {run.rate:.0f} random 4 KiB writes/s on 20 images for "
        f"{run.seconds:.0f} s, "
        + (f"each image flushed every {run.flush_seconds:g} s" if run.flush_seconds
           else "never flushed"),
        Row("PUT -> every image measured (s)", run.ready_s, 1),
        Row("writes acknowledged", load["done"], 0),
        Row("write rate achieved (/s)", load["achieved_rate"], 1, run.rate, at_most=False),
        Row("write errors", load["errors"], 0),
        Row("write latency p99 (ms)", load["latency_ms"]["p99"], 1),
        Row("write latency max (ms)", load["latency_ms"]["max"], 1),
        Row("daemon CPU under load (% of one core)", run.daemon_cpu_percent, 1),
        Row("GET /v1/rpo samples (1/s)", run.samples, 0),
        *(Row(f"daemon mon sessions to site {site} (handles)", count, 0)
          for site, count in sorted(run.mon_sessions.items()))]
    sections = (("journal", "same_city", JOURNAL_RPO_TARGET_S, "max"),
                ("journal", "remote", None, None),
                ("snapshot", "remote", SNAPSHOT_RPO_TARGET_S, "max"),
                ("snapshot", "same_city", SNAPSHOT_RPO_TARGET_S, None))
    for mode, destination, target, judge in sections:
        values = run.rpo.get((mode, destination), [])
        unknown = run.unknown.get((mode, destination), 0)
        rows.append(f"{mode} images -> {destination}: {len(values)} readings, "
                    f"{unknown} unmeasured")
        rows += _spread(f"{mode[:4]}->{destination} RPO (s)", values, target, judge)
    for destination in ("same_city", "remote"):
        rows.append(f"age of the newest data on the {destination} copy, from time markers "
                    f"in {len(PROBED_IMAGES)} journal images, read at 10 Hz")
        rows += _spread(f"data age at {destination} (s)", run.data_age.get(destination, []),
                        JOURNAL_RPO_TARGET_S if destination == "same_city" else None, None)
    for destination in ("same_city", "remote"):
        rows.append(f"drd's journal tracker at {1 / PERIOD_S:.0f} Hz in the bench, "
                    f"{len(PROBED_IMAGES)} images -> {destination} ({run.fine_rounds} rounds, "
                    f"{run.fine_errors} errors)")
        rows += _spread(f"jour->{destination} RPO at {1 / PERIOD_S:.0f} Hz (s)",
                        run.fine.get(destination, []), JOURNAL_RPO_TARGET_S
                        if destination == "same_city" else None, None)
        caught_up = run.fine_caught_up.get(destination)
        if caught_up is None:
            rows.append(f"  after the load stopped, the peer's commit position did not "
                        f"reach the primary's in the {run.watched_s:.0f} s watched")
        else:
            rows.append(Row("  load stop -> peer commit caught up (s)", caught_up, 1))
        rows.append(Row("  drd's RPO after the load, max (s)",
                        run.idle_max.get(destination, 0.0), 1))
        states = ", ".join(f"{state} {count}" for (where, state), count
                           in sorted(run.idle_states.items()) if where == destination)
        rows.append(f"  drd's journal readings after the load: {states or 'none'}")
    matched = [seconds for seconds in run.matched.values() if seconds is not None]
    rows.append(f"sha256 after the load stopped, {len(run.matched)} images on a, b, c")
    rows.append(Row("images equal on all three", len(matched), 0, len(run.matched),
                    at_most=False, judged=True))
    for prefix, mode in (("jrnl-", "journal"), ("snap-", "snapshot")):
        times = [seconds for name, seconds in run.matched.items()
                 if seconds is not None and name.startswith(prefix)]
        if times:
            rows.append(Row(f"load stop -> last {mode} image equal (s)", max(times), 1))
    return rows


def _details(counter: Counter[str], heading: str) -> list[str]:
    total = sum(counter.values()) or 1
    return [heading] + [f"  {count:6d} ({100 * count / total:4.1f} %)  {detail}"
                        for detail, count in counter.most_common(8)]


@dataclass
class Results:
    """Everything one run measured; a part that could not finish stays None."""

    scale: ScaleRun | None = None
    rpo: RpoRun | None = None
    log: LogSummary = field(default_factory=LogSummary)  # the daemon's
    crashes: list[Crash] = field(default_factory=list)
    began: float = 0.0  # monotonic, when the daemon first started; crash times count from it
    problems: list[str] = field(default_factory=list)  # a part that could not finish


def print_table(results: Results) -> None:
    scale, rpo, crashes = results.scale, results.rpo, results.crashes
    header = f"{'figure':<44}{'value':>10}{'target':>14}{'ratio':>7}  verdict"
    print("\n" + header)
    print("-" * len(header))
    rows: list[Row | str] = []
    if rpo is not None:
        rows += rpo_rows(rpo)
    if scale is not None:
        rows += scale_rows(scale)
    rows += ["the daemon, over the whole run",
             Row("crashes (restarted as systemd would)", len(crashes), 0, 0.0, judged=True),
             Row("scale: enable actions logged", results.log.enables, 0),
             Row("scale: images enabled twice (passes overlap)", results.log.enabled_twice,
                 0)]
    if results.log.enable_rate is not None:
        rows.append(Row("scale: enables per second, first to last", results.log.enable_rate,
                        1))
    for row in rows:
        if isinstance(row, Row):
            print(row.cells())
        else:  # a heading, or an indented note under the row above it
            print(row if row.startswith("  ") else f"\n{row}")
    print("\nratio = figure / target; below 1.00 is within a ceiling, at or above 1.00 meets "
          "a floor")
    _print_notes(scale, rpo, results.log.events)
    for number, crash in enumerate(crashes, 1):
        print(f"PROBLEM: daemon crash {number} at +{crash.at - results.began:.0f} s: exit "
              f"{crash.exit_code}: {crash.cause}")
        if crash.threads:
            print(f"  drd threads at the crash: {crash.threads}")
    for problem in [*results.problems, *(rpo.problems if rpo else []),
                    *(scale.problems if scale else [])]:
        print(f"PROBLEM: {problem}")


def _print_notes(scale: ScaleRun | None, rpo: RpoRun | None,
                 log_events: Counter[str]) -> None:
    notes: list[str] = []
    if rpo is not None:
        joined = Counter({f"{mode}->{dest}: {detail}": count
                          for (mode, dest, detail), count in rpo.details.items()})
        notes += _details(joined, "\nRPO readings under load, by drd's detail:")
    if scale is not None:
        notes += _details(scale.details, "\nscale images' RPO readings at the end, "
                                         "by drd's detail:")
        busiest = ", ".join(f"{name} {percent:.1f}" for name, percent
                            in list(scale.cpu_by_thread.items())[:6])
        notes += ["\nsteady state, the daemon's CPU by thread name (% of one core; every "
                  "Python thread, librbd calls\nincluded, carries the interpreter's name):",
                  f"  {busiest}"]
    notes += _details(log_events, "\nthe daemon's log, warnings and errors by event:")
    for line in notes:
        print(line)
