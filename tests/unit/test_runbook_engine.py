"""The runbook engine against a real state store, with step executors faked at their
Protocol: groups in order, concurrency, retries, on_failure, the pause gate, abort, and
resume after a crash left a step journalled as started and never finished."""

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from drd.config.runbook_loader import parse_runbook
from drd.domain.runbook import RunTarget, run_target
from drd.domain.runbook_steps import AnyStep
from drd.runbooks.engine import RunbookEngine, RunEnvironment, RunOrder, RunRefused
from drd.runbooks.operator_steps import Approval
from drd.runbooks.step_api import StepContext, StepFailed
from drd.state import RunState, StateStore

SITES = {"a", "b", "c"}

RUNBOOK = """\
name: demo
kind: switchover
source: a
target: b
groups:
  - name: first
    concurrency: 2
    steps:
      - {name: one, type: ceph_health, params: {site: source}}
      - {name: two, type: ceph_health, params: {site: target}}
      - {name: three, type: ceph_health, params: {site: c}}
  - name: second
    steps:
      - {name: four, type: rbd_demote, params: {site: source}, retry: {attempts: 3, wait: 1s}}
  - name: third
    steps:
      - {name: five, type: rbd_promote, params: {site: target}}
"""


class Recorder:
    """A fake executor: records calls, can fail a step some times or block it."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.running = 0
        self.most_at_once = 0
        self.fail: dict[str, int] = {}  # step -> attempts that fail
        self.block: set[str] = set()
        self.started = asyncio.Event()

    async def plan(self, step: AnyStep, context: StepContext) -> list[str]:
        return [f"would run {step.name}"]

    async def run(self, step: AnyStep, context: StepContext) -> None:
        self.calls.append(step.name)
        self.running += 1
        self.most_at_once = max(self.most_at_once, self.running)
        try:
            if step.name in self.block:
                self.started.set()
                await asyncio.Event().wait()
            await asyncio.sleep(0.01)
            if self.fail.get(step.name, 0) > 0:
                self.fail[step.name] -= 1
                raise StepFailed(f"{step.name} failed on purpose")
            context.output.say(f"{step.name} done")
            context.output.facts["ran"] = step.name
        finally:
            self.running -= 1


@pytest.fixture
def store(tmp_path: Path) -> Iterator[StateStore]:
    with StateStore.initialise(tmp_path / "state", "b") as opened:
        yield opened


def engine_with(store: StateStore, recorder: Recorder) -> RunbookEngine:
    executors: dict[str, Any] = {t: recorder for t in ("ceph_health", "rbd_demote",
                                                        "rbd_promote")}
    executors["approval"] = Approval()
    environment = RunEnvironment(policies=dict, sites=lambda: None,  # type: ignore[arg-type,return-value]
                                 known_sites=lambda: SITES)
    return RunbookEngine(store, executors, environment, now=lambda: datetime.now(UTC))


async def start(engine: RunbookEngine, text: str = RUNBOOK,
                target: RunTarget | None = None) -> int:
    runbook = parse_runbook(text, Path("demo.yaml"), SITES)
    record = await engine.start(runbook, text, target or run_target(runbook),
                                RunOrder(actor="operator"))
    return record.id


def attempts(store: StateStore, run_id: int) -> list[tuple[str, str]]:
    return [(j.name, j.state.value) for j in reversed(store.list_jobs(100, run_id))]


async def test_groups_run_in_order_and_a_group_at_most_its_concurrency(
        store: StateStore) -> None:
    recorder = Recorder()
    engine = engine_with(store, recorder)
    run_id = await start(engine)
    await engine.wait(run_id)
    record = store.get_run(run_id)
    assert record is not None and record.state is RunState.SUCCEEDED
    assert set(recorder.calls[:3]) == {"one", "two", "three"}
    assert recorder.calls[3:] == ["four", "five"]
    assert recorder.most_at_once == 2
    report = record.detail["report"]
    assert set(report["step_seconds"]) == {"one", "two", "three", "four", "five"}
    assert report["total_seconds"] >= 0


async def test_a_step_is_retried_and_every_attempt_is_journalled(store: StateStore) -> None:
    recorder = Recorder()
    recorder.fail["four"] = 2
    engine = engine_with(store, recorder)
    run_id = await start(engine)
    await engine.wait(run_id)
    assert [a for a in attempts(store, run_id) if a[0] == "four"] == [
        ("four", "failed"), ("four", "failed"), ("four", "succeeded")]
    assert store.get_run(run_id).state is RunState.SUCCEEDED  # type: ignore[union-attr]


async def test_a_failed_step_aborts_the_run_and_nothing_after_it_runs(
        store: StateStore) -> None:
    recorder = Recorder()
    recorder.fail["four"] = 3
    engine = engine_with(store, recorder)
    run_id = await start(engine)
    await engine.wait(run_id)
    record = store.get_run(run_id)
    assert record is not None and record.state is RunState.FAILED
    assert record.detail["failed_step"] == "four"
    assert "five" not in recorder.calls


async def test_on_failure_continue_goes_on(store: StateStore) -> None:
    text = RUNBOOK.replace("retry: {attempts: 3, wait: 1s}", "on_failure: continue")
    recorder = Recorder()
    recorder.fail["four"] = 1
    engine = engine_with(store, recorder)
    run_id = await start(engine, text)
    await engine.wait(run_id)
    assert store.get_run(run_id).state is RunState.SUCCEEDED  # type: ignore[union-attr]
    assert recorder.calls[-1] == "five"


async def test_an_approval_gate_pauses_and_resume_with_approval_continues_without_redoing(
        store: StateStore) -> None:
    text = RUNBOOK.replace(
        "  - name: third\n",
        "  - name: gate\n    steps:\n      - {name: ok, type: approval, "
        "params: {message: 'promote b?'}}\n  - name: third\n")
    recorder = Recorder()
    engine = engine_with(store, recorder)
    run_id = await start(engine, text)
    await engine.wait(run_id)
    record = store.get_run(run_id)
    assert record is not None and record.state is RunState.RUNNING  # paused, not ended
    assert "five" not in recorder.calls
    with pytest.raises(RunRefused):
        await engine.start(parse_runbook(text, Path("demo.yaml"), SITES), text,
                           RunTarget("a", "b", None), RunOrder(actor="someone"))
    await engine.resume(run_id, RunOrder(actor="operator", approved_by="operator"))
    await engine.wait(run_id)
    assert store.get_run(run_id).state is RunState.SUCCEEDED  # type: ignore[union-attr]
    assert recorder.calls.count("four") == 1 and recorder.calls[-1] == "five"


async def test_resume_after_a_crash_reruns_only_the_interrupted_step(
        store: StateStore) -> None:
    recorder = Recorder()
    engine = engine_with(store, recorder)
    runbook = parse_runbook(RUNBOOK, Path("demo.yaml"), SITES)
    # What a SIGKILL during step four leaves: a run, three finished steps, four started.
    now = datetime.now(UTC)
    run = store.start_run("runbook", "demo", now, {
        "runbook": "demo", "kind": "switchover", "text": RUNBOOK, "source": "a",
        "target": "b", "tenants": None, "actor": "operator"})
    for name in ("one", "two", "three"):
        job = store.start_job(name, now, run.id, {"group": "first"})
        store.finish_job(job.id, RunState.SUCCEEDED, now, {"facts": {"ran": name}})
    store.start_job("four", now, run.id, {"group": "second"})
    assert runbook.name == "demo"
    await engine.resume(run.id, RunOrder(actor="operator"))
    await engine.wait(run.id)
    assert recorder.calls == ["four", "five"]
    assert store.get_run(run.id).state is RunState.SUCCEEDED  # type: ignore[union-attr]
    fours = [a for a in attempts(store, run.id) if a[0] == "four"]
    assert fours == [("four", "failed"), ("four", "succeeded")]


async def test_abort_cancels_the_step_in_flight_and_ends_the_run(store: StateStore) -> None:
    recorder = Recorder()
    recorder.block.add("four")
    engine = engine_with(store, recorder)
    run_id = await start(engine)
    await asyncio.wait_for(recorder.started.wait(), 5)
    record = await engine.abort(run_id, "operator")
    assert record.state is RunState.CANCELLED
    assert ("four", "cancelled") in attempts(store, run_id)
    with pytest.raises(RunRefused):
        await engine.resume(run_id, RunOrder(actor="operator"))


async def test_a_stopping_daemon_leaves_the_run_open_to_resume(store: StateStore) -> None:
    recorder = Recorder()
    recorder.block.add("four")
    engine = engine_with(store, recorder)
    run_id = await start(engine)
    await asyncio.wait_for(recorder.started.wait(), 5)
    await engine.stop()
    assert store.get_run(run_id).state is RunState.RUNNING  # type: ignore[union-attr]
    recorder.block.clear()
    await engine.resume(run_id, RunOrder(actor="operator"))
    await engine.wait(run_id)
    assert store.get_run(run_id).state is RunState.SUCCEEDED  # type: ignore[union-attr]
    assert recorder.calls.count("one") == 1


async def test_a_run_of_overlapping_tenants_is_refused_while_one_is_open(
        store: StateStore) -> None:
    recorder = Recorder()
    recorder.block.add("four")
    engine = engine_with(store, recorder)
    first = await start(engine, target=RunTarget("a", "b", ("water",)))
    await asyncio.wait_for(recorder.started.wait(), 5)
    with pytest.raises(RunRefused, match=f"run {first}"):
        await start(engine, target=RunTarget("a", "b", ("water", "transport")))
    other = await start(engine, target=RunTarget("a", "b", ("transport",)))
    await engine.abort(first, "operator")
    await engine.abort(other, "operator")
