"""The backup routes: a tenant's backups, backing up now, its snapshots, restores and
usage. Parse, ask the daemon context, answer; the work is drd.backup's."""


from aiohttp import web

from drd.api.bodies import json_response, read_body
from drd.api.errors import ApiError
from drd.api.keys import CONTEXT
from drd.api.routes import Route
from drd.api.schemas import TenantUsageOut
from drd.backup.job_run import JobFailed
from drd.backup.rbd_restore import RestoreRefused
from drd.backup.views import (
    BackupRequest,
    BackupsStarted,
    RestoreDone,
    RestoreRequest,
    SnapshotList,
    TenantBackups,
)
from drd.domain.access import TENANT_NAME, Access


def _tenant(request: web.Request) -> str:
    tenant = request.match_info["tenant"]
    if not TENANT_NAME.match(tenant):
        raise ApiError(404, "not_found", f"no tenant {tenant!r}")
    return tenant




async def tenant_backups(request: web.Request) -> web.Response:
    return json_response(await request.app[CONTEXT].tenant_backups(_tenant(request)))


async def start_backups(request: web.Request) -> web.Response:
    tenant = _tenant(request)
    wanted = await read_body(request, BackupRequest)
    try:
        started = request.app[CONTEXT].start_backups(tenant, wanted.source)
    except KeyError as error:
        raise ApiError(404, "not_found", str(error.args[0])) from error
    return json_response(started, 202)


async def tenant_snapshots(request: web.Request) -> web.Response:
    try:
        listed = await request.app[CONTEXT].tenant_snapshots(_tenant(request))
    except KeyError as error:
        raise ApiError(404, "not_found", str(error.args[0])) from error
    return json_response(listed)


async def restore(request: web.Request) -> web.Response:
    tenant = _tenant(request)
    wanted = await read_body(request, RestoreRequest)
    try:
        done = await request.app[CONTEXT].restore(tenant, wanted)
    except KeyError as error:
        raise ApiError(404, "not_found", str(error.args[0])) from error
    except ValueError as error:  # a source or target that is not an image spec
        raise ApiError(400, "invalid_body", str(error)) from error
    except RestoreRefused as error:
        raise ApiError(409, "refused", str(error)) from error
    except JobFailed as error:
        raise ApiError(500, "restore_failed", error.reason) from error
    return json_response(done, 201)


async def tenant_usage(request: web.Request) -> web.Response:
    try:
        usage = await request.app[CONTEXT].tenant_usage(_tenant(request))
    except KeyError as error:
        raise ApiError(404, "not_found", str(error.args[0])) from error
    return json_response(usage)


BACKUP_ROUTES = [
    Route("GET", "/v1/tenants/{tenant}/backups", tenant_backups, Access.TENANT,
          "The tenant's backups: running with progress, recent runs, next runs, and "
          "sources not backed up with why", response_model=TenantBackups),
    Route("POST", "/v1/tenants/{tenant}/backups", start_backups, Access.TENANT,
          "Back up the tenant's images now, of one source or all",
          request_model=BackupRequest, response_model=BackupsStarted, audited=True),
    Route("GET", "/v1/tenants/{tenant}/snapshots", tenant_snapshots, Access.TENANT,
          "The restic snapshots in the tenant's repository", response_model=SnapshotList),
    Route("GET", "/v1/tenants/{tenant}/usage", tenant_usage, Access.TENANT,
          "Metering: bytes the tenant's snapshots hold in its repository, bytes its "
          "backups added, and its runs by result", response_model=TenantUsageOut),
    Route("POST", "/v1/tenants/{tenant}/restores", restore, Access.OPERATOR,
          "Restore a backed-up image into a new RBD image on this site",
          request_model=RestoreRequest, response_model=RestoreDone, audited=True),
]
