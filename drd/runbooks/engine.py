"""Run runbooks: groups in sequence, the steps of a group at once, every attempt of a
step journalled in the state store before it acts and after it ends.

The journal is the only memory a run has. `resume` rebuilds where a run stands from it
(drd.domain.runbook_journal), so a daemon killed with SIGKILL mid-step continues where
it stopped: finished steps are skipped, the interrupted one runs again and finds its
work done or half-done in the real state. A run keeps the runbook text it started
from, so a file edited meanwhile cannot change the steps of a run in flight.

A daemon that stops (SIGTERM) cancels its runs' steps and leaves the runs open, to be
resumed; only `abort` ends a run as cancelled.
"""

import asyncio
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import structlog
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_attempt, wait_fixed

from drd.backup.ceph_access import finish_despite_cancel
from drd.config.runbook_loader import parse_runbook
from drd.domain import runbook_journal as journal
from drd.domain.runbook import Group, Runbook, RunbookKind, RunTarget
from drd.domain.runbook_steps import AnyStep
from drd.domain.tenant_policy import TenantPolicy
from drd.runbooks.step_api import (
    SiteAccess,
    StepContext,
    StepExecutor,
    StepFailed,
    StepOutput,
    StepPaused,
)
from drd.state import RunState, StateStore
from drd.state.records import RunRecord

log = structlog.get_logger()

RUN_KIND = "runbook"
JOURNAL_LIMIT = 10_000  # attempts read back per run; far more than any runbook makes


class RunRefused(Exception):
    """The run cannot start or continue; the message says why."""


@dataclass(frozen=True)
class RunEnvironment:
    """What steps read from the daemon, fetched afresh for every step."""

    policies: Callable[[], Mapping[str, TenantPolicy]]
    sites: Callable[[], SiteAccess]
    known_sites: Callable[[], set[str]]


@dataclass(frozen=True)
class RunOrder:
    """What the operator asked for when starting or resuming a run."""

    actor: str
    approved_by: str | None = None
    confirmed_winner: str | None = None


class RunbookEngine:
    def __init__(self, store: StateStore, executors: Mapping[str, StepExecutor],
                 environment: RunEnvironment,
                 now: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self._store = store
        self._executors = executors
        self._env = environment
        self._now = now
        self._live: dict[int, asyncio.Task[None]] = {}
        self._aborting: set[int] = set()
        self._parsed: dict[int, Runbook] = {}

    # -- asking ----------------------------------------------------------------------

    def is_live(self, run_id: int) -> bool:
        return run_id in self._live

    async def plan(self, runbook: Runbook, target: RunTarget) -> list[dict[str, Any]]:
        """Every step with what it would do now; changes nothing (the dry run)."""
        context = self._context(0, runbook.kind, target, {}, RunOrder(actor="plan"))
        planned = []
        for group, step in runbook.steps():
            try:
                lines = await self._executor(step).plan(step, context)
            except StepFailed as error:
                lines = [f"cannot plan: {error}"]
            planned.append({"group": group.name, "step": step.name, "type": step.type,
                            "lines": lines})
        return planned

    # -- acting ----------------------------------------------------------------------

    async def start(self, runbook: Runbook, text: str, target: RunTarget,
                    order: RunOrder) -> RunRecord:
        """Journal a new run and start it in the background."""
        for _, step in runbook.steps():
            self._executor(step)  # refuse a step type this daemon cannot run, up front
        await self._refuse_overlap(runbook.kind, target)
        detail = {"runbook": runbook.name, "kind": runbook.kind.value, "text": text,
                  "source": target.source, "target": target.target,
                  "tenants": None if target.tenants is None else list(target.tenants),
                  "actor": order.actor, "confirmed_winner": order.confirmed_winner}
        record = await asyncio.to_thread(self._store.start_run, RUN_KIND, runbook.name,
                                         self._now(), detail)
        self._launch(record, order)
        return record

    async def resume(self, run_id: int, order: RunOrder) -> RunRecord:
        record = await self._open_run(run_id)
        if run_id in self._live:
            raise RunRefused(f"run {run_id} is running; nothing to resume")
        self._launch(record, order)
        return record

    async def abort(self, run_id: int, actor: str) -> RunRecord:
        """Stop a run for good: its step in flight is cancelled, the run ends cancelled."""
        record = await self._open_run(run_id)
        task = self._live.get(run_id)
        if task is not None:
            self._aborting.add(run_id)
            task.cancel()
            await asyncio.wait({task})
        log.warning("runbook run aborted", run=run_id, by=actor)
        return await self._finish(record, RunState.CANCELLED, {"aborted_by": actor})

    async def wait(self, run_id: int) -> None:
        task = self._live.get(run_id)
        if task is not None:
            await asyncio.wait({task})

    async def stop(self) -> None:
        """The daemon stops: cancel every live run's steps, leave the runs resumable."""
        tasks = list(self._live.values())
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks)

    # -- the run ---------------------------------------------------------------------

    def _launch(self, record: RunRecord, order: RunOrder) -> None:
        task = asyncio.create_task(self._execute(record, order), name=f"run-{record.id}")
        self._live[record.id] = task
        task.add_done_callback(lambda _t: self._live.pop(record.id, None))

    async def _execute(self, record: RunRecord, order: RunOrder) -> None:
        runbook = self.runbook_of(record)
        target = target_of(record)
        confirmed = order.confirmed_winner or record.detail.get("confirmed_winner")
        order = replace(order, confirmed_winner=confirmed)
        bound = log.bind(run=record.id, runbook=runbook.name)
        try:
            steps = await self._close_interrupted(record, runbook)
            for group in runbook.groups:
                todo = [s for s in steps if s.group == group.name and not s.done]
                if not todo:
                    continue
                bound.info("runbook group starts", group=group.name,
                           steps=[s.step.name for s in todo])
                context = replace(
                    self._context(record.id, runbook.kind, target, journal.facts(steps),
                                  order),
                    cleanly_demoted=journal.cleanly_demoted(steps, target))
                await self._run_group(record.id, group, [s.step for s in todo], context)
                steps = await self.progress(record.id, runbook)
                stop = journal.blocking([s for s in steps if s.group == group.name])
                if stop is not None and journal.waits_for_operator(stop):
                    bound.warning("runbook paused for an operator", step=stop.step.name)
                    return
                if stop is not None:
                    await self._finish(record, RunState.FAILED,
                                       {"failed_step": stop.step.name}, steps)
                    return
            await self._finish(record, RunState.SUCCEEDED, {}, steps)
            bound.info("runbook run succeeded")
        except asyncio.CancelledError:
            if record.id not in self._aborting:
                bound.warning("runbook run interrupted; resume it with drd runbook resume")
            self._aborting.discard(record.id)
            raise
        except Exception as error:  # a bug or the state store failing: end the run loudly
            bound.exception("runbook run broke")
            await self._finish(record, RunState.FAILED, {"error": repr(error)})

    async def _run_group(self, run_id: int, group: Group, steps: list[AnyStep],
                         context: StepContext) -> None:
        gate = asyncio.Semaphore(group.concurrency)

        async def one(step: AnyStep) -> None:
            async with gate:
                await self._run_step(run_id, group, step, context)

        async with asyncio.TaskGroup() as tasks:
            for step in steps:
                tasks.create_task(one(step))

    async def _run_step(self, run_id: int, group: Group, step: AnyStep,
                        base: StepContext) -> None:
        """Every attempt journalled; failures after the last attempt stay in the journal,
        which the run reads to decide what happens next."""
        retrying = AsyncRetrying(stop=stop_after_attempt(step.retry.attempts),
                                 wait=wait_fixed(step.retry.wait.total_seconds()),
                                 retry=retry_if_exception_type(StepFailed), reraise=True)
        try:
            async for attempt in retrying:
                with attempt:
                    await self._attempt(run_id, group, step, base,
                                        attempt.retry_state.attempt_number)
        except StepFailed:
            pass  # journalled; the run reads it

    async def _attempt(self, run_id: int, group: Group, step: AnyStep, base: StepContext,
                       number: int) -> None:
        job = await asyncio.to_thread(
            self._store.start_job, step.name, self._now(), run_id,
            {"group": group.name, "type": step.type, "attempt": number})
        context = replace(base, output=StepOutput())
        began = time.monotonic()
        state, error, extra = RunState.SUCCEEDED, None, {}
        try:
            async with asyncio.timeout(step.timeout.total_seconds()):
                await self._executor(step).run(step, context)
        except StepPaused as paused:
            state, extra = RunState.CANCELLED, {journal.PAUSED_KEY: str(paused)}
        except StepFailed as failed:
            state, error = RunState.FAILED, str(failed)
        except TimeoutError:
            state, error = RunState.FAILED, (f"did not finish within its timeout of "
                                             f"{step.timeout.total_seconds():.0f} s")
        except asyncio.CancelledError:
            why = "aborted" if run_id in self._aborting else "the daemon stopped"
            await finish_despite_cancel(self._end_attempt(
                job.id, RunState.CANCELLED, context=context, began=began,
                error=f"cancelled: {why}", extra={}))
            raise
        except Exception as bug:  # journalled as this step's failure, not raised
            state, error = RunState.FAILED, f"unexpected error: {bug!r}"
        await finish_despite_cancel(self._end_attempt(job.id, state, context=context,
                                                      began=began, error=error, extra=extra))
        if state is RunState.FAILED:
            raise StepFailed(error or "failed")

    async def _end_attempt(self, job_id: int, state: RunState, *, context: StepContext,
                           began: float, error: str | None, extra: dict[str, Any]) -> None:
        detail = {"seconds": round(time.monotonic() - began, 3),
                  "output": context.output.lines, "facts": context.output.facts,
                  **({"error": error} if error else {}), **extra}
        await asyncio.to_thread(self._store.finish_job, job_id, state, self._now(), detail)

    # -- journal ---------------------------------------------------------------------

    async def progress(self, run_id: int, runbook: Runbook) -> list[journal.StepProgress]:
        jobs = await asyncio.to_thread(self._store.list_jobs, JOURNAL_LIMIT, run_id)
        attempts = [journal.Attempt(j.name, j.state.value, j.started_at, j.finished_at,
                                    dict(j.detail)) for j in jobs]
        return journal.progress(runbook, attempts)

    async def _close_interrupted(self, record: RunRecord,
                                 runbook: Runbook) -> list[journal.StepProgress]:
        """Finish the attempts a crash left open, as failed, so they run again: nobody
        runs a run that is not live, so every attempt still open was interrupted."""
        jobs = await asyncio.to_thread(self._store.list_jobs, JOURNAL_LIMIT, record.id)
        for job in jobs:
            if job.state is RunState.RUNNING:
                await asyncio.to_thread(
                    self._store.finish_job, job.id, RunState.FAILED, self._now(),
                    {"error": "interrupted: the daemon stopped during this step; it "
                              "runs again on resume"})
        return await self.progress(record.id, runbook)

    async def _finish(self, record: RunRecord, state: RunState, detail: dict[str, Any],
                      steps: list[journal.StepProgress] | None = None) -> RunRecord:
        ended = self._now()
        if steps is None:
            steps = await self.progress(record.id, self.runbook_of(record))
        summary = {**detail, "report": journal.report(steps, record.started_at, ended)}
        return await asyncio.to_thread(self._store.finish_run, record.id, state, ended,
                                       summary)

    async def _open_run(self, run_id: int) -> RunRecord:
        record = await asyncio.to_thread(self._store.get_run, run_id)
        if record is None or record.kind != RUN_KIND:
            raise KeyError(f"no runbook run {run_id}")
        if record.state is not RunState.RUNNING:
            raise RunRefused(f"run {run_id} already ended ({record.state.value})")
        return record

    async def _refuse_overlap(self, kind: RunbookKind, target: RunTarget) -> None:
        """Two runs moving the same tenants at once could undo each other; drills only
        read, so they may overlap anything."""
        if kind is RunbookKind.DRILL:
            return
        open_runs = await asyncio.to_thread(self._store.list_runs, 100, RUN_KIND,
                                            state=RunState.RUNNING)
        for run in open_runs:
            if run.detail.get("kind") == RunbookKind.DRILL.value:
                continue
            other = run.detail.get("tenants")
            if target.tenants is None or other is None or set(other) & set(target.tenants):
                raise RunRefused(
                    f"run {run.id} ({run.subject}) is still open for overlapping tenants; "
                    f"resume or abort it first")

    # -- helpers ---------------------------------------------------------------------

    def runbook_of(self, record: RunRecord) -> Runbook:
        """The runbook as it was when the run started (parsed once per run: a CLI
        following a run asks for it every half second)."""
        runbook = self._parsed.get(record.id)
        if runbook is None:
            runbook = parse_runbook(str(record.detail["text"]),
                                    Path(f"run-{record.id}-{record.subject}"),
                                    self._env.known_sites())
            self._parsed[record.id] = runbook
        return runbook

    def _executor(self, step: AnyStep) -> StepExecutor:
        executor = self._executors.get(step.type)
        if executor is None:
            raise RunRefused(f"step {step.name!r}: this daemon has no executor for step "
                             f"type {step.type!r}")
        return executor

    def _context(self, run_id: int, kind: RunbookKind, target: RunTarget,
                 facts: Mapping[str, Mapping[str, Any]], order: RunOrder) -> StepContext:
        return StepContext(run_id=run_id, kind=kind, target=target,
                           policies=self._env.policies(), sites=self._env.sites(),
                           facts=facts, now=self._now, approved_by=order.approved_by,
                           confirmed_winner=order.confirmed_winner)


def target_of(record: RunRecord) -> RunTarget:
    tenants = record.detail.get("tenants")
    return RunTarget(source=str(record.detail["source"]), target=str(record.detail["target"]),
                     tenants=None if tenants is None else tuple(tenants))
