"""Typed keys for what the aiohttp app carries."""

from aiohttp import web

from drd.api.context import DaemonContext
from drd.api.routes import Route
from drd.domain.access import Principal

CONTEXT = web.AppKey("drd_context", DaemonContext)
ROUTES = web.AppKey("drd_routes", dict[str, Route])
PRINCIPAL = web.RequestKey[Principal | None]("drd_principal")
