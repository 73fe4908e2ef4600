"""Request handlers: parse, ask the daemon context, answer. No business logic here."""

from datetime import UTC, datetime

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import ValidationError

from drd.api.backup_handlers import BACKUP_ROUTES
from drd.api.bodies import json_response
from drd.api.errors import ApiError, invalid_body
from drd.api.keys import CONTEXT, PRINCIPAL, ROUTES
from drd.api.lease_handlers import LEASE_ROUTES
from drd.api.openapi import openapi_document
from drd.api.routes import Route
from drd.api.runbook_handlers import RUNBOOK_ROUTES
from drd.api.schemas import (
    AuditList,
    HeartbeatIn,
    HeartbeatOut,
    PolicyAccepted,
    Probe,
    RunList,
    SiteStatus,
)
from drd.config.yaml_document import ConfigError, format_path
from drd.domain.access import TENANT_NAME, Access, RoleKind
from drd.replication.views import RpoReport, TenantProtection

MAX_LIST = 1000




def _now() -> datetime:
    return datetime.now(UTC)


async def healthz(request: web.Request) -> web.Response:
    probe = request.app[CONTEXT].liveness(_now())
    return json_response(probe, 200 if probe.ok else 503)


async def readyz(request: web.Request) -> web.Response:
    probe = request.app[CONTEXT].readiness(_now())
    return json_response(probe, 200 if probe.ok else 503)


async def metrics(request: web.Request) -> web.Response:
    body = generate_latest(request.app[CONTEXT].metrics.registry)
    response = web.Response(body=body)
    response.headers["Content-Type"] = CONTENT_TYPE_LATEST
    return response


async def status(request: web.Request) -> web.Response:
    return json_response(request.app[CONTEXT].status(_now()))


async def heartbeat(request: web.Request) -> web.Response:
    try:
        beat = HeartbeatIn.model_validate_json(await request.read())
    except ValidationError as error:
        raise invalid_body(error) from error
    principal = request[PRINCIPAL]
    caller = principal.name if principal else "anonymous"
    # A peer token speaks for one site only: site-b cannot claim to be site c.
    if principal is None or (principal.name != f"site-{beat.site}"
                             and principal.kind is not RoleKind.OPERATOR):
        raise ApiError(403, "forbidden",
                       f"token {caller} may not send heartbeats for site {beat.site}")
    return json_response(request.app[CONTEXT].receive_heartbeat(beat, _now()))


def _limit(request: web.Request) -> int:
    raw = request.query.get("limit", "100")
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_LIST:
        raise ApiError(400, "invalid_query", f"limit must be an integer in 1..{MAX_LIST}",
                       {"field": "limit", "value": raw})
    return int(raw)


async def audit(request: web.Request) -> web.Response:
    return json_response(await request.app[CONTEXT].audit_log(_limit(request)))


async def tenant_runs(request: web.Request) -> web.Response:
    tenant = _tenant(request)
    return json_response(await request.app[CONTEXT].tenant_runs(tenant, _limit(request)))


def _tenant(request: web.Request) -> str:
    tenant = request.match_info["tenant"]
    if not TENANT_NAME.match(tenant):
        raise ApiError(404, "not_found", f"no tenant {tenant!r}")
    return tenant


async def tenant_protection(request: web.Request) -> web.Response:
    return json_response(request.app[CONTEXT].tenant_protection(_tenant(request)))


async def rpo(request: web.Request) -> web.Response:
    tenant = request.query.get("tenant")
    if tenant is not None and not TENANT_NAME.match(tenant):
        raise ApiError(400, "invalid_query", "tenant is not a tenant name",
                       {"field": "tenant", "value": tenant})
    return json_response(request.app[CONTEXT].rpo_report(tenant))


async def put_policy(request: web.Request) -> web.Response:
    tenant = _tenant(request)
    body = await request.read()
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as error:
        raise ApiError(400, "invalid_body", "the policy must be UTF-8 YAML text") from error
    try:
        accepted = await request.app[CONTEXT].put_policy(tenant, text)
    except ConfigError as error:
        problems = [{"line": issue.line, "field": format_path(issue.path) if issue.path
                     else None, "message": issue.message, "text": issue.render()}
                    for issue in error.issues]
        raise ApiError(400, "invalid_policy",
                       f"the policy has {len(problems)} problem(s); nothing was changed",
                       {"problems": problems}) from error
    return json_response(accepted)


async def openapi(request: web.Request) -> web.Response:
    return web.json_response(openapi_document(request.app[ROUTES]))


ALL_ROUTES = [
    Route("GET", "/healthz", healthz, Access.OPEN,
          "Liveness: the main loop ticked recently", response_model=Probe),
    Route("GET", "/readyz", readyz, Access.OPEN,
          "Readiness: config loaded and Ceph reachable", response_model=Probe),
    Route("GET", "/metrics", metrics, Access.OPEN, "Prometheus metrics",
          content_type="text/plain"),
    Route("GET", "/v1/status", status, Access.SITE,
          "This site, its Ceph health, its peers and the daemon version",
          response_model=SiteStatus),
    Route("POST", "/v1/peers/heartbeat", heartbeat, Access.PEER,
          "A peer site's daemon reports that it is alive",
          request_model=HeartbeatIn, response_model=HeartbeatOut),
    Route("GET", "/v1/audit", audit, Access.OPERATOR,
          "The audit log of operator actions, newest first", response_model=AuditList),
    Route("GET", "/v1/tenants/{tenant}/runs", tenant_runs, Access.TENANT,
          "A tenant's run history (backups, drills, failovers)", response_model=RunList),
    Route("GET", "/v1/tenants/{tenant}/protection", tenant_protection, Access.TENANT,
          "Mirroring state and measured RPO of the tenant's images",
          response_model=TenantProtection),
    Route("PUT", "/v1/tenants/{tenant}/policy", put_policy, Access.TENANT,
          "Replace the tenant's policy (YAML body): validated, stored atomically, applied",
          response_model=PolicyAccepted, content_type="application/yaml", audited=True),
    Route("GET", "/v1/rpo", rpo, Access.SITE,
          "Measured RPO of every protected image and destination (?tenant= to filter)",
          response_model=RpoReport),
    Route("GET", "/v1/openapi.json", openapi, Access.SITE,
          "This API's OpenAPI document"),
    *BACKUP_ROUTES,
    *RUNBOOK_ROUTES,
    *LEASE_ROUTES,
]
