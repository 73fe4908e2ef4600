"""Call every peer site's daemon on an interval, and record what came back."""

import asyncio
import time
from datetime import UTC, datetime

import aiohttp
import structlog

from drd import __version__
from drd.api.schemas import HeartbeatIn, HeartbeatOut
from drd.daemon.runtime import SiteRuntime
from drd.domain.failure_detector import Signal
from drd.domain.site_config import PeerConfig

log = structlog.get_logger()


async def heartbeat_loop(runtime: SiteRuntime, session: aiohttp.ClientSession) -> None:
    """Forever: beat every peer at once, then sleep out the interval."""
    while True:
        started = time.monotonic()
        peers = list(runtime.config.peers)
        await asyncio.gather(*(beat_peer(runtime, session, peer) for peer in peers))
        interval = runtime.config.heartbeat.interval_seconds
        await asyncio.sleep(max(0.0, interval - (time.monotonic() - started)))


async def beat_peer(runtime: SiteRuntime, session: aiohttp.ClientSession,
                    peer: PeerConfig) -> None:
    config = runtime.config
    beat = HeartbeatIn(site=config.site.name, kind=config.site.kind,
                       sent_at=datetime.now(UTC), version=__version__,
                       ceph_health=runtime.ceph.health)
    token = runtime.loaded.peer_tokens[peer.name]
    url = str(peer.url).rstrip("/") + "/v1/peers/heartbeat"
    timeout = aiohttp.ClientTimeout(total=config.heartbeat.timeout_seconds)
    started = time.monotonic()
    try:
        async with session.post(url, data=beat.model_dump_json(), timeout=timeout, headers={
                "Authorization": f"Bearer {token}",
                "Content-Type": "application/json"}) as response:
            body = await response.read()
            if response.status != 200:
                raise PeerRefused(f"HTTP {response.status}: {body[:200]!r}")
            answer = HeartbeatOut.model_validate_json(body)
    except (TimeoutError, aiohttp.ClientError, PeerRefused, ValueError) as error:
        _record_failure(runtime, peer.name, _describe(error))
        return
    round_trip = (time.monotonic() - started) * 1000
    observation = runtime.peers.get(peer.name)
    if observation is None:  # the peer left the config during the call
        return
    if answer.site != peer.name:
        _record_failure(runtime, peer.name, f"{url} answered as site {answer.site}")
        return
    was_reachable = observation.last_error == "" and observation.last_seen is not None
    now = datetime.now(UTC)
    runtime.peers[peer.name] = observation.answered(
        now, round_trip, answer.ceph_health, answer.version)
    runtime.signals.record(peer.name, Signal.API, True, now, f"answered in {round_trip:.0f} ms")
    runtime.metrics.peer_round_trip.labels(peer=peer.name).set(round_trip / 1000)
    if not was_reachable:
        log.info("peer answered", peer=peer.name, round_trip_ms=round(round_trip, 1))


class PeerRefused(Exception):
    """The peer answered, but not with a heartbeat."""


def _describe(error: BaseException) -> str:
    if isinstance(error, TimeoutError):
        return "timed out"
    return str(error) or type(error).__name__


def _record_failure(runtime: SiteRuntime, peer: str, error: str) -> None:
    observation = runtime.peers.get(peer)
    if observation is None:
        return
    if observation.last_error != error:
        log.warning("peer heartbeat failed", peer=peer, error=error)
    runtime.peers[peer] = observation.failed(error)
    runtime.signals.record(peer, Signal.API, False, datetime.now(UTC), error)
