"""Probes every tenant's service_probes at every site kind they name, all at once, every
`service_probe_seconds`; the takeover service asks it whether a tenant is still served
at a holder's site (drd.domain.service_probes says why that vetoes a takeover).

A TCP probe answers when a connection opens; an HTTP probe when the response status is
2xx or 3xx (redirects are not followed: a health endpoint answers itself). Each probe
has its own timeout from the policy. Results are kept per (tenant, probe, site kind).
"""

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

import aiohttp

from drd.domain.service_probes import ProbeTrack, ServiceProbe, takeover_veto
from drd.domain.site import SiteKind
from drd.domain.site_config import SiteConfig
from drd.domain.tenant_policy import TenantPolicy

ProbeKey = tuple[str, str, SiteKind]  # tenant, probe name, the site kind probed


@dataclass(frozen=True)
class ProbeResult:
    tenant: str
    probe: str
    kind: SiteKind
    endpoint: str
    answering: bool
    result: str
    seconds_since_answer: float | None


async def probe_once(session: aiohttp.ClientSession, endpoint: str, deadline: float
                     ) -> tuple[bool, str]:
    """Whether the endpoint answered within `deadline` seconds, and what it said (or why
    not)."""
    parts = urlsplit(endpoint)
    started = time.monotonic()
    try:
        async with asyncio.timeout(deadline):
            if parts.scheme == "tcp":
                _, writer = await asyncio.open_connection(parts.hostname, parts.port)
                writer.close()
                await writer.wait_closed()
                said = "connected"
            else:
                async with session.get(endpoint, allow_redirects=False) as response:
                    if response.status >= 400:
                        return False, f"HTTP {response.status}"
                    said = f"HTTP {response.status}"
    except TimeoutError:
        return False, f"no answer within {deadline:g} s"
    except (OSError, aiohttp.ClientError) as error:
        return False, f"{type(error).__name__}: {error}"
    return True, f"{said} in {(time.monotonic() - started) * 1000:.0f} ms"


class ServiceProber:
    def __init__(self) -> None:
        self.tracks: dict[ProbeKey, ProbeTrack] = {}
        self._endpoints: dict[ProbeKey, str] = {}
        self._window = 6.0

    def _wanted(self, policies: dict[str, TenantPolicy]) -> dict[ProbeKey, ServiceProbe]:
        return {(tenant, probe.name, kind): probe
                for tenant, policy in policies.items()
                for probe in policy.protection.service_probes
                for kind in (SiteKind.PRODUCTION, SiteKind.SAME_CITY)
                if probe.endpoint(kind) is not None}

    async def loop(self, session: aiohttp.ClientSession, config: Callable[[], SiteConfig],
                   policies: Callable[[], dict[str, TenantPolicy]]) -> None:
        while True:
            started = time.monotonic()
            settings = config().takeover
            self._window = settings.service_answer_window_seconds
            wanted = self._wanted(policies())
            for gone in self.tracks.keys() - wanted.keys():
                del self.tracks[gone], self._endpoints[gone]
            await asyncio.gather(*(self._probe(session, key, probe)
                                   for key, probe in wanted.items()))
            await asyncio.sleep(max(0.0, settings.service_probe_seconds
                                    - (time.monotonic() - started)))

    async def _probe(self, session: aiohttp.ClientSession, key: ProbeKey,
                     probe: ServiceProbe) -> None:
        endpoint = probe.endpoint(key[2])
        assert endpoint is not None
        if self._endpoints.get(key) != endpoint:  # a new or changed probe starts afresh
            self.tracks[key], self._endpoints[key] = ProbeTrack(), endpoint
        answered, said = await probe_once(session, endpoint, probe.timeout.total_seconds())
        self.tracks[key].record(answered, said, time.monotonic())

    def served_at(self, tenant: str, holder: str, holder_kind: SiteKind) -> str | None:
        """Why `tenant` still counts as served at the holder's site, if it does."""
        tracks = {probe: track for (owner, probe, kind), track in self.tracks.items()
                  if owner == tenant and kind is holder_kind}
        return takeover_veto(tracks, holder, time.monotonic(), self._window)

    def results(self) -> list[ProbeResult]:
        now = time.monotonic()
        return [ProbeResult(tenant=tenant, probe=probe, kind=kind,
                            endpoint=self._endpoints.get((tenant, probe, kind), ""),
                            answering=track.answering(now, self._window),
                            result=track.last_result,
                            seconds_since_answer=None if track.last_answer is None
                            else round(now - track.last_answer, 1))
                for (tenant, probe, kind), track in sorted(self.tracks.items())]
