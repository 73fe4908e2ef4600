"""A site's gateways under systemd, as failover and failback restart them
(drd.ceph.rgw_failover.GatewayControl), and whether a gateway answers HTTP.

drd runs on one host of its site, so `systemctl` reaches this site's units only. For
another site's zone, `running` asks its gateways over HTTP, and `restart` refuses with
what to do there: drd restarts gateways only as a fallback, and in a failback to start
the returning zone's gateways once the realm is pulled (drd.ceph.rgw_failback), so an
operator may start them by hand at that point and resume the run.

The daemon's user needs leave to manage the unit (a polkit rule for org.freedesktop.
systemd1.manage-units limited to it), since drd runs unprivileged.
"""

import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import sh

from drd.domain.rgw_settings import ZONE_PLACEHOLDER

SYSTEMCTL = "systemctl"
# A gateway can take rgw_exit_timeout_secs (120 s) to stop; systemd kills it after its
# own TimeoutStopSec, so the whole restart stays below this.
RESTART_TIMEOUT = 200.0
ANSWER_TIMEOUT = 60.0
PROBE_TIMEOUT = 2.0


class GatewayUnitError(Exception):
    """A gateway unit could not be (re)started or asked, or is not this host's to manage."""


def unit_of(pattern: str, zone: str) -> str:
    """The unit of `zone`'s gateways: the pattern with {zone} replaced."""
    return pattern.replace(ZONE_PLACEHOLDER, zone)


def systemctl_argv(action: str, unit: str) -> list[str]:
    """argv of `systemctl` for `restart` or `is-active` of one unit (or glob)."""
    if action == "is-active":
        return ["is-active", "--quiet", unit]
    if action == "restart":
        return ["restart", unit]
    raise ValueError(f"no systemctl action {action!r} here")


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
        _systemctl(systemctl_argv("restart", unit), RESTART_TIMEOUT)
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
            _systemctl(systemctl_argv("is-active", unit_of(self.unit_pattern, zone)),
                       PROBE_TIMEOUT * 5)
        except GatewayUnitError:
            return False  # inactive, failed or unknown: not running
        return True


def _systemctl(argv: list[str], timeout: float) -> None:
    shown = " ".join([SYSTEMCTL, *argv])
    try:
        sh.Command(SYSTEMCTL)(*argv, _timeout=timeout, _tty_out=False)
    except sh.ErrorReturnCode as error:
        stderr = error.stderr.decode(errors="replace").strip().splitlines()
        raise GatewayUnitError(f"`{shown}` exited {error.exit_code}: "
                               f"{stderr[-1] if stderr else 'no reason given'}") from None
    except sh.TimeoutException:
        raise GatewayUnitError(f"`{shown}` did not finish within {timeout:.0f} s") from None
    except sh.CommandNotFound:
        raise GatewayUnitError(f"{SYSTEMCTL} is not installed on this host") from None
