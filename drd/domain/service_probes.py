"""A tenant's service probes (`protection.service_probes` in its policy), and the veto
they hold over an automatic takeover of the tenant's groups.

drd judges a site lost from its own heartbeats and Ceph probes. The tenant's users may
still reach their service there: a fault that cuts drd's paths and leaves the tenant's
network standing. Taking over then would promote a second writable copy under a service
that still writes to the first. So while a probe of the tenant's service at the holder's
site answers, the same-city site does not take the tenant's groups over, and says why.
A probe that stopped answering lifts the veto only after `window` seconds without an
answer: one answer lost on the way keeps it, as one lost heartbeat never moves anything.

Declare a probe that fails when the service cannot do its work (an HTTP health check
that touches the service's storage, say), not one that a hung process still answers.
Pure: the probing itself is in drd.daemon.service_prober.
"""

from dataclasses import dataclass
from datetime import timedelta
from typing import Annotated
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from drd.domain.durations import PositiveDuration
from drd.domain.policy_names import SelectionName
from drd.domain.site import SiteKind

SCHEMES = ("tcp", "http", "https")
MAX_TIMEOUT = timedelta(seconds=30)


def _endpoint(text: str) -> str:
    """tcp://host:port, or an http(s) URL; never credentials, which would end in logs."""
    parts = urlsplit(text)
    if parts.scheme not in SCHEMES:
        raise ValueError(f"{text!r}: the scheme must be one of {', '.join(SCHEMES)} "
                         f"(tcp://host:port, http://host[:port]/path)")
    if parts.username is not None or parts.password is not None or parts.query:
        raise ValueError("credentials or a query string (which may carry a token) in a "
                         "probe URL would appear in status and logs; probe an endpoint "
                         "that needs neither")
    try:
        port = parts.port
    except ValueError as error:
        raise ValueError(f"{text!r}: {error}") from None
    if not parts.hostname:
        raise ValueError(f"{text!r}: no host")
    if parts.scheme == "tcp" and (port is None or parts.path not in ("", "/")):
        raise ValueError(f"{text!r}: a tcp probe is tcp://host:port, nothing more")
    return text


def _bounded(timeout: timedelta) -> timedelta:
    if timeout > MAX_TIMEOUT:
        raise ValueError(f"at most {MAX_TIMEOUT.total_seconds():g}s: a probe slower than "
                         f"that says nothing in time to matter")
    return timeout


Endpoint = Annotated[str, AfterValidator(_endpoint)]


class ServiceProbe(BaseModel):
    """One of the tenant's services, at production and (optionally) at the same-city site."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: SelectionName = Field(description="Name of the probe, unique within the tenant.",
                                examples=["water-api"])
    production: Endpoint = Field(
        description="The service at the production site: tcp://host:port (answers when a "
                    "connection opens) or http(s)://host[:port]/path (answers with a 2xx "
                    "or 3xx status).", examples=["http://10.20.0.5:8080/healthz"])
    same_city: Endpoint | None = Field(
        default=None, description="The service at the same-city site, where it runs after "
                                  "a takeover; optional, shown in status.",
        examples=["tcp://10.30.0.5:5432"])
    timeout: Annotated[PositiveDuration, AfterValidator(_bounded)] = Field(
        default=timedelta(seconds=2),
        description="How long one probe may take; slower is no answer. Default 2s, at "
                    "most 30s.", examples=["2s"])

    def endpoint(self, kind: SiteKind) -> str | None:
        if kind is SiteKind.PRODUCTION:
            return self.production
        return self.same_city if kind is SiteKind.SAME_CITY else None


@dataclass
class ProbeTrack:
    """One probe of one endpoint over time, on this site's monotonic clock."""

    last_answer: float | None = None
    last_probe: float | None = None
    last_result: str = "not probed yet"
    failures: int = 0

    def record(self, answered: bool, result: str, now: float) -> None:
        self.last_probe, self.last_result = now, result
        if answered:
            self.last_answer, self.failures = now, 0
        else:
            self.failures += 1

    def answering(self, now: float, window: float) -> bool:
        return self.last_answer is not None and now - self.last_answer <= window


def takeover_veto(tracks: dict[str, ProbeTrack], holder: str, now: float,
                  window: float) -> str | None:
    """Why the tenant's service still counts as served at the holder's site, if it does:
    `tracks` are the tenant's probes of the holder's endpoints, by probe name."""
    answering = sorted(name for name, track in tracks.items() if track.answering(now, window))
    if not answering:
        return None
    ages = ", ".join(f"{name} {now - (tracks[name].last_answer or now):.1f} s ago"
                     for name in answering)
    return (f"the tenant's service still answers at {holder} (probe {ages}): its users are "
            f"served there, so no takeover while it does")
