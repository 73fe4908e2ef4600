"""What the benchmark's daemon wrote in its JSON log: warnings, errors and enables."""

import json
import re
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

LEVELS = ("warning", "error", "critical")
NOT_JSON = "(lines not in JSON: crash output, thread dumps)"


@dataclass
class LogSummary:
    events: Counter[str] = field(default_factory=Counter)  # "level: event" -> count
    enables: int = 0  # "reconciled" enable actions of the images counted, every (re)start
    enabled_twice: int = 0  # images enabled more than once: overlapping reconcile passes
    first_enable: datetime | None = None
    last_enable: datetime | None = None

    @property
    def enable_rate(self) -> float | None:
        """Enables per second between the first and the last one."""
        if self.first_enable is None or self.last_enable is None or self.enables < 2:
            return None
        span = (self.last_enable - self.first_enable).total_seconds()
        return self.enables / span if span > 0 else None


def read_log(log: Path, images: str = "") -> LogSummary:
    """Enables are counted for images whose pool/namespace/name starts with `images`."""
    summary = LogSummary()
    try:
        lines = log.read_text(errors="replace").splitlines()
    except OSError:
        return summary
    enabled: Counter[str] = Counter()
    for line in lines:
        try:
            entry = json.loads(line)
        except ValueError:
            if line.strip():
                summary.events[NOT_JSON] += 1
            continue
        if not isinstance(entry, dict):
            continue
        if entry.get("level") in LEVELS:
            summary.events[f"{entry['level']}: {entry.get('event')}"] += 1
        if (entry.get("event") == "reconciled" and entry.get("action") == "enable"
                and str(entry.get("image")).startswith(images)):
            enabled[str(entry.get("image"))] += 1
            at = datetime.fromisoformat(str(entry["timestamp"]))
            summary.first_enable = summary.first_enable or at
            summary.last_enable = at
    summary.enables = sum(enabled.values())
    summary.enabled_twice = sum(count > 1 for count in enabled.values())
    return summary


def thread_cpu(pid: int) -> dict[int, tuple[str, float]]:
    """Thread id -> (name, CPU seconds) from /proc; Ceph names its threads
    (msgr-worker-0, ...), Python's threads carry the interpreter's name."""
    found: dict[int, tuple[str, float]] = {}
    ticks = 100.0  # USER_HZ on Linux
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            name = (task / "comm").read_text().strip()
            stat = (task / "stat").read_text()
        except OSError:
            continue  # the thread ended meanwhile
        fields = stat.rsplit(")", 1)[1].split()
        found[int(task.name)] = (re.sub(r"\d+$", "N", name),
                                 (int(fields[11]) + int(fields[12])) / ticks)
    return found


def cpu_by_name(before: dict[int, tuple[str, float]], after: dict[int, tuple[str, float]],
                seconds: float) -> dict[str, float]:
    """% of one core per thread name between two `thread_cpu` readings, busiest first."""
    usage: dict[str, float] = {}
    for tid, (name, cpu) in after.items():
        spent = cpu - before.get(tid, (name, 0.0))[1]
        usage[name] = usage.get(name, 0.0) + 100 * spent / seconds
    return dict(sorted(usage.items(), key=lambda item: -item[1]))
