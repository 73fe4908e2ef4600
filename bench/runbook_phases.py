"""Where a run's time went inside its slow steps, from what the steps journalled: the
phases of the drill's clone and clean-up steps, and how the promotions of the images
spread over the promote step. Pure: it reads a run's figures."""

import re
import statistics
from datetime import UTC, datetime, time, timedelta

from runbook_runs import RunFigures, StepFigures

_PROMOTED = re.compile(r"^\S+: promoted on \S+ at (\d\d:\d\d:\d\d\.\d+) ")
_CLEANUP = {
    "clean-up: remove the clones": re.compile(r"^removed \d+ clones of run \d+ on \S+ in "
                                              r"([\d.]+) s"),
    "clean-up: remove the snapshots on a": re.compile(r"^removed the run's snapshots of \d+ "
                                                      r"images on \S+ in ([\d.]+) s"),
    "clean-up: wait for the replicas": re.compile(r"^waited ([\d.]+) s for mirroring"),
}


def phases(run: RunFigures) -> dict[str, float]:
    """Named figures in seconds; a figure whose step did not say it is left out."""
    found: dict[str, float] = {}
    for step in run.steps:
        if step.type == "rbd_promote":
            found |= _promotions(step)
        elif step.type == "drill_clone":
            found |= _clone_phases(step)
        elif step.type == "drill_cleanup":
            for name, pattern in _CLEANUP.items():
                value = _matched(step.lines, pattern)
                if value is not None:
                    found[name] = value
        elif step.type == "wait_in_sync" and "waited_seconds" in step.facts:
            found["sync: wait for the target"] = float(step.facts["waited_seconds"])
        elif step.type == "rbd_remote_follow":
            found |= {f"remote: {phase}": float(seconds) for phase, seconds
                      in (step.facts.get("phase_seconds") or {}).items()}
        elif step.type == "verify_replication":
            probes = step.facts.get("probe_seconds") or {}
            if probes:
                found["verify: probe on the old primary"] = max(map(float, probes.values()))
    return found


def _promotions(step: StepFigures) -> dict[str, float]:
    """When each image became writable, in seconds after the step started."""
    if step.started_at is None:
        return {}
    started = step.started_at.astimezone(UTC)
    seconds = []
    for line in step.lines:
        match = _PROMOTED.match(line)
        if match:
            at = datetime.combine(started.date(), time.fromisoformat(match.group(1)), UTC)
            if at < started - timedelta(hours=12):  # the step ran over midnight
                at += timedelta(days=1)
            seconds.append((at - started).total_seconds())
    if not seconds:
        return {}
    return {"promote: first image writable": min(seconds),
            "promote: median image writable": statistics.median(seconds),
            "promote: last image writable": max(seconds)}


def _clone_phases(step: StepFigures) -> dict[str, float]:
    facts = step.facts
    if "started_at" not in facts:
        return {}
    started = datetime.fromisoformat(str(facts["started_at"]))
    found = {}
    for key, name in (("snapshots_taken_at", "clone: snapshots taken on a"),
                      ("snapshots_whole_at", "clone: snapshots whole on b")):
        if key in facts:
            found[name] = (datetime.fromisoformat(str(facts[key])) - started).total_seconds()
    ready = [float(c["seconds"]) for c in facts.get("clones") or [] if "seconds" in c]
    if ready:
        found["clone: first clone usable"] = min(ready)
        found["clone: last clone usable"] = max(ready)
    return found


def _matched(lines: list[str], pattern: re.Pattern[str]) -> float | None:
    for line in lines:
        match = pattern.match(line)
        if match:
            return float(match.group(1))
    return None
