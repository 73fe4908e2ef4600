"""A site's gateways under systemd, as failover and failback restart them
(drd.ceph.rgw_failover.GatewayControl), and whether a gateway answers HTTP.

drd runs on one host of its site, so `systemctl` reaches this site's units only. For
another site's zone, `running` asks its gateways over HTTP, and `restart` refuses with
what to do there: drd restarts gateways only as a fallback, and in a failback to start
the returning zone's gateways once the realm is pulled (drd.ceph.rgw_failback), so an
operator may start them by hand at that point and resume the run.
"""

import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from drd.ceph.systemd_units import RESTART_TIMEOUT, UnitError, systemctl, systemctl_argv
from drd.domain.rgw_settings import ZONE_PLACEHOLDER

ANSWER_TIMEOUT = 60.0
PROBE_TIMEOUT = 2.0


# What restarting or asking a gateway unit raises (an alias: the same units code).
GatewayUnitError = UnitError


def unit_of(pattern: str, zone: str) -> str:
    """The unit of `zone`'s gateways: the pattern with {zone} replaced."""
    return pattern.replace(ZONE_PLACEHOLDER, zone)


def gateway_answers(url: str, timeout: float = PROBE_TIMEOUT) -> bool:
    """Whether a gateway answers an anonymous S3 request at `url` (any HTTP status)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout):  # noqa: S310 (a zone endpoint)
            return True
    except urllib.error.HTTPError:
        return True  # it answered, if only to refuse
    except (OSError, ValueError):
        return False


def any_answers(urls: Sequence[str], timeout: float = PROBE_TIMEOUT) -> bool:
    return any(gateway_answers(url, timeout) for url in urls)


@dataclass(frozen=True)
class SystemdGateways:
    """GatewayControl of a site whose gateways systemd runs on drd's own host.

    `endpoints(zone)` gives a zone's gateway URLs (from the period); blocking."""

    unit_pattern: str
    local_zone: str
    endpoints: Callable[[str], Sequence[str]]
    answer_timeout: float = ANSWER_TIMEOUT

    def restart(self, zone: str) -> None:
        unit = unit_of(self.unit_pattern, zone)
        if zone != self.local_zone:
            raise GatewayUnitError(
                f"zone {zone}'s gateways run on another site; this site's drd manages "
                f"only zone {self.local_zone}'s: (re)start them there (e.g. `systemctl "
                f"restart {unit}`), then resume the run")
        systemctl(systemctl_argv("restart", unit), RESTART_TIMEOUT)
        urls = self.endpoints(zone)
        deadline = time.monotonic() + self.answer_timeout
        while not any_answers(urls):
            if time.monotonic() > deadline:
                raise GatewayUnitError(f"restarted {unit}, yet no gateway of zone {zone} "
                                       f"answers at {', '.join(urls) or 'no endpoint'} "
                                       f"within {self.answer_timeout:.0f} s")
            time.sleep(0.5)

    def running(self, zone: str) -> bool:
        if zone != self.local_zone:
            return any_answers(self.endpoints(zone))
        try:
            systemctl(systemctl_argv("is-active", unit_of(self.unit_pattern, zone)),
                       PROBE_TIMEOUT * 5)
        except GatewayUnitError:
            return False  # inactive, failed or unknown: not running
        return True

