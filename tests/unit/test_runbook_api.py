"""The runbook routes in front of a real RunbookService and state store, with step
executors faked at their Protocol: who may run what, the dry run, following a run, and
refusals that change nothing."""

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from pytest_aiohttp import AiohttpClient

from drd.api.app import create_app
from drd.config.policy_loader import load_policy
from drd.domain.runbook_steps import STEP_TYPES, AnyStep
from drd.runbooks.service import RunbookService
from drd.runbooks.step_api import StepContext
from drd.state import StateStore
from tests.unit.test_api_app import FakeDaemon, bearer
from tests.unit.test_lab_backup_files import lab_site_config

POLICIES = Path(__file__).parents[2] / "policies"


class Instant:
    def __init__(self) -> None:
        self.ran: list[tuple[str, tuple[str, ...]]] = []

    async def plan(self, step: AnyStep, context: StepContext) -> list[str]:
        return [f"{step.type} for {', '.join(context.tenants())}"]

    async def run(self, step: AnyStep, context: StepContext) -> None:
        self.ran.append((step.name, tuple(context.tenants())))
        context.output.say("done")


@pytest.fixture
def store(tmp_path: Path) -> Iterator[StateStore]:
    with StateStore.initialise(tmp_path / "state", "b") as opened:
        yield opened


async def service_with(tmp_path: Path, store: StateStore,
                       executor: Instant) -> RunbookService:
    config = lab_site_config(tmp_path, ["b", "a", "c"])
    policies = {t: load_policy(POLICIES / f"{t}.yaml") for t in ("water", "transport")}
    runbooks = RunbookService(config, store, dict.fromkeys(STEP_TYPES, executor),
                              policies=lambda: policies, reachable=lambda _site: True)
    await runbooks.load(config)
    return runbooks


@pytest.fixture
async def service(tmp_path: Path, store: StateStore) -> RunbookService:
    return await service_with(tmp_path, store, Instant())


async def test_an_operator_plans_runs_and_follows_a_switchover(
        aiohttp_client: AiohttpClient, service: RunbookService) -> None:
    client = await aiohttp_client(create_app(FakeDaemon(runbooks=service)))
    listed = await (await client.get("/v1/runbooks", headers=bearer("operator"))).json()
    assert {"switchover", "drill"} <= {b["name"] for b in listed["runbooks"]}
    planned = await client.post("/v1/runbooks/switchover/plan", headers=bearer("operator"),
                                json={"tenants": ["water"]})
    assert planned.status == 200
    assert (await planned.json())["steps"][0]["lines"] == ["ceph_health for water"]
    started = await client.post("/v1/runbooks/switchover/runs", headers=bearer("operator"),
                                json={"tenants": ["water"], "source": "a", "target": "b"})
    assert started.status == 202
    run_id = (await started.json())["id"]
    await service.engine.wait(run_id)
    shown = await (await client.get(f"/v1/runs/{run_id}", headers=bearer("operator"))).json()
    assert shown["state"] == "succeeded"
    assert [s["state"] for s in shown["steps"]] == ["succeeded"] * len(shown["steps"])
    assert "total_seconds" in shown["report"]


async def test_a_tenant_may_drill_its_own_tenant_and_nothing_else(
        aiohttp_client: AiohttpClient, service: RunbookService, store: StateStore) -> None:
    client = await aiohttp_client(create_app(FakeDaemon(runbooks=service)))
    refused = await client.post("/v1/runbooks/switchover/runs", headers=bearer("water"),
                                json={})
    assert refused.status == 403
    other = await client.post("/v1/tenants/transport/drills", headers=bearer("water"),
                              json={})
    assert other.status == 403
    own = await client.post("/v1/tenants/water/drills", headers=bearer("water"),
                            json={"tenants": ["transport"]})
    assert own.status == 202
    body = await own.json()
    assert body["tenants"] == ["water"] and body["kind"] == "drill"
    await service.engine.wait(body["id"])
    assert store.list_runs(10, "runbook")[0].detail["tenants"] == ["water"]


async def test_bad_requests_are_refused_before_a_run_exists(
        aiohttp_client: AiohttpClient, service: RunbookService, store: StateStore) -> None:
    client = await aiohttp_client(create_app(FakeDaemon(runbooks=service)))
    cases = [
        ("/v1/runbooks/teleport/runs", {}, 404),
        ("/v1/runbooks/switchover/runs", {"target": "z"}, 409),
        ("/v1/runbooks/switchover/runs", {"source": "b", "target": "b"}, 409),
        ("/v1/runbooks/switchover/runs", {"tenants": ["nobody"]}, 409),
        ("/v1/runbooks/switchover/runs", {"tenants": ["water"], "extra": 1}, 400),
    ]
    for path, body, status in cases:
        response = await client.post(path, headers=bearer("operator"), json=body)
        assert response.status == status, (path, body, await response.text())
    assert store.list_runs(10, "runbook") == []


async def test_a_second_switchover_of_the_same_tenant_waits_for_the_first(
        aiohttp_client: AiohttpClient, tmp_path: Path, store: StateStore) -> None:
    gate = asyncio.Event()

    class Slow(Instant):
        async def run(self, step: AnyStep, context: StepContext) -> None:
            await gate.wait()

    service = await service_with(tmp_path, store, Slow())
    client = await aiohttp_client(create_app(FakeDaemon(runbooks=service)))
    first = await client.post("/v1/runbooks/switchover/runs", headers=bearer("operator"),
                              json={"tenants": ["water"]})
    second = await client.post("/v1/runbooks/switchover/runs", headers=bearer("operator"),
                               json={})
    assert (first.status, second.status) == (202, 409)
    run_id = (await first.json())["id"]
    aborted = await client.post(f"/v1/runs/{run_id}/abort", headers=bearer("operator"))
    assert (await aborted.json())["state"] == "cancelled"
    gate.set()


async def test_a_peer_may_ask_for_an_rbd_mirror_restart_the_config_must_allow(
        aiohttp_client: AiohttpClient, service: RunbookService) -> None:
    client = await aiohttp_client(create_app(FakeDaemon(runbooks=service)))
    path = "/v1/peers/rbd-mirror/restart"
    assert (await client.post(path, headers=bearer("water"))).status == 403
    refused = await client.post(path, headers=bearer("peer"))
    assert refused.status == 409
    assert "names no ceph.rbd_mirror_unit" in (await refused.json())["error"]["message"]
