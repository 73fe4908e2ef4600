"""What the API says about runbooks and their runs, built from the loaded runbooks and
the journal."""

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from drd.config.runbook_loader import LoadedRunbook
from drd.domain import runbook_journal as journal
from drd.state import RunState
from drd.state.records import RunRecord


class _View(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RunbookOut(_View):
    name: str
    kind: str
    description: str
    source: str
    target: str
    scope: str
    steps: int
    builtin: bool
    path: str


class RunbookList(_View):
    runbooks: list[RunbookOut]
    problems: list[str] = Field(description="Runbook files refused, with file and line.")


class RunbookText(_View):
    runbook: RunbookOut
    text: str


class RunRequest(_View):
    source: str | None = Field(default=None, pattern=r"^[a-z][a-z0-9-]{0,31}$")
    target: str | None = Field(default=None, pattern=r"^[a-z][a-z0-9-]{0,31}$")
    tenants: list[str] | None = Field(default=None, min_length=1)
    confirm_winner: str | None = Field(
        default=None, pattern=r"^[a-z][a-z0-9-]{0,31}$",
        description="The site an operator confirms as split-brain winner.")


class ResumeRequest(_View):
    approve: bool = Field(default=False, description="Approve the gate the run waits at.")
    confirm_winner: str | None = Field(default=None, pattern=r"^[a-z][a-z0-9-]{0,31}$")


class PlannedStep(_View):
    group: str
    step: str
    type: str
    lines: list[str]


class PlanOut(_View):
    runbook: str
    source: str
    target: str
    tenants: list[str] | None
    steps: list[PlannedStep]


class StepView(_View):
    group: str
    name: str
    type: str
    state: str
    attempts: int
    started_at: datetime | None
    seconds: float | None
    output: list[str]
    error: str | None


class RunView(_View):
    id: int
    runbook: str
    kind: str
    state: str = Field(description="running, paused, interrupted (resume it), succeeded, "
                                   "failed or cancelled")
    source: str
    target: str
    tenants: list[str] | None
    actor: str
    started_at: datetime
    finished_at: datetime | None
    steps: list[StepView]
    report: dict[str, Any]


class RunViewList(_View):
    runs: list[RunView]


def runbook_out(loaded: LoadedRunbook) -> RunbookOut:
    book = loaded.runbook
    scope = "all" if book.scope == "all" else ",".join(book.scope.tenants)
    return RunbookOut(name=book.name, kind=book.kind.value, description=book.description,
                      source=book.source, target=book.target, scope=scope,
                      steps=len(book.steps()), builtin=loaded.builtin, path=str(loaded.path))


def run_view(record: RunRecord, steps: list[journal.StepProgress], *,
             live: bool) -> RunView:
    detail = record.detail
    return RunView(
        id=record.id, runbook=record.subject, kind=str(detail.get("kind", "")),
        state=_state(record, steps, live), source=str(detail.get("source", "")),
        target=str(detail.get("target", "")), tenants=detail.get("tenants"),
        actor=str(detail.get("actor", "")), started_at=record.started_at,
        finished_at=record.finished_at,
        steps=[_step_view(step) for step in steps],
        report=dict(detail.get("report") or {}))


def _state(record: RunRecord, steps: list[journal.StepProgress], live: bool) -> str:
    if record.state is not RunState.RUNNING:
        return record.state.value
    if live:
        return "running"
    stop = journal.blocking(steps)
    return "paused" if stop is not None and journal.waits_for_operator(stop) else "interrupted"


def _step_view(step: journal.StepProgress) -> StepView:
    latest = step.latest
    detail = latest.detail if latest else {}
    return StepView(group=step.group, name=step.step.name, type=step.step.type,
                    state=step.state.value, attempts=step.attempts,
                    started_at=latest.started_at if latest else None, seconds=step.seconds,
                    output=[str(line) for line in detail.get("output") or []],
                    error=detail.get("error") or detail.get(journal.PAUSED_KEY))


class RestartOut(_View):
    """What a daemon restarted at a peer's request."""

    done: str = Field(description="What was restarted, e.g. the rbd-mirror unit.")
