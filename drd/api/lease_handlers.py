"""The lease route: a peer site asks this site's voter to promise it a protection group's
lease, to renew it or to take it over (drd.domain.lease decides)."""

from aiohttp import web

from drd.api.bodies import json_response, read_body
from drd.api.errors import ApiError
from drd.api.keys import CONTEXT, PRINCIPAL
from drd.api.routes import Route
from drd.api.schemas import LeaseAskIn, LeaseReleaseIn, LeaseVoteOut
from drd.domain.access import Access


def _speaking_for(request: web.Request, site: str, doing: str) -> None:
    """A peer token speaks for one site only: site-b cannot act in site c's name."""
    principal = request[PRINCIPAL]
    if principal is None or principal.name != f"site-{site}":
        caller = principal.name if principal else "anonymous"
        raise ApiError(403, "forbidden", f"token {caller} may not {doing} for site {site}")


async def ask_lease(request: web.Request) -> web.Response:
    ask = await read_body(request, LeaseAskIn)
    _speaking_for(request, ask.candidate, "ask for a lease")
    return json_response(await request.app[CONTEXT].vote_on_lease(ask))


async def release_lease(request: web.Request) -> web.Response:
    released = await read_body(request, LeaseReleaseIn)
    _speaking_for(request, released.holder, "release a lease")
    return json_response(await request.app[CONTEXT].release_lease(released))


LEASE_ROUTES = [
    Route("POST", "/v1/peers/lease", ask_lease, Access.PEER,
          "A peer site asks this site to promise it a protection group's lease (first "
          "holder, renewal or takeover); a new promise is stored before the answer",
          request_model=LeaseAskIn, response_model=LeaseVoteOut),
    Route("POST", "/v1/peers/lease/release", release_lease, Access.PEER,
          "The holder of a protection group's lease hands it over: its images were moved "
          "away by an operator", request_model=LeaseReleaseIn, response_model=LeaseVoteOut),
]
