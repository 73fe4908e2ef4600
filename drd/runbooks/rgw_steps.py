"""RGW steps that move the master zone: `rgw_zone_promote` and `rgw_zone_failback`.

They call the adapters proven on the lab (drd.ceph.rgw_failover.promote_zone and
drd.ceph.rgw_failback.failback_zone), which look before they act: a zone already master
is said so and nothing is committed, since even a no-op `period update --commit` bumps
the epoch and reloads every gateway. The master zone serves every tenant, so a run
scoped to some tenants leaves it where it is and says why (drd.domain.rgw_zone_steps).

How a site reaches the realm (names, zones, gateways, the system user's keys) is its
config's `rgw:` section (drd.runbooks.rgw_access). Every adapter call blocks
(radosgw-admin, rados and HTTP) and runs in a worker thread.
"""

from drd.ceph.rgw_admin import RgwAdminError
from drd.ceph.rgw_failback import failback_zone
from drd.ceph.rgw_failover import (
    PromotionRefused,
    RgwFailoverError,
    RgwZone,
    current_period,
    metadata_caught_up,
    promote_zone,
)
from drd.ceph.rgw_gateway_units import any_answers
from drd.domain.rgw_failover import MetadataCatchUp
from drd.domain.rgw_zone_steps import (
    PromoteMode,
    ZoneLook,
    failback_facts,
    failback_plan,
    failed_with,
    promote_facts,
    promote_plan,
    promotion_mode,
    scope_skip,
    step_lines,
)
from drd.domain.runbook_steps import AnyStep, SiteParams
from drd.runbooks.image_work import params_of
from drd.runbooks.rgw_access import RgwRealm, rgw_of
from drd.runbooks.step_api import StepContext, StepExecutor, StepFailed


def _look(realm: RgwRealm, zone: RgwZone, *, catch_up: bool) -> ZoneLook:
    """The period on the zone's cluster and, unless it is master, whether the master's
    gateways answer (and with `catch_up`, Ceph's verdict on the zone's metadata).
    Blocking."""
    try:
        period = current_period(zone, realm.city)
    except RgwAdminError as error:
        raise StepFailed(f"cannot read the period on zone {zone.name}'s cluster: "
                         f"{error}") from error
    master = period.master_zone
    if master == zone.name:
        return ZoneLook(period)
    endpoints = dict(period.endpoints).get(master, ())
    mode = promotion_mode(zone.name, master, endpoints, any_answers(endpoints))
    if not catch_up:
        return ZoneLook(period, mode)
    try:
        return ZoneLook(period, mode, metadata_caught_up(zone, realm.city))
    except RgwAdminError as error:
        return ZoneLook(period, mode, None, str(error))


def _target(step: AnyStep, context: StepContext) -> tuple[str, str | None]:
    """The step's site, and why it does nothing in this run (None: it acts)."""
    return context.site(params_of(step, SiteParams).site), scope_skip(context.target.tenants)


def _skipped(context: StepContext, site: str, reason: str) -> None:
    context.output.facts["skipped"] = reason
    context.output.say(f"site {site}'s RGW zone: {reason}")


class RgwZonePromote:
    """`rgw_zone_promote {site}`: the site's zone becomes master of the zonegroup;
    forced only when the master's gateways do not answer."""

    async def plan(self, step: AnyStep, context: StepContext) -> list[str]:
        site, skip = _target(step, context)
        if skip is not None:
            return [f"site {site}'s RGW zone: {skip}"]
        try:
            realm = rgw_of(context)
            zone = realm.zone(site)
            look = await context.in_thread(lambda: _look(realm, zone, catch_up=True))
        except StepFailed as error:
            return [f"make site {site}'s RGW zone master: would fail now ({error})"]
        return promote_plan(site, zone.name, look)

    async def run(self, step: AnyStep, context: StepContext) -> None:
        site, skip = _target(step, context)
        if skip is not None:
            _skipped(context, site, skip)
            return
        realm = rgw_of(context)
        zone = realm.zone(site)
        look = await context.in_thread(lambda: _look(realm, zone, catch_up=False))
        mode = look.mode or PromoteMode(False, f"zone {zone.name} is already master")
        try:
            result = await context.in_thread(lambda: promote_zone(
                zone, realm.city, realm.gateways, force=mode.force))
        except PromotionRefused as refused:
            raise StepFailed(f"zone {zone.name} was not promoted: {refused} ({mode.reason})"
                             ) from refused
        except RgwFailoverError as error:
            raise StepFailed(f"promoting zone {zone.name} failed: "
                             f"{failed_with(error, error.steps)}") from error
        except RgwAdminError as error:
            raise StepFailed(f"promoting zone {zone.name} failed: {error}") from error
        out = context.output
        for line in step_lines(result.steps):
            out.say(line)
        out.facts.update(promote_facts(site, result, mode, context.now()))
        if not result.changed:
            out.say(f"zone {zone.name} is already master of {result.period_after}; "
                    f"nothing changed")
            return
        how = "forced" if result.forced else "caught up, unforced"
        out.say(f"zone {zone.name} is master of {result.period_after} ({how}; was "
                f"{result.period_before.master_zone}) after {result.elapsed_s:.1f} s")


class RgwZoneFailback:
    """`rgw_zone_failback {site}`: the site's zone, back after a failover, rejoins as a
    secondary, catches up with the master, and becomes master again."""

    async def plan(self, step: AnyStep, context: StepContext) -> list[str]:
        site, skip = _target(step, context)
        if skip is not None:
            return [f"site {site}'s RGW zone: {skip}"]
        try:
            realm = rgw_of(context)
            zone = realm.zone(site)
            others = realm.others(site)
            return await context.in_thread(lambda: _failback_plan(realm, site, zone, others))
        except StepFailed as error:
            return [f"fail site {site}'s RGW zone back: would fail now ({error})"]

    async def run(self, step: AnyStep, context: StepContext) -> None:
        site, skip = _target(step, context)
        if skip is not None:
            _skipped(context, site, skip)
            return
        realm = rgw_of(context)
        zone = realm.zone(site)
        peers = realm.others(site)
        if not peers:
            raise StepFailed(f"no other RGW zone is known here to fail zone {zone.name} "
                             f"back from (peers[].rgw_zone)")
        keys = await context.in_thread(realm.keys)
        try:
            result = await context.in_thread(
                lambda: failback_zone(zone, peers, realm.city, keys, realm.gateways))
        except RgwFailoverError as error:
            raise StepFailed(f"failing zone {zone.name} back failed at {error.step}: "
                             f"{failed_with(error, error.steps)}") from error
        except RgwAdminError as error:
            raise StepFailed(f"failing zone {zone.name} back failed: {error}") from error
        out = context.output
        for line in step_lines(result.steps):
            out.say(line)
        out.facts.update(failback_facts(site, result, context.now()))
        if not result.changed:
            out.say(f"zone {zone.name} is already master of {result.period_after} and "
                    f"every zone runs it; nothing changed")
            return
        out.say(f"zone {zone.name} is master again of {result.period_after} (was "
                f"{result.previous_master}) after {result.elapsed_s:.1f} s")


def _failback_plan(realm: RgwRealm, site: str, zone: RgwZone,
                   others: list[RgwZone]) -> list[str]:
    """Blocking: reads every zone's period, the returning zone's gateways and sync."""
    try:
        periods = [current_period(other, realm.city) for other in others]
    except RgwAdminError as error:
        raise StepFailed(f"cannot read the other zones' periods: {error}") from error
    if not periods:
        raise StepFailed("no other RGW zone is known here (peers[].rgw_zone)")
    latest = max(periods, key=lambda p: (p.realm_epoch, p.epoch))
    names = [other.name for other in others]
    if latest.master_zone == zone.name:
        return failback_plan(site, zone.name, latest, running=True, catch_up=None,
                             others=names)
    try:
        running = realm.gateways.running(zone.name)
    except Exception as error:  # the lab's or systemd's control: any failure is "cannot tell"
        raise StepFailed(f"cannot tell whether zone {zone.name}'s gateways run: "
                         f"{error}") from error
    try:
        catch_up: MetadataCatchUp | None = metadata_caught_up(zone, realm.city)
    except RgwAdminError:
        catch_up = None
    return failback_plan(site, zone.name, latest, running=running, catch_up=catch_up,
                         others=names)


def rgw_executors() -> dict[str, StepExecutor]:
    """Executors by step type: the RGW master zone's promotion and failback."""
    return {"rgw_zone_promote": RgwZonePromote(), "rgw_zone_failback": RgwZoneFailback()}
