"""The route table: each route's method, path, access rule and bodies, declared once.

The app, the auth middleware and the OpenAPI document all read this table, so a
route cannot exist without an access rule or be missing from the published spec.
"""

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web
from pydantic import BaseModel

from drd.domain.access import Access

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    handler: Handler
    access: Access
    summary: str
    request_model: type[BaseModel] | None = None
    response_model: type[BaseModel] | None = None
    content_type: str = "application/json"
    audited: bool = False  # operator actions that change something are always audited

    @property
    def key(self) -> str:
        return f"{self.method} {self.path}"
