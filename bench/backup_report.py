"""The backup benchmark's table: each figure beside its target, and where drd's time goes."""

import itertools
import statistics
from collections.abc import Sequence

from backup_lab import GIB, MIB
from backup_tenants import PhaseResult
from backup_throughput import DRD, FROM_COMMAND, HAND, REBACKUP, Step, ThroughputRun
from daemon_report import Row

RATIO_TARGET = 0.95  # drd's throughput against the pipeline run by hand


def _median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else 0.0


def _percentile(values: Sequence[float], fraction: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return 0.0
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def throughput_rows(run: ThroughputRun) -> list[Row | str]:
    steps = run.steps
    drd, hand = steps.get(DRD, []), steps.get(HAND, [])
    if not drd or not hand:
        return []
    size_mib, size_gib = run.size / MIB, run.size / GIB
    ratios = [h.seconds / d.seconds for d, h in zip(drd, hand, strict=True)]
    rows: list[Row | str] = [
        f"backup of a {size_mib:.0f} MiB image of random data, fresh repository each, "
        f"{len(drd)} rounds (medians)"]
    for name in (DRD, HAND, FROM_COMMAND):
        if name in steps:
            rows.append(Row(f"{name} (s)", _median([s.seconds for s in steps[name]])))
    for name in (DRD, HAND, FROM_COMMAND):
        if name in steps:
            rows.append(Row(f"{name} (MiB/s)", _median([size_mib / s.seconds
                                                         for s in steps[name]]), 1))
    rows += [
        Row("drd / hand throughput, median of rounds", _median(ratios), target=RATIO_TARGET,
            at_most=False, judged=True),
        Row("drd / hand throughput, worst round", min(ratios), target=RATIO_TARGET,
            at_most=False),
        Row("drd / hand throughput, best round", max(ratios), target=RATIO_TARGET,
            at_most=False),
        "CPU s per GiB: processes + bench process + site a's OSD (medians)"]
    for name in (DRD, HAND, FROM_COMMAND):
        if name in steps:
            rows.append(Row(f"{name} CPU (s/GiB)", _median([s.cpu.total / size_gib
                                                             for s in steps[name]])))
    rows.append(Row("drd CPU / hand CPU", _median(
        [d.cpu.total / h.cpu.total for d, h in zip(drd, hand, strict=True)])))
    rows += _breakdown(run, size_gib)
    return rows


def _breakdown(run: ThroughputRun, size_gib: float) -> list[Row | str]:
    rows: list[Row | str] = []
    if run.phases:
        phases = run.phases
        rows += ["where a drd backup's time goes (s, medians)",
                 Row("sweep of leftover snapshots", _median([p.sweep for p in phases]), 3),
                 Row("take the snapshot", _median([p.snapshot for p in phases]), 3),
                 Row("restic, as drd awaited it", _median([p.restic for p in phases])),
                 Row("  restic's own total_duration", _median([p.restic_own for p in phases])),
                 Row("remove the snapshot", _median([p.cleanup for p in phases]), 3),
                 Row("record of the backup and the rest", _median([p.other for p in phases]), 3),
                 Row("= drd's backup of the image", _median([p.total for p in phases]))]
    steps = run.steps
    chain = [name for name in (HAND, FROM_COMMAND, DRD) if name in steps]
    if len(chain) > 2:
        rows.append("from hand to drd, step by step (medians of each round's difference)")
        for before, after in itertools.pairwise(chain):
            rows.append(Row(f"{before} -> {after} (s)",
                            _median(_differences(steps[after], steps[before], "seconds"))))
            rows.append(Row(f"{before} -> {after} (CPU s/GiB)",
                            _median(_differences(steps[after], steps[before], "cpu"))
                            / size_gib))
    return rows


def _differences(later: Sequence[Step], earlier: Sequence[Step], what: str) -> list[float]:
    if what == "seconds":
        return [a.seconds - b.seconds for a, b in zip(later, earlier, strict=True)]
    return [a.cpu.total - b.cpu.total for a, b in zip(later, earlier, strict=True)]


def rebackup_rows(run: ThroughputRun) -> list[Row | str]:
    again = run.steps.get(REBACKUP, [])
    if not again:
        return []
    first = run.steps[DRD]
    added = [s.bytes_added or 0 for s in again]
    return [f"re-backup of the unchanged image by drd, same repository, {len(again)} rounds",
            Row("re-backup (s), median", _median([s.seconds for s in again])),
            Row("re-backup (s), max", max(s.seconds for s in again)),
            Row("re-backup (MiB/s), median", _median([run.size / MIB / s.seconds
                                                       for s in again]), 1),
            Row("re-backup time / first backup time", _median(
                [a.seconds / f.seconds for a, f in zip(again, first, strict=True)])),
            Row("bytes added (KiB), median", _median(added) / 1024, 1),
            Row("bytes added (KiB), max", max(added) / 1024, 1),
            Row("re-backup CPU (s/GiB)", _median([s.cpu.total for s in again])
                / (run.size / GIB))]


def phase_rows(phase: PhaseResult) -> list[Row | str]:
    limits = phase.limits
    total = phase.tenants * phase.image_bytes
    seconds = phase.run_seconds
    shared = [url for url, count in phase.expected_snapshots.items() if count > 1]
    rows: list[Row | str] = [
        f"{phase.name}: {phase.tenants} tenants, {phase.image_bytes // MIB} MiB each; "
        f"at most {limits.max_jobs} jobs at once, {limits.max_shared_per_repository} "
        f"per repository",
        Row("runs on record", len(phase.records), 0, target=phase.tenants, at_most=False),
        Row("failed runs", len(phase.failed), 0, target=0, judged=True),
        Row("total wall time (s)", phase.wall_s, 1),
        Row("  first start -> last end on record (s)", phase.history_span_s, 1),
        Row("per-run time (s), p50", _percentile(seconds, 0.5), 1),
        Row("per-run time (s), max", max(seconds, default=0.0), 1),
        Row("aggregate throughput (MiB/s)", total / MIB / phase.wall_s if phase.wall_s
            else 0.0, 1),
        Row("most runs at once, on record", phase.most_at_once(), 0),
    ]
    for url in shared:
        rows.append(Row("  of them on the shared repository", phase.most_at_once(url), 0))
    rows += [
        Row("snapshots in the repositories", sum(phase.snapshots.values()), 0,
            target=sum(phase.expected_snapshots.values()), at_most=False),
        Row("restic processes at once, sampled", phase.peak_restics, 0),
        Row("RSS of restic and rbd, peak (MiB)", phase.peak_rss / MIB, 0),
    ]
    return rows


def print_table(sections: Sequence[list[Row | str]]) -> None:
    header = f"{'figure':<44}{'value':>10}{'target':>14}{'ratio':>7}  verdict"
    print(f"\n{header}\n{'-' * len(header)}")
    for section in sections:
        for row in section:
            print(f"\n{row}" if isinstance(row, str) else row.cells())
    print("\nratio = figure / target; at or above 1.00 meets a floor, below 1.00 is within "
          "a ceiling")
