"""Build the aiohttp application: routes from the table, then auth, audit and metrics."""

import time
from datetime import UTC, datetime

import structlog
from aiohttp import web
from aiohttp.typedefs import Handler

from drd.api.context import DaemonContext
from drd.api.errors import ApiError, error_middleware
from drd.api.handlers import ALL_ROUTES
from drd.api.keys import CONTEXT, PRINCIPAL, ROUTES
from drd.api.routes import Route
from drd.domain.access import Access, Principal, decide_access

log = structlog.get_logger()

MAX_BODY_BYTES = 1024 * 1024


def _route_of(request: web.Request) -> Route | None:
    resource = request.match_info.route.resource
    if resource is None:
        return None
    return request.app[ROUTES].get(f"{request.method} {resource.canonical}")


def _bearer(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


@web.middleware
async def metrics_middleware(request: web.Request,
                             handler: Handler) -> web.StreamResponse:
    started = time.perf_counter()
    status = 500
    try:
        response = await handler(request)
        status = response.status
        return response
    finally:
        route = _route_of(request)
        request.app[CONTEXT].metrics.api_latency.labels(
            route=route.path if route else "unmatched", method=request.method,
            status=str(status)).observe(time.perf_counter() - started)


@web.middleware
async def auth_middleware(request: web.Request,
                          handler: Handler) -> web.StreamResponse:
    route = _route_of(request)
    if route is None:  # 404 and 405 answer without needing a token
        return await handler(request)
    context = request.app[CONTEXT]
    token = _bearer(request)
    principal = context.tokens.authenticate(token) if token else None
    decision = decide_access(principal, route.access, request.match_info.get("tenant"))
    request[PRINCIPAL] = principal
    if not decision.allowed:
        await _audit(context, principal, request, route, "refused")
        log.warning("request refused", path=request.path, reason=decision.reason,
                    caller=principal.name if principal else None)
        if principal is None:
            raise ApiError(401, "unauthenticated", "a valid bearer token is required")
        raise ApiError(403, "forbidden", decision.reason)
    if not route.audited:
        return await handler(request)
    try:
        response = await handler(request)
    except Exception:
        await _audit(context, principal, request, route, "failed")
        raise
    await _audit(context, principal, request, route,
                 "ok" if response.status < 400 else "failed")
    return response


async def _audit(context: DaemonContext, principal: Principal | None, request: web.Request,
                 route: Route, result: str) -> None:
    if route.access is Access.OPEN:
        return
    await context.record_audit(principal, route.key, request.path, result, datetime.now(UTC))


def create_app(context: DaemonContext) -> web.Application:
    # Order: errors outermost, so that auth refusals and handler errors share one shape.
    app = web.Application(middlewares=[metrics_middleware, error_middleware, auth_middleware],
                          client_max_size=MAX_BODY_BYTES)
    app[CONTEXT] = context
    app[ROUTES] = {route.key: route for route in ALL_ROUTES}
    for route in ALL_ROUTES:
        app.router.add_route(route.method, route.path, route.handler)
    return app
