"""A run's journal read back: where each step is, what is left to do, and the report.
Pure.

Every attempt of a step is one job row, written before the step acts and finished after
it. A step is done when its latest attempt succeeded, or failed with `on_failure:
continue`. A step whose latest attempt is still "running" when nobody is running it was
interrupted (a crash, kill -9): it is run again, which is safe because steps check the
real state before they act.
"""

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from drd.domain.runbook import Runbook, RunTarget
from drd.domain.runbook_steps import AnyStep, OnFailure

PAUSED_KEY = "paused"  # in a cancelled attempt's detail: why it waits for an operator


class StepState(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    PAUSED = "paused"


@dataclass(frozen=True)
class Attempt:
    """One journal row of a step (a job of the run), as the store gives it back."""

    step: str
    state: str  # running | succeeded | failed | cancelled
    started_at: datetime
    finished_at: datetime | None
    detail: dict[str, Any]


@dataclass(frozen=True)
class StepProgress:
    group: str
    step: AnyStep
    state: StepState
    attempts: int
    latest: Attempt | None

    @property
    def done(self) -> bool:
        return self.state is StepState.SUCCEEDED or (
            self.state is StepState.FAILED and self.step.on_failure is OnFailure.CONTINUE)

    @property
    def seconds(self) -> float | None:
        if self.latest is None or self.latest.finished_at is None:
            return None
        return (self.latest.finished_at - self.latest.started_at).total_seconds()


def progress(runbook: Runbook, attempts: list[Attempt]) -> list[StepProgress]:
    """Every step of the runbook, in order, with its latest attempt."""
    latest: dict[str, Attempt] = {}
    counts: dict[str, int] = {}
    for attempt in sorted(attempts, key=lambda a: a.started_at):
        latest[attempt.step] = attempt
        counts[attempt.step] = counts.get(attempt.step, 0) + 1
    found = []
    for group, step in runbook.steps():
        last = latest.get(step.name)
        found.append(StepProgress(group.name, step, _state(last), counts.get(step.name, 0),
                                  last))
    return found


def _state(attempt: Attempt | None) -> StepState:
    if attempt is None:
        return StepState.PENDING
    if attempt.state == "cancelled" and attempt.detail.get(PAUSED_KEY):
        return StepState.PAUSED
    return StepState(attempt.state)


def interrupted(steps: list[StepProgress]) -> list[StepProgress]:
    """Steps journalled as started and never finished: nobody ran them to the end."""
    return [step for step in steps if step.state is StepState.RUNNING]


def blocking(steps: list[StepProgress]) -> StepProgress | None:
    """The first step that stops the run: failed with abort, paused, or cancelled."""
    for step in steps:
        if step.state is StepState.PAUSED:
            return step
        if step.state is StepState.FAILED and step.step.on_failure is not OnFailure.CONTINUE:
            return step
    return None


def waits_for_operator(step: StepProgress) -> bool:
    """A paused gate, or a failure whose runbook says `on_failure: pause`."""
    return step.state is StepState.PAUSED or (
        step.state is StepState.FAILED and step.step.on_failure is OnFailure.PAUSE)


def cleanly_demoted(steps: list[StepProgress], target: RunTarget) -> frozenset[str]:
    """Sites this run demoted and then proved replayed in full elsewhere: a succeeded
    rbd_demote of the site, followed by a succeeded wait_in_sync from it.

    Such a site provably holds nothing newer than its peer, so a split-brain Ceph
    reports on it afterwards may be repaired by resync without asking anyone. Anything
    else (a failover's stale copies, a demotion not waited out) needs an operator to
    confirm the winner.
    """
    demoted: dict[str, datetime] = {}
    clean: set[str] = set()
    for step in steps:
        if step.state is not StepState.SUCCEEDED or step.latest is None:
            continue
        finished = step.latest.finished_at or step.latest.started_at
        params = getattr(step.step, "params", None)
        if step.step.type == "rbd_demote":
            demoted[target.site(params.site)] = finished  # type: ignore[union-attr]
        elif step.step.type == "wait_in_sync":
            primary = target.site(params.primary)  # type: ignore[union-attr]
            if primary in demoted and step.latest.started_at >= demoted[primary]:
                clean.add(primary)
    return frozenset(clean)


def facts(steps: list[StepProgress]) -> dict[str, dict[str, Any]]:
    """What each succeeded step recorded, by step name."""
    return {s.step.name: dict(s.latest.detail.get("facts") or {})
            for s in steps if s.state is StepState.SUCCEEDED and s.latest is not None}


def report(steps: list[StepProgress], started_at: datetime,
           finished_at: datetime) -> dict[str, Any]:
    """The run's timings, the RTO evidence: each step's time, the total, and the windows
    that steps' facts let us measure."""
    known = facts(steps)
    windows: dict[str, float] = {}
    demoted = next((s.latest.started_at.isoformat() for s in steps
                    if s.step.type == "rbd_demote" and s.latest is not None), None)
    writable = _first_fact(known, "writable_at")
    protected = _first_fact(known, "protected_at")
    ready = _first_fact(known, "clones_ready_at")
    if demoted and writable:
        windows["writes_blocked_seconds"] = _between(demoted, writable)
    if writable and protected:
        windows["unprotected_seconds"] = _between(writable, protected)
    if writable:
        windows["rto_seconds"] = _between(started_at.isoformat(), writable)
    if ready:
        windows["rto_seconds"] = _between(started_at.isoformat(), ready)
    losses = [f["loss_window_seconds"] for f in known.values()
              if "loss_window_seconds" in f]
    if losses:
        # None (unknown) wins over any number: an unknown loss is not a small one.
        windows_or_unknown: dict[str, Any] = {"loss_window_seconds": None if None in losses
                                              else max(losses)}
    else:
        windows_or_unknown = {}
    return {
        **windows_or_unknown,
        "total_seconds": round((finished_at - started_at).total_seconds(), 3),
        "step_seconds": {s.step.name: round(s.seconds, 3) for s in steps
                         if s.seconds is not None},
        **{name: round(value, 3) for name, value in windows.items()},
    }


def _first_fact(known: dict[str, dict[str, Any]], key: str) -> str | None:
    """The latest time any step recorded under `key` (ISO 8601 text)."""
    values = sorted(str(f[key]) for f in known.values() if key in f)
    return values[-1] if values else None


def _between(earlier: str, later: str) -> float:
    return (datetime.fromisoformat(later) - datetime.fromisoformat(earlier)).total_seconds()
