"""The runbook routes: list, show and plan runbooks; start, follow, resume and abort runs;
and a tenant's own drills. Parse, ask the runbook service, answer."""

from collections.abc import Awaitable

from aiohttp import web
from pydantic import BaseModel

from drd.api.bodies import json_response, read_body
from drd.api.errors import ApiError
from drd.api.keys import CONTEXT, PRINCIPAL
from drd.api.routes import Route
from drd.domain.access import TENANT_NAME, Access, Principal
from drd.runbooks.engine import RunRefused
from drd.runbooks.service import RunbookService
from drd.runbooks.views import (
    PlanOut,
    RestartOut,
    ResumeRequest,
    RunbookList,
    RunbookText,
    RunRequest,
    RunView,
    RunViewList,
)

MAX_RUNS = 500




def _service(request: web.Request) -> RunbookService:
    service: RunbookService | None = request.app[CONTEXT].runbooks
    if service is None:
        raise ApiError(503, "unavailable", "this daemon runs no runbooks")
    return service


def _actor(request: web.Request) -> str:
    principal: Principal | None = request[PRINCIPAL]
    return principal.name if principal else "unknown"




def _run_id(request: web.Request) -> int:
    raw = request.match_info["run"]
    if not raw.isdigit():
        raise ApiError(404, "not_found", f"no run {raw!r}")
    return int(raw)


async def _answer(work: Awaitable[BaseModel], status: int = 200) -> web.Response:
    """Map the service's refusals onto HTTP: unknown → 404, refused → 409."""
    try:
        result = await work
    except KeyError as error:
        raise ApiError(404, "not_found", str(error.args[0])) from error
    except RunRefused as error:
        raise ApiError(409, "refused", str(error)) from error
    except PermissionError as error:
        raise ApiError(403, "forbidden", str(error)) from error
    return json_response(result, status)


async def list_runbooks(request: web.Request) -> web.Response:
    return json_response(_service(request).listing())


async def show_runbook(request: web.Request) -> web.Response:
    service = _service(request)
    try:
        return json_response(service.show(request.match_info["name"]))
    except KeyError as error:
        raise ApiError(404, "not_found", str(error.args[0])) from error


async def plan_runbook(request: web.Request) -> web.Response:
    wanted = await read_body(request, RunRequest)
    return await _answer(_service(request).plan(request.match_info["name"], wanted))


async def start_run(request: web.Request) -> web.Response:
    wanted = await read_body(request, RunRequest)
    return await _answer(_service(request).run(request.match_info["name"], wanted,
                                               _actor(request)), 202)


async def tenant_drill(request: web.Request) -> web.Response:
    """A tenant's token may drill its own tenant, and nothing else."""
    tenant = request.match_info["tenant"]
    if not TENANT_NAME.match(tenant):
        raise ApiError(404, "not_found", f"no tenant {tenant!r}")
    wanted = await read_body(request, RunRequest)
    return await _answer(_service(request).run("drill", wanted, _actor(request),
                                               only_tenant=tenant), 202)


async def list_runs(request: web.Request) -> web.Response:
    raw = request.query.get("limit", "50")
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_RUNS:
        raise ApiError(400, "invalid_query", f"limit must be an integer in 1..{MAX_RUNS}",
                       {"field": "limit", "value": raw})
    return await _answer(_service(request).runs(int(raw), request.query.get("kind")))


async def show_run(request: web.Request) -> web.Response:
    return await _answer(_service(request).run_detail(_run_id(request)))


async def resume_run(request: web.Request) -> web.Response:
    wanted = await read_body(request, ResumeRequest)
    return await _answer(_service(request).resume(_run_id(request), wanted,
                                                  _actor(request)), 202)


async def abort_run(request: web.Request) -> web.Response:
    return await _answer(_service(request).abort(_run_id(request), _actor(request)))


async def restart_rbd_mirror(request: web.Request) -> web.Response:
    return await _answer(_service(request).restart_own_rbd_mirror())


RUNBOOK_ROUTES = [
    Route("GET", "/v1/runbooks", list_runbooks, Access.OPERATOR,
          "The runbooks this daemon can run, and the files it refused",
          response_model=RunbookList),
    Route("GET", "/v1/runbooks/{name}", show_runbook, Access.OPERATOR,
          "One runbook and its YAML text", response_model=RunbookText),
    Route("POST", "/v1/runbooks/{name}/plan", plan_runbook, Access.OPERATOR,
          "The dry run: every step with what it would do now; changes nothing",
          request_model=RunRequest, response_model=PlanOut),
    Route("POST", "/v1/runbooks/{name}/runs", start_run, Access.OPERATOR,
          "Start a run of the runbook (sites and tenants may be overridden)",
          request_model=RunRequest, response_model=RunView, audited=True),
    Route("POST", "/v1/tenants/{tenant}/drills", tenant_drill, Access.TENANT,
          "Start a drill of the tenant's own images", request_model=RunRequest,
          response_model=RunView, audited=True),
    Route("GET", "/v1/runs", list_runs, Access.OPERATOR,
          "Runbook runs, newest first (?kind=drill to filter, ?limit=)",
          response_model=RunViewList),
    Route("GET", "/v1/runs/{run}", show_run, Access.OPERATOR,
          "One run: its state, each step's attempts, output and time, and its report",
          response_model=RunView),
    Route("POST", "/v1/runs/{run}/resume", resume_run, Access.OPERATOR,
          "Continue a paused or interrupted run from where it stopped",
          request_model=ResumeRequest, response_model=RunView, audited=True),
    Route("POST", "/v1/runs/{run}/abort", abort_run, Access.OPERATOR,
          "Stop a run for good", response_model=RunView, audited=True),
    Route("POST", "/v1/peers/rbd-mirror/restart", restart_rbd_mirror, Access.PEER,
          "Restart this site's rbd-mirror, as a peer's runbook step asks when its "
          "replay from a dead site is stuck; 409 when the config gives no way",
          response_model=RestartOut, audited=True),
]
