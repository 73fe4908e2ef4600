"""Make a secondary RGW zone the master (failover), idempotently, step by step.

What Ceph 16.2 does, measured on the lab (three zones, one gateway each):
- `zone modify --master --default` then `period update --commit` on the zone to
  promote commits locally, also with the old master's gateway dead: the commit goes
  to the master only when the local zonegroup names another zone as master.
- The gateways reload the new period by themselves: the commit notifies the realm's
  control object, which every gateway of the realm watches, and its realm reloader
  pauses the frontends and reopens the store about 1 s later. The new master's gateway
  then pushes the period to the other zones' gateways (POST /admin/realm/period),
  retrying every 2 s, backing off to 30 s (rgw_period_push_interval{,_max}), so a
  dead zone gets it within 30 s of its gateway coming back. No restart is needed:
  the Red Hat procedure's restart costs up to 120 s (rgw_exit_timeout_secs). A
  restart, through the caller's GatewayControl, is the fallback when no gateway of
  the zone is seen to reload (see drd.ceph.rgw_gateway_watch for how that is seen).
- The new master accepts a new bucket and a new object about 1 s after the commit.
- `period update --commit` with nothing changed still commits a new epoch and makes
  every gateway reload, so each step here looks before it acts.
- With the master's gateway down, `sync status` on a secondary says "failed to fetch
  master sync status": catch-up cannot be proven, so an unplanned failover is a forced
  one, as with `rbd mirror image promote --force`.

Blocking (radosgw-admin and rados subprocesses, polling): call from worker threads.
"""

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from drd.ceph.rgw_admin import RgwAdmin, RgwAdminError
from drd.ceph.rgw_gateway_watch import GatewayWatchError, gateway_watchers, reloaded_since
from drd.ceph.rgw_multisite import Multisite
from drd.domain.rgw_failover import (
    FailoverStep,
    MetadataCatchUp,
    MetadataSyncInfo,
    PeriodInfo,
    PromoteAction,
    PromoteResult,
    decide_promotion,
    judge_metadata,
    parse_metadata_sync_info,
    parse_period,
)
from drd.domain.rgw_sync_status import parse_sync_status

RELOAD_TIMEOUT = 45.0  # above the 30 s an OSD keeps a killed gateway's stale watch
POLL_INTERVAL = 0.5


class GatewayControl(Protocol):
    """How the caller (re)starts a zone's gateways: systemd on a site, PIDs in the lab."""

    def restart(self, zone: str) -> None:
        """Restart every gateway of `zone`, or start them; return once they answer HTTP."""
        ...

    def running(self, zone: str) -> bool:
        """Whether a gateway process of `zone` runs (RADOS keeps a crashed one's watch
        for 30 s, so the control pool's watchers cannot tell)."""
        ...


@dataclass(frozen=True)
class RgwZone:
    """A zone and radosgw-admin on the cluster that holds it."""

    name: str
    admin: RgwAdmin


class RgwFailoverError(RgwAdminError):
    """A failover or failback step failed; `steps` were done before it."""

    def __init__(self, step: str, zone: str, message: str, *,
                 steps: tuple[FailoverStep, ...] = (), exit_code: int | None = None) -> None:
        super().__init__(f"{step} on zone {zone}: {message}", exit_code=exit_code)
        self.step, self.zone, self.steps = step, zone, steps


class PromotionRefused(RgwFailoverError):
    """The zone's metadata is not proven caught up with the master, and force was not given."""

    def __init__(self, zone: str, reason: str, catch_up: MetadataCatchUp,
                 steps: tuple[FailoverStep, ...]) -> None:
        super().__init__("check metadata", zone, reason, steps=steps)
        self.catch_up = catch_up


class Steps:
    """The steps of one call, timed; `run` turns an RgwAdminError into a named one."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.started = clock()
        self.done: list[FailoverStep] = []

    def record(self, name: str, zone: str, changed: bool, detail: str, since: float,
               *, check: bool = False) -> None:
        self.done.append(FailoverStep(name, zone, changed, detail, self.clock() - since,
                                      check))

    def failed(self, name: str, zone: str, error: Exception) -> RgwFailoverError:
        code = error.exit_code if isinstance(error, RgwAdminError) else None
        return RgwFailoverError(name, zone, str(error), steps=tuple(self.done), exit_code=code)

    def elapsed(self) -> float:
        return self.clock() - self.started


def current_period(zone: RgwZone, city: Multisite) -> PeriodInfo:
    """The period committed on the zone's cluster (not necessarily what its gateway runs)."""
    document = zone.admin.json("period", "get", "--rgw-realm", city.realm)
    try:
        return parse_period(document)
    except (KeyError, TypeError, ValueError) as error:
        raise RgwAdminError(f"period get on zone {zone.name}: {error}") from None


def metadata_caught_up(zone: RgwZone, city: Multisite) -> MetadataCatchUp:
    """Is `zone` caught up with the master's metadata? Ceph's own verdict, typed."""
    text = zone.admin.text("sync", "status", "--rgw-realm", city.realm,
                           "--rgw-zone", zone.name)
    return judge_metadata(zone.name, parse_sync_status(text), metadata_sync_info(zone).state)


def metadata_sync_info(zone: RgwZone) -> MetadataSyncInfo:
    return parse_metadata_sync_info(zone.admin.json("metadata", "sync", "status",
                                                    "--rgw-zone", zone.name) or {})


def promote_zone(zone: RgwZone, city: Multisite, gateways: GatewayControl, *,
                 force: bool = False, reload_timeout: float = RELOAD_TIMEOUT) -> PromoteResult:
    """Make `zone` the master of the zonegroup; its gateways serve the new period on return.

    Refuses (PromotionRefused) unless its metadata has caught up with the master, or
    force; with the master unreachable that cannot be proven, so failover needs force."""
    steps = Steps()
    try:
        before = current_period(zone, city)
    except RgwAdminError as error:
        raise steps.failed("read period", zone.name, error) from error
    since = steps.clock()
    if before.master_zone == zone.name:
        steps.record("check master", zone.name, False, f"already master of {before}", since,
                     check=True)
        return PromoteResult(zone.name, tuple(steps.done), steps.elapsed(), before, before)
    try:
        catch_up = metadata_caught_up(zone, city)
    except RgwAdminError as error:
        raise steps.failed("check metadata", zone.name, error) from error
    decision = decide_promotion(zone.name, before.master_zone, catch_up, force)
    steps.record("check metadata", zone.name, False, decision.reason, since, check=True)
    if decision.action is PromoteAction.REFUSE:
        raise PromotionRefused(zone.name, decision.reason, catch_up, tuple(steps.done))
    _make_master(zone, city, steps)
    watching = _watchers(zone, steps)
    after = _commit(zone, city, steps)
    _gateways_follow(zone, gateways, watching, reload_timeout, steps)
    return PromoteResult(zone.name, tuple(steps.done), steps.elapsed(), before, after,
                         forced=not catch_up.caught_up)


def _make_master(zone: RgwZone, city: Multisite, steps: Steps) -> None:
    since = steps.clock()
    try:
        group = zone.admin.json("zonegroup", "get", "--rgw-realm", city.realm,
                                "--rgw-zonegroup", city.zonegroup)
        own = zone.admin.json("zone", "get", "--rgw-realm", city.realm, "--rgw-zone", zone.name)
        if group.get("master_zone") == own.get("id"):
            steps.record("zone modify", zone.name, False,
                         f"zonegroup {city.zonegroup} already names it master", since)
            return
        zone.admin.json("zone", "modify", "--rgw-realm", city.realm, "--rgw-zonegroup",
                        city.zonegroup, "--rgw-zone", zone.name, "--master", "--default")
    except RgwAdminError as error:
        raise steps.failed("zone modify", zone.name, error) from error
    steps.record("zone modify", zone.name, True,
                 f"made it master and default zone of zonegroup {city.zonegroup}", since)


def _commit(zone: RgwZone, city: Multisite, steps: Steps) -> PeriodInfo:
    since = steps.clock()
    try:
        committed = zone.admin.json("period", "update", "--commit", "--rgw-realm", city.realm,
                                    "--rgw-zone", zone.name)
        after = parse_period(committed)
    except (RgwAdminError, KeyError, TypeError, ValueError) as error:
        raise steps.failed("commit period", zone.name, error) from error
    if after.master_zone != zone.name:
        raise RgwFailoverError("commit period", zone.name,
                               f"committed {after}, whose master is not {zone.name}",
                               steps=tuple(steps.done))
    steps.record("commit period", zone.name, True, f"committed {after}", since)
    return after


def _control_pool(zone: RgwZone) -> str:
    return str(zone.admin.json("zone", "get", "--rgw-zone", zone.name)["control_pool"])


def zone_gateways(zone: RgwZone) -> frozenset[str]:
    """RADOS client ids of the zone's running gateways (see drd.ceph.rgw_gateway_watch)."""
    try:
        return gateway_watchers(zone.admin.conf, _control_pool(zone))
    except (GatewayWatchError, KeyError, TypeError) as error:
        raise RgwAdminError(f"gateways of zone {zone.name}: {error}") from None


def _watchers(zone: RgwZone, steps: Steps) -> frozenset[str]:
    try:
        return zone_gateways(zone)
    except RgwAdminError as error:
        raise steps.failed("find gateways", zone.name, error) from error


def _gateways_follow(zone: RgwZone, gateways: GatewayControl, before: frozenset[str],
                     timeout: float, steps: Steps) -> None:
    """Wait for the zone's gateways to reload the committed period; restart them if none does."""
    since = steps.clock()
    if before:
        deadline = since + timeout
        while True:
            now = _watchers(zone, steps)
            if reloaded_since(before, now):
                steps.record("gateways reload", zone.name, True,
                             f"{len(now)} gateway(s) reloaded the period by themselves",
                             since)
                return
            if steps.clock() > deadline:
                break
            time.sleep(POLL_INTERVAL)
    why = (f"no gateway reloaded within {timeout:.0f} s" if before
           else "no gateway of the zone was running")
    try:
        gateways.restart(zone.name)
    except Exception as error:
        raise steps.failed("restart gateways", zone.name, error) from error
    if not _watchers(zone, steps):
        raise RgwFailoverError("restart gateways", zone.name,
                               "restarted, yet no gateway watches the zone's control pool",
                               steps=tuple(steps.done))
    steps.record("restart gateways", zone.name, True, f"restarted them: {why}", since)
