"""The HTTP API in front of a fake daemon (the DaemonContext Protocol is the boundary):
auth on every route, one error shape, audit of refusals, metrics and OpenAPI."""

from dataclasses import dataclass, field
from datetime import UTC, datetime

import pytest
from aiohttp.test_utils import TestClient
from aiohttp.web import Application, Request
from pytest_aiohttp import AiohttpClient

from drd.api.app import create_app
from drd.api.metrics import DaemonMetrics
from drd.api.schemas import (
    AuditList,
    CephView,
    HeartbeatIn,
    HeartbeatOut,
    LeaseAskIn,
    LeaseReleaseIn,
    LeaseVoteOut,
    PolicyAccepted,
    Probe,
    RunList,
    RunOut,
    SiteStatus,
    TenantUsageOut,
)
from drd.api.tokens import TokenEntry, TokenRegistry, hash_token
from drd.backup.rbd_restore import RestoreRefused
from drd.backup.views import (
    BackupsStarted,
    RestoreDone,
    RestoreRequest,
    SnapshotList,
    TenantBackups,
)
from drd.config.yaml_document import ConfigError, ConfigIssue
from drd.domain.access import Principal
from drd.domain.site import SiteKind
from drd.replication.views import RpoReport, TenantProtection
from drd.runbooks.service import RunbookService

Client = TestClient[Request, Application]
TOKENS = {"operator": "drd_op", "peer": "drd_peer_b", "water": "drd_water"}
NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)


@dataclass
class FakeDaemon:
    """Stands in for the daemon at the Protocol boundary; records what the API asked."""

    audits: list[tuple[str, str, str]] = field(default_factory=list)
    beats: list[HeartbeatIn] = field(default_factory=list)
    asks: list[LeaseAskIn] = field(default_factory=list)
    policies: dict[str, str] = field(default_factory=dict)
    tokens: TokenRegistry = field(default_factory=lambda: TokenRegistry((
        TokenEntry(name="ops", role="operator", sha256=hash_token(TOKENS["operator"])),
        TokenEntry(name="site-b", role="peer", sha256=hash_token(TOKENS["peer"])),
        TokenEntry(name="water-ci", role="tenant:water", sha256=hash_token(TOKENS["water"])),
    )))
    metrics: DaemonMetrics = field(default_factory=lambda: DaemonMetrics("a", "production",
                                                                           "0.1.0"))
    runbooks: RunbookService | None = None

    def status(self, now: datetime) -> SiteStatus:
        return SiteStatus(site="a", kind=SiteKind.PRODUCTION, version="0.1.0", started_at=NOW,
                          uptime_seconds=1.0, config_loaded_at=NOW,
                          ceph=CephView(reachable=True, health="HEALTH_OK"), peers=[])

    def liveness(self, now: datetime) -> Probe:
        return Probe(ok=True)

    def readiness(self, now: datetime) -> Probe:
        return Probe(ok=False, reasons=["Ceph not probed yet"])

    async def vote_on_lease(self, ask: LeaseAskIn) -> LeaseVoteOut:
        self.asks.append(ask)
        return LeaseVoteOut(site="a", answer="granted", reason="first holder",
                            holder=ask.candidate, epoch=ask.epoch, remaining_seconds=6.0)

    async def release_lease(self, released: LeaseReleaseIn) -> LeaseVoteOut:
        return LeaseVoteOut(site="a", answer="released", reason="released",
                            holder=released.holder, epoch=released.epoch,
                            remaining_seconds=0.0)

    def receive_heartbeat(self, beat: HeartbeatIn, now: datetime) -> HeartbeatOut:
        self.beats.append(beat)
        return HeartbeatOut(site="a", kind=SiteKind.PRODUCTION, received_at=now,
                            version="0.1.0", ceph_health="HEALTH_OK")

    async def record_audit(self, principal: Principal | None, action: str, target: str,
                           result: str, now: datetime) -> None:
        self.audits.append((principal.name if principal else "anonymous", action, result))

    async def audit_log(self, limit: int) -> AuditList:
        return AuditList(entries=[])

    async def tenant_runs(self, tenant: str, limit: int) -> RunList:
        return RunList(runs=[RunOut(id=1, kind="backup", subject=tenant, state="succeeded",
                                    started_at=NOW, finished_at=NOW)])

    def tenant_protection(self, tenant: str) -> TenantProtection:
        return TenantProtection(tenant=tenant, images=[], problems=[])

    def rpo_report(self, tenant: str | None) -> RpoReport:
        return RpoReport(rows=[], breaches=0, warnings=0)

    async def put_policy(self, tenant: str, text: str) -> PolicyAccepted:
        if "broken" in text:
            raise ConfigError([ConfigIssue(f"{tenant}.yaml", 3, ("protection",),
                                           "broken on purpose")])
        self.policies[tenant] = text
        return PolicyAccepted(tenant=tenant, selections=1, applied=True)

    async def tenant_backups(self, tenant: str) -> TenantBackups:
        return TenantBackups(tenant=tenant, repository=None, running=[], recent=[],
                             next_runs=[], not_backed_up=["no backup policy here"])

    def start_backups(self, tenant: str, source: str | None) -> BackupsStarted:
        if source == "missing":
            raise KeyError(f"tenant {tenant} has nothing to back up in source {source}")
        return BackupsStarted(tenant=tenant, jobs=[f"backup of {tenant}/{source}"],
                              sources=[source or ""])

    async def tenant_snapshots(self, tenant: str) -> SnapshotList:
        raise KeyError(f"tenant {tenant} has no backup policy on this site")

    async def restore(self, tenant: str, request: RestoreRequest) -> RestoreDone:
        raise RestoreRefused(f"{request.to} exists; give force to replace it")

    async def tenant_usage(self, tenant: str) -> TenantUsageOut:
        raise KeyError(f"tenant {tenant} has no backup policy on this site")


def bearer(who: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKENS[who]}"}


@pytest.fixture
async def daemon_and_client(aiohttp_client: AiohttpClient) -> tuple[FakeDaemon, Client]:
    daemon = FakeDaemon()
    return daemon, await aiohttp_client(create_app(daemon))


async def test_a_request_without_a_token_is_refused_in_the_common_error_shape(
        daemon_and_client: tuple[FakeDaemon, Client]) -> None:
    daemon, client = daemon_and_client
    response = await client.get("/v1/status")
    assert response.status == 401
    assert await response.json() == {"error": {
        "code": "unauthenticated", "message": "a valid bearer token is required",
        "details": {}}}
    assert daemon.audits == [("anonymous", "GET /v1/status", "refused")]

    wrong = await client.get("/v1/status", headers={"Authorization": "Bearer drd_nope"})
    assert wrong.status == 401


async def test_a_tenant_token_is_refused_on_another_tenant_and_on_operator_routes(
        daemon_and_client: tuple[FakeDaemon, Client]) -> None:
    daemon, client = daemon_and_client
    own = await client.get("/v1/tenants/water/runs", headers=bearer("water"))
    assert own.status == 200
    assert (await own.json())["runs"][0]["subject"] == "water"

    other = await client.get("/v1/tenants/transport/runs", headers=bearer("water"))
    assert other.status == 403
    assert (await other.json())["error"]["message"] == \
        "water-ci may act only for tenant water"
    for path in ("/v1/status", "/v1/audit"):
        refused = await client.get(path, headers=bearer("water"))
        assert refused.status == 403, path
    assert ("water-ci", "GET /v1/tenants/{tenant}/runs", "refused") in daemon.audits


async def test_operators_and_peers_read_status(
        daemon_and_client: tuple[FakeDaemon, Client]) -> None:
    _, client = daemon_and_client
    for who in ("operator", "peer"):
        response = await client.get("/v1/status", headers=bearer(who))
        assert response.status == 200
        assert SiteStatus.model_validate(await response.json()).site == "a"
    audit = await client.get("/v1/audit", headers=bearer("peer"))
    assert audit.status == 403


async def test_a_heartbeat_with_a_bad_body_lists_every_problem_and_changes_nothing(
        daemon_and_client: tuple[FakeDaemon, Client]) -> None:
    daemon, client = daemon_and_client
    response = await client.post("/v1/peers/heartbeat", headers=bearer("peer"),
                                 json={"site": "b", "kind": "moon", "extra": 1})
    assert response.status == 400
    error = (await response.json())["error"]
    assert error["code"] == "invalid_body"
    fields = {problem["field"] for problem in error["details"]["problems"]}
    assert fields == {"kind", "sent_at", "version", "ceph_health", "extra"}
    assert daemon.beats == []


async def test_a_peer_token_cannot_speak_for_another_site(
        daemon_and_client: tuple[FakeDaemon, Client]) -> None:
    daemon, client = daemon_and_client
    beat = {"site": "c", "kind": "remote", "sent_at": NOW.isoformat(), "version": "0.1.0",
            "ceph_health": "HEALTH_OK"}
    spoofed = await client.post("/v1/peers/heartbeat", headers=bearer("peer"), json=beat)
    assert spoofed.status == 403
    honest = await client.post("/v1/peers/heartbeat", headers=bearer("peer"),
                               json=beat | {"site": "b", "kind": "same-city"})
    assert honest.status == 200
    assert [b.site for b in daemon.beats] == ["b"]


async def test_a_peer_asks_for_a_lease_in_its_own_name_only(
        daemon_and_client: tuple[FakeDaemon, Client]) -> None:
    daemon, client = daemon_and_client
    ask = {"group": "water/db", "candidate": "c", "epoch": 2}
    spoofed = await client.post("/v1/peers/lease", headers=bearer("peer"), json=ask)
    assert spoofed.status == 403
    bad = await client.post("/v1/peers/lease", headers=bearer("peer"),
                            json=ask | {"candidate": "b", "epoch": 0})
    assert bad.status == 400
    assert (await bad.json())["error"]["details"]["problems"][0]["field"] == "epoch"
    honest = await client.post("/v1/peers/lease", headers=bearer("peer"),
                               json=ask | {"candidate": "b"})
    assert honest.status == 200 and (await honest.json())["answer"] == "granted"
    assert [(a.group, a.candidate, a.epoch) for a in daemon.asks] == [("water/db", "b", 2)]
    release = {"group": "water/db", "holder": "c", "epoch": 2}
    spoofed = await client.post("/v1/peers/lease/release", headers=bearer("peer"),
                                json=release)
    assert spoofed.status == 403
    honest = await client.post("/v1/peers/lease/release", headers=bearer("peer"),
                               json=release | {"holder": "b"})
    assert honest.status == 200 and (await honest.json())["answer"] == "released"


async def test_probes_and_metrics_are_open_and_everything_else_is_not(
        daemon_and_client: tuple[FakeDaemon, Client]) -> None:
    _, client = daemon_and_client
    assert (await client.get("/healthz")).status == 200
    not_ready = await client.get("/readyz")
    assert not_ready.status == 503
    assert (await not_ready.json())["reasons"] == ["Ceph not probed yet"]
    await client.get("/v1/status", headers=bearer("operator"))
    metrics = await (await client.get("/metrics")).text()
    assert 'drd_api_request_duration_seconds_count{method="GET",route="/v1/status",' \
           'status="200"} 1.0' in metrics
    assert "process_resident_memory_bytes" in metrics
    assert (await client.get("/v1/openapi.json")).status == 401


async def test_unknown_routes_answer_in_the_common_error_shape(
        daemon_and_client: tuple[FakeDaemon, Client]) -> None:
    _, client = daemon_and_client
    response = await client.get("/v1/nothing-here", headers=bearer("operator"))
    assert response.status == 404
    assert (await response.json())["error"]["code"] == "not_found"
    wrong_method = await client.delete("/v1/status", headers=bearer("operator"))
    assert wrong_method.status == 405
    assert (await wrong_method.json())["error"]["code"] == "method_not_allowed"


async def test_the_openapi_document_covers_every_route_with_its_access_rule(
        daemon_and_client: tuple[FakeDaemon, Client]) -> None:
    _, client = daemon_and_client
    document = await (await client.get("/v1/openapi.json", headers=bearer("operator"))).json()
    assert document["openapi"] == "3.1.0"
    operations = {(path, method): op for path, ops in document["paths"].items()
                  for method, op in ops.items()}
    assert operations[("/v1/status", "get")]["x-drd-access"] == "site"
    assert operations[("/healthz", "get")].get("security") is None
    heartbeat = operations[("/v1/peers/heartbeat", "post")]
    assert heartbeat["requestBody"]["content"]["application/json"]["schema"]["$ref"] == \
        "#/components/schemas/HeartbeatIn"
    assert "HeartbeatIn" in document["components"]["schemas"]
    assert operations[("/v1/tenants/{tenant}/runs", "get")]["parameters"][0]["name"] == \
        "tenant"


async def test_a_policy_put_is_audited_and_an_invalid_one_returns_every_problem(
        daemon_and_client: tuple[FakeDaemon, Client]) -> None:
    daemon, client = daemon_and_client
    accepted = await client.put("/v1/tenants/water/policy", headers=bearer("water"),
                                data="tenant: water\n")
    assert accepted.status == 200
    assert daemon.policies == {"water": "tenant: water\n"}
    refused = await client.put("/v1/tenants/water/policy", headers=bearer("water"),
                               data="broken")
    assert refused.status == 400
    error = (await refused.json())["error"]
    assert error["code"] == "invalid_policy"
    assert error["details"]["problems"] == [{
        "line": 3, "field": "protection", "message": "broken on purpose",
        "text": "water.yaml:3: protection: broken on purpose"}]
    other = await client.put("/v1/tenants/transport/policy", headers=bearer("water"),
                             data="tenant: transport\n")
    assert other.status == 403
    assert [(a, r) for _, a, r in daemon.audits] == [
        ("PUT /v1/tenants/{tenant}/policy", "ok"),
        ("PUT /v1/tenants/{tenant}/policy", "failed"),
        ("PUT /v1/tenants/{tenant}/policy", "refused")]


async def test_a_tenant_backs_itself_up_now_and_restores_are_for_operators(
        daemon_and_client: tuple[FakeDaemon, Client]) -> None:
    daemon, client = daemon_and_client
    started = await client.post("/v1/tenants/water/backups", headers=bearer("water"),
                                json={"source": "databases"})
    assert started.status == 202
    assert (await started.json())["jobs"] == ["backup of water/databases"]
    unknown = await client.post("/v1/tenants/water/backups", headers=bearer("water"),
                                json={"source": "missing"})
    assert unknown.status == 404
    assert "nothing to back up in source missing" in (await unknown.json())["error"]["message"]
    typo = await client.post("/v1/tenants/water/backups", headers=bearer("water"),
                             json={"sorce": "databases"})
    assert typo.status == 400
    restore = {"source": "rbd/water/db-1", "to": "rbd/water/db-1-restored"}
    refused = await client.post("/v1/tenants/water/restores", headers=bearer("water"),
                                json=restore)
    assert refused.status == 403
    exists = await client.post("/v1/tenants/water/restores", headers=bearer("operator"),
                               json=restore)
    assert exists.status == 409
    assert "give force to replace it" in (await exists.json())["error"]["message"]
    assert ("ops", "POST /v1/tenants/{tenant}/restores", "failed") in daemon.audits


async def test_usage_of_a_tenant_without_backups_here_is_not_found_with_the_reason(
        daemon_and_client: tuple[FakeDaemon, Client]) -> None:
    _, client = daemon_and_client
    usage = await client.get("/v1/tenants/water/usage", headers=bearer("water"))
    assert usage.status == 404
    assert "no backup policy" in (await usage.json())["error"]["message"]
