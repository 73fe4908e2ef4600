"""The RGW sync benchmark's figures: lag per destination, the gateways' RSS, and what
`radosgw-admin sync status` said on b beside what b really held at that moment."""

import json
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

from daemon_report import Row
from rgw_sync_ceph import StatusSample
from rgw_sync_load import Put, Watcher, WriteRun
from rgw_sync_s3 import Checked
from status_load import percentile

from drd.domain.rgw_sync_status import SyncSource

MIB = 1024**2
SOURCE = "a"


@dataclass
class SyncRun:
    """Everything one run measured; times are time.monotonic()."""

    rate: float
    seconds: float
    size: int
    workers: int
    interval: float
    bucket: str
    tuning: dict[str, str]
    metadata_wait_s: float = 0.0
    write: WriteRun | None = None
    watchers: dict[str, Watcher] = field(default_factory=dict)
    status: list[StatusSample] = field(default_factory=list)  # on b
    status_zone: str = "b"
    checks: list[Checked] = field(default_factory=list)
    rss_before: dict[str, int] = field(default_factory=dict)
    rss_peak: dict[str, int] = field(default_factory=dict)
    rss_after: dict[str, int] = field(default_factory=dict)
    settle_s: float = 0.0
    problems: list[str] = field(default_factory=list)


def lags(write: WriteRun, watcher: Watcher) -> tuple[list[float], list[float], list[Put]]:
    """PUT acknowledged -> first listed with the same ETag, per object, as an upper bound
    (the listing that showed it had returned) and a lower bound (the listing before it,
    which did not, had been sent); and the objects never seen."""
    upper: list[float] = []
    lower: list[float] = []
    missing: list[Put] = []
    for put in write.acked:
        sighting = watcher.arrived(put)
        if sighting is None:
            missing.append(put)
        else:
            assert put.acked is not None
            upper.append(sighting.seen - put.acked)
            lower.append(max(0.0, sighting.absent - put.acked))
    return upper, lower, missing


def _spread(label: str, values: list[float]) -> list[Row | str]:
    if not values:
        return [f"  {label}: no values measured"]
    return [Row(f"{label}, {name}", percentile(values, fraction), 2)
            for name, fraction in (("p50", 0.5), ("p90", 0.9), ("p99", 0.99), ("max", 1.0))]


def write_rows(run: SyncRun, write: WriteRun) -> list[Row | str]:
    acked = write.acked
    planned = len(write.puts)
    rows: list[Row | str] = [
        f"write stream on zone a: {run.rate:g} objects of {run.size / MIB:g} MiB per s for "
        f"{run.seconds:g} s ({planned} PUTs, {run.workers} writer threads)",
        Row("PUTs acknowledged", len(acked), 0, planned, at_most=False),
        Row("PUT errors", planned - len(acked), 0)]
    if acked:
        last = max(p.acked for p in acked if p.acked is not None)
        span = max(last - write.started, 1e-9)
        rows += [Row("throughput achieved (objects/s)", len(acked) / span, 2, run.rate,
                     at_most=False),
                 Row("throughput achieved (MiB/s)", len(acked) * run.size / MIB / span, 1)]
        rows += _spread("PUT latency (s)", [p.acked - p.sent for p in acked
                                            if p.acked is not None])
        rows.append(Row("dispatcher lateness, max (s)", write.dispatch_lag_max, 3))
    return rows


def lag_rows(write: WriteRun, watcher: Watcher) -> list[Row | str]:
    found, lower, missing = lags(write, watcher)
    rounds = watcher.rounds
    rows: list[Row | str] = [
        f"sync lag a -> {watcher.zone.name}: PUT acknowledged on a -> listed on "
        f"{watcher.zone.name} with the same ETag ({len(rounds)} listings, "
        f"{percentile(rounds, 0.5):.3f} s each at the median)"]
    rows += _spread(f"lag to {watcher.zone.name} (s)", found)
    if lower:
        rows.append(Row("  p50, lower bound (from the listing before)",
                        percentile(lower, 0.5), 2))
    rows.append(Row(f"objects missing on {watcher.zone.name} at the end", len(missing), 0))
    acked = [p.acked for p in write.acked if p.acked is not None]
    if watcher.finished is not None and acked:
        rows.append(Row(f"last PUT ack -> all on {watcher.zone.name} (s)",
                        watcher.finished - max(acked), 2))
    if watcher.errors:
        rows.append(f"  listing errors: {watcher.errors}")
    return rows


def memory_rows(run: SyncRun) -> list[Row | str]:
    rows: list[Row | str] = ["radosgw RSS (MiB), by the PIDs in lab.json"]
    for label, figures in (("idle before the load", run.rss_before),
                           ("peak during the run", run.rss_peak),
                           (f"idle, {run.settle_s:.0f} s after the last object synced",
                            run.rss_after)):
        if not figures:
            continue
        sites = "  ".join(f"{site} {value / MIB:.0f}" for site, value in sorted(figures.items()))
        rows.append(Row(f"{label} (total)", sum(figures.values()) / MIB, 1))
        rows.append(f"  per gateway: {sites}")
    return rows


def print_table(run: SyncRun) -> None:
    header = f"{'figure':<44}{'value':>10}{'target':>14}{'ratio':>7}"
    print("\n" + header)
    print("-" * len(header))
    rows: list[Row | str] = [
        "set-up (metadata sync; not part of the lag)",
        Row("new user and bucket on a -> known on b and c (s)", run.metadata_wait_s, 1)]
    if run.write is not None:
        rows += write_rows(run, run.write)
        for watcher in run.watchers.values():
            rows += lag_rows(run.write, watcher)
    for check in run.checks:
        rows += [f"sha256 read back from zone {check.zone}",
                 Row(f"objects equal on {check.zone}", check.equal, 0, check.checked,
                     at_most=False)]
        rows += [f"  {failure}" for failure in check.failures]
    rows += memory_rows(run)
    for row in rows:
        if isinstance(row, Row):
            print(row.cells())
        else:
            print(row if row.startswith("  ") else f"\n{row}")
    print("\nratio = figure / target (here the requested load); the issue sets no target "
          "for lag or RSS")
    if run.write is not None and run.status_zone in run.watchers:
        print_status(run, run.write, run.watchers[run.status_zone])
    for problem in run.problems:
        print(f"PROBLEM: {problem}")


def print_status(run: SyncRun, write: WriteRun, watcher: Watcher) -> None:
    """Each status reading beside the truth on that zone at that moment, then a summary."""
    zone, began = watcher.zone.name, write.started
    acked = [p.acked for p in write.acked if p.acked is not None]
    events = [(max(acked), "last PUT acknowledged on a")] if acked else []
    if watcher.finished is not None:
        events.append((watcher.finished, f"every object listed on {zone}"))
    print(f"\nwhat Ceph said on {zone} (sync status: data from {SOURCE}; bucket sync status "
          f"from {SOURCE}) and what {zone} held\n(t: when the reading began, from the first PUT's "
          f"due time; 'in flight': acknowledged on {SOURCE}, not yet listed on {zone} then;\n"
          f"'lacked': of those, not listed until after the reading ended)")
    comparisons = [compare(sample, write, watcher) for sample in run.status]
    for sample, truth in zip(run.status, comparisons, strict=True):
        while events and events[0][0] <= sample.at:
            at, what = events.pop(0)
            print(f"  t={at - began:+6.1f} s  -- {what}")
        print(f"  t={sample.at - began:+6.1f} s  {truth.ceph:<60} took {sample.took_s:3.1f} s, "
              f"in flight {truth.in_flight:>2}, lacked {truth.lacking_throughout:>2}"
              + (f", oldest {truth.oldest_s:.2f} s" if truth.lacking_throughout else ""))
    print(summarise(run.status, comparisons, zone, watcher.finished, began))


@dataclass(frozen=True)
class Comparison:
    ceph: str  # both verdicts, short
    data_caught_up: bool | None  # None: no reading
    bucket_caught_up: bool | None
    in_flight: int  # acknowledged on the source, not yet listed, when the reading began
    lacking_during: int  # objects possibly missing at some time during the reading
    lacking_throughout: int  # acknowledged before it, not listed until after it
    oldest_s: float  # age of the oldest certainly missing object


def compare(sample: StatusSample, write: WriteRun, watcher: Watcher) -> Comparison:
    start, end = sample.at, sample.at + sample.took_s
    in_flight = possibly = certainly = 0
    oldest = 0.0
    for put in write.acked:
        assert put.acked is not None
        sighting = watcher.arrived(put)
        if put.acked <= end and (sighting is None or sighting.seen > start):
            possibly += 1
            in_flight += put.acked <= start
        if put.acked <= start and (sighting is None or sighting.absent > end):
            certainly += 1
            oldest = max(oldest, end - put.acked)
    data, bucket = sample.source(SOURCE), sample.bucket_source(SOURCE)
    if sample.error:
        text = f"error: {sample.error[:40]}"
    else:
        age = sample.oldest_change_age(SOURCE)
        stamp = f" (oldest {age:.0f} s)" if age is not None else ""
        text = f"data: {_verdict(data)}{stamp}; bucket: {_verdict(bucket)}"
    return Comparison(text, None if data is None else data.caught_up,
                      None if bucket is None else bucket.caught_up,
                      in_flight, possibly, certainly, oldest)


def _verdict(source: SyncSource | None) -> str:
    if source is None:
        return "no reading"
    if source.caught_up:
        return "caught up"
    return f"behind {source.behind_shards} shards" if source.behind_shards else source.detail


def summarise(samples: list[StatusSample], comparisons: list[Comparison], zone: str,
              all_there: float | None, began: float) -> str:
    lines = []
    for kind, verdicts in (("sync status (data)", [c.data_caught_up for c in comparisons]),
                           ("bucket sync status", [c.bucket_caught_up for c in comparisons])):
        said_caught_up = [c for c, v in zip(comparisons, verdicts, strict=True) if v]
        wrong = [c for c in said_caught_up if c.lacking_throughout]
        said_behind = [c for c, v in zip(comparisons, verdicts, strict=True) if v is False]
        stale = [c for c in said_behind if not c.lacking_during]
        line = (f"  {kind}: {len(said_caught_up)} of {len(comparisons)} readings said caught "
                f"up, {len(said_behind)} behind")
        busy = [c for c in said_caught_up if c.in_flight]
        if busy:
            line += (f"; {len(busy)} said caught up with objects in flight at its start (up "
                     f"to {max(c.in_flight for c in busy)})")
        if wrong:
            line += (f"; {len(wrong)} said caught up while {zone} lacked objects (up to "
                     f"{max(c.lacking_throughout for c in wrong)}, oldest "
                     f"{max(c.oldest_s for c in wrong):.2f} s)")
        if stale:
            line += f"; {len(stale)} said behind with nothing in flight while it read"
        behind_at = [s.at for s, v in zip(samples, verdicts, strict=True) if v is False]
        if all_there is not None and behind_at and max(behind_at) > all_there:
            line += (f"; still behind at t={max(behind_at) - began:+.1f} s, "
                     f"{max(behind_at) - all_there:.1f} s after {zone} held every object")
        ages = [age for sample in samples
                if (age := sample.oldest_change_age(SOURCE)) is not None]
        if kind.startswith("sync status") and ages:
            line += (f"; the 'oldest incremental change not applied' it named was "
                     f"{min(ages):.0f} to {max(ages):.0f} s old ({len(ages)} readings)")
        lines.append(textwrap.fill(line, width=100, subsequent_indent="    "))
    return "\n".join(lines)


def save_record(run: SyncRun, path: Path) -> None:
    """Every object's times and every status reading as JSON, seconds from the first due
    time, for a closer look at the tail than the table gives."""
    if run.write is None:
        return
    began = run.write.started

    def since(value: float | None) -> float | None:
        return None if value is None else round(value - began, 4)

    objects = []
    for put in run.write.puts:
        entry: dict[str, object] = {"key": put.key, "due": since(put.due),
                                    "sent": since(put.sent), "acked": since(put.acked),
                                    "error": put.error}
        for name, watcher in run.watchers.items():
            sighting = watcher.arrived(put)
            entry[f"seen_{name}"] = None if sighting is None else since(sighting.seen)
        objects.append(entry)
    status = [{"at": since(sample.at), "took_s": round(sample.took_s, 3),
               "sync": [source.summary() for source in sample.sync],
               "bucket": [source.summary() for source in sample.bucket],
               "oldest_change_age_s": sample.oldest_change_age(SOURCE),
               "error": sample.error} for sample in run.status]
    path.write_text(json.dumps({"bucket": run.bucket, "tuning": run.tuning,
                                "objects": objects, "status": status}, indent=1) + "\n")
