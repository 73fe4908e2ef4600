"""The runbook benchmark's runs: drd's real engine, in-process, as the daemon of site b
would run it.

A `RunbookEngine` with the daemon's step library (`step_executors()`), a fresh
`StateStore` in the benchmark's workspace, and a `RunEnvironment` whose sites are
`ConfiguredSites` from the lab's site-b config and whose only policy is the benchmark
tenant's. Runbooks are the built-ins, loaded by drd.config.runbook_loader. A runbook
naming a step type this library has no executor for (the RGW zone steps, while they are
not on main) runs as a copy without those steps; the run says which it left out.
Everything a run reports comes from the state store: the engine's own report (its
`finish_run` detail) and each step's journalled attempts.
"""

import asyncio
import os
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml
from daemon_process import BenchError

from drd.config.runbook_loader import load_runbooks, parse_runbook
from drd.config.site_loader import load_site_config
from drd.domain.runbook import Runbook, RunTarget
from drd.domain.tenant_policy import TenantPolicy
from drd.runbooks.engine import JOURNAL_LIMIT, RunbookEngine, RunEnvironment, RunOrder
from drd.runbooks.library import step_executors
from drd.runbooks.sites import ConfiguredSites
from drd.state import StateStore

SITE = "b"  # the daemon the runs are run as: it reaches a's and c's Ceph through its config


@dataclass(frozen=True)
class StepFigures:
    """One step of a run, from its latest journalled attempt."""

    group: str
    name: str
    type: str
    state: str
    started_at: datetime | None
    seconds: float | None
    attempts: int
    facts: dict[str, Any]
    lines: list[str]
    error: str | None


@dataclass
class RunFigures:
    """One run: the engine's report and its steps, plus what the benchmark saw."""

    label: str
    runbook: str
    run_id: int
    state: str
    wall_s: float  # from engine.start to the run's end, as the benchmark's clock saw it
    report: dict[str, Any]
    steps: list[StepFigures]
    left_out: list[str]  # steps of the built-in runbook this library cannot run
    load_before: tuple[float, float, float]
    load_after: tuple[float, float, float]
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def succeeded(self) -> bool:
        return self.state == "succeeded"

    def figure(self, key: str) -> float | None:
        value = self.report.get(key)
        return float(value) if isinstance(value, int | float) else None

    def step(self, name: str) -> StepFigures | None:
        return next((s for s in self.steps if s.name == name), None)


@dataclass(frozen=True)
class Runnable:
    runbook: Runbook
    text: str
    left_out: list[str]


class EngineBench:
    """The engine, its store and its sites; `close` releases the Ceph handles."""

    def __init__(self, workspace: Path, site_config: Path, policy: TenantPolicy) -> None:
        config = load_site_config(site_config)
        if config.site.name != SITE:
            raise BenchError(f"{site_config} is site {config.site.name}'s config, not {SITE}'s")
        self.known = {config.site.name, *(peer.name for peer in config.peers)}
        self.sites = ConfiguredSites(config)
        (workspace / "state").mkdir(parents=True, mode=0o700)
        self.store = StateStore.initialise(workspace / "state", SITE)
        self.executors = step_executors()
        self.tenant = policy.tenant
        environment = RunEnvironment(policies=lambda: {policy.tenant: policy},
                                     sites=lambda: self.sites, known_sites=lambda: self.known)
        self.engine = RunbookEngine(self.store, self.executors, environment)
        books, issues = load_runbooks(None, self.known)
        if issues:
            raise BenchError("the built-in runbooks do not load: "
                             + "; ".join(issue.render() for issue in issues))
        self.books = books

    def close(self) -> None:
        self.sites.close()
        self.store.close()

    def runnable(self, name: str) -> Runnable:
        """The built-in runbook, without the steps whose type has no executor here."""
        loaded = self.books.get(name)
        if loaded is None:
            raise BenchError(f"no built-in runbook {name!r}")
        missing = [f"{step.name} ({step.type})" for _, step in loaded.runbook.steps()
                   if step.type not in self.executors]
        if not missing:
            return Runnable(loaded.runbook, loaded.text, [])
        document = yaml.safe_load(loaded.text)
        groups = []
        for group in document["groups"]:
            steps = [s for s in group["steps"] if s["type"] in self.executors]
            if steps:
                groups.append({**group, "steps": steps})
        document["groups"] = groups
        text = yaml.safe_dump(document, sort_keys=False)
        return Runnable(parse_runbook(text, Path(f"{name}.yaml"), self.known), text, missing)

    async def run(self, label: str, name: str, source: str, target: str) -> RunFigures:
        """Start the runbook for the tenant, wait for its end, read back what it recorded."""
        runnable = self.runnable(name)
        load_before = os.getloadavg()
        started = time.monotonic()
        record = await self.engine.start(runnable.runbook, runnable.text,
                                         RunTarget(source, target, (self.tenant,)),
                                         RunOrder(actor="bench/runbooks.py"))
        await self.engine.wait(record.id)
        wall = time.monotonic() - started
        ended = await asyncio.to_thread(self.store.get_run, record.id)
        if ended is None:
            raise BenchError(f"run {record.id} vanished from the state store")
        steps = await asyncio.to_thread(self._steps, record.id, runnable.runbook)
        detail = dict(ended.detail)
        figures = RunFigures(label=label, runbook=name, run_id=record.id,
                             state=ended.state.value, wall_s=wall,
                             report=dict(detail.get("report") or {}), steps=steps,
                             left_out=runnable.left_out, load_before=load_before,
                             load_after=os.getloadavg())
        if not figures.succeeded:
            why = detail.get("error") or next(
                (f"step {s.name}: {s.error}" for s in steps if s.error), "no reason recorded")
            figures.problems.append(f"{label}: run {record.id} ended {figures.state}: {why}")
        return figures

    def _steps(self, run_id: int, runbook: Runbook) -> list[StepFigures]:
        jobs = self.store.list_jobs(JOURNAL_LIMIT, run_id)
        found = []
        for group, step in runbook.steps():
            attempts = sorted((j for j in jobs if j.name == step.name),
                              key=lambda j: j.started_at)
            if not attempts:
                found.append(StepFigures(group.name, step.name, step.type, "not run", None,
                                         None, 0, {}, [], None))
                continue
            last = attempts[-1]
            detail = dict(last.detail)
            found.append(StepFigures(
                group.name, step.name, step.type, last.state.value, last.started_at,
                _seconds(last.started_at, last.finished_at),
                len(attempts), dict(detail.get("facts") or {}),
                [str(line) for line in detail.get("output") or []],
                str(detail["error"]) if detail.get("error") else None))
        return found


def _seconds(started: datetime, finished: datetime | None) -> float | None:
    return None if finished is None else (finished - started).total_seconds()
