"""One error shape for every failure: {"error": {"code", "message", "details"}}.

Adapters raise typed exceptions; this module is the one place that turns them into
HTTP status codes (STYLE.md rule 6).
"""

from typing import Any

import structlog
from aiohttp import web
from aiohttp.typedefs import Handler
from pydantic import ValidationError

log = structlog.get_logger()


class ApiError(Exception):
    """An error with its HTTP status and a stable machine-readable code."""

    def __init__(self, status: int, code: str, message: str,
                 details: dict[str, Any] | list[Any] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details if details is not None else {}


def error_response(status: int, code: str, message: str,
                   details: dict[str, Any] | list[Any] | None = None) -> web.Response:
    body = {"error": {"code": code, "message": message,
                      "details": details if details is not None else {}}}
    return web.json_response(body, status=status)


def invalid_body(error: ValidationError) -> ApiError:
    """A request body that failed validation: every problem, each with its field path."""
    problems = [
        {"field": ".".join(str(part) for part in issue["loc"]) or "(body)",
         "message": issue["msg"]}
        for issue in error.errors(include_url=False, include_input=False)
    ]
    return ApiError(400, "invalid_body",
                    f"the request body has {len(problems)} problem(s); nothing was changed",
                    {"problems": problems})


_HTTP_CODES = {
    400: "bad_request", 401: "unauthenticated", 403: "forbidden", 404: "not_found",
    405: "method_not_allowed", 413: "body_too_large", 415: "unsupported_media_type",
}


@web.middleware
async def error_middleware(request: web.Request,
                           handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except ApiError as error:
        return error_response(error.status, error.code, error.message, error.details)
    except web.HTTPException as error:
        if error.status < 400:
            raise
        code = _HTTP_CODES.get(error.status, f"http_{error.status}")
        return error_response(error.status, code, error.reason)
    except Exception:
        # The caller gets one sentence; the log keeps the traceback.
        log.exception("unhandled error in API handler", path=request.path)
        return error_response(500, "internal", "internal error; see the daemon's log")
