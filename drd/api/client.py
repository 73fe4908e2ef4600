"""A small client for a drd daemon's API, for the CLI, the lab and the tests.

Failures are typed (unreachable, refused, malformed); each caller maps them once,
the CLI to exit codes, the lab to its errors.
"""

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any

import aiohttp

REQUEST_TIMEOUT = 10.0


class ApiClientError(Exception):
    """Talking to the daemon failed."""


class DaemonUnreachable(ApiClientError):
    """No answer: connection refused, reset, or timed out."""


class DaemonRefused(ApiClientError):
    """The daemon answered with an error body; `status` and `code` say which."""

    def __init__(self, message: str, status: int, code: str, details: Any = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.details = details if details is not None else {}


@dataclass(frozen=True)
class ApiTarget:
    url: str
    token: str = field(repr=False)


async def request_json(target: ApiTarget, method: str, path: str, *,
                       deadline: float = REQUEST_TIMEOUT, data: str | None = None,
                       content_type: str = "application/json") -> Any:
    """Call the API; the parsed JSON body of a success, or a typed error."""
    headers = {"Authorization": f"Bearer {target.token}", "Content-Type": content_type}
    try:
        async with aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=deadline)) as session, \
                session.request(method, target.url + path, headers=headers,
                                data=data) as response:
            body = await response.json(content_type=None)
    except (aiohttp.ClientConnectionError, TimeoutError) as error:
        raise DaemonUnreachable(
            f"the daemon at {target.url} is unreachable: {error or 'timed out'}") from error
    except ValueError as error:
        raise ApiClientError(f"the daemon at {target.url} did not answer with JSON") from error
    if response.status >= 400:
        detail = body.get("error", {}) if isinstance(body, dict) else {}
        code = str(detail.get("code", f"http_{response.status}"))
        message = str(detail.get("message", response.reason))
        raise DaemonRefused(f"the daemon at {target.url} refused: {message} "
                            f"({response.status} {code})", response.status, code,
                            detail.get("details", {}))
    return body


def get_json(target: ApiTarget, path: str, timeout: float = REQUEST_TIMEOUT) -> Any:
    """Blocking GET, for synchronous callers."""
    return asyncio.run(request_json(target, "GET", path, deadline=timeout))


def put_text(target: ApiTarget, path: str, text: str, content_type: str) -> Any:
    """Blocking PUT of a text body (a YAML policy), for synchronous callers."""
    return asyncio.run(request_json(target, "PUT", path, data=text,
                                    content_type=content_type))


def post_json(target: ApiTarget, path: str, body: dict[str, Any],
              timeout: float = REQUEST_TIMEOUT) -> Any:
    """Blocking POST of a JSON body, for synchronous callers."""
    return asyncio.run(request_json(target, "POST", path, data=json.dumps(body),
                                    deadline=timeout))

