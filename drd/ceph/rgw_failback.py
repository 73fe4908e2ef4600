"""Give the master role back to a zone that was failed over from, once it is back.

What Ceph 16.2 does, measured on the lab:
- A returning old master's gateway starts with the period it had: it is the master of
  that stale period until the new master's period push reaches it (5-14 s after its
  start here; at most rgw_period_push_interval_max, 30 s). It then reloads as a
  secondary and runs a full metadata sync from the new master.
- That window loses data silently. In it the gateway's data sync reads the new
  master's data log, meets a bucket created during the outage, asks the metadata
  master (itself) for the bucket, gets 404, and drops the entries: the bucket's
  objects never reach the zone, while `sync status` says "data is caught up". Seen
  here for every bucket created on the new master while the old one was down.
  `bucket sync init` plus `bucket sync run` did not repair it: they marked the bucket
  caught up with none of its objects copied. So the zone's gateway should stay down
  until the realm is pulled; when it is down, failback pulls first and then starts
  it, so it starts as a secondary and fetches such buckets from the real master.
  When it came back on its own, the catch-up step checks every bucket (`bucket sync
  status`) and refuses, CatchUpTimeout naming the buckets, instead of promoting.
- `realm pull` stores the current period on the zone's cluster but notifies no
  gateway; and a gateway that is then pushed a period already stored there takes it
  for old news ("already have epoch") and never reloads (seen: 45 s without one). So
  a running gateway is left to the push, and pulled and restarted only when the push
  has not arrived within FOLLOW_TIMEOUT.
- A zone runs a period when its cluster holds it and its `metadata sync status` names
  that realm epoch: its gateway syncs metadata against it.
- Promoting it back is then the same promotion as a failover (drd.ceph.rgw_failover);
  the new period reaches the other zones by push, with the same remedy for a zone that
  does not follow.

Blocking: call from worker threads.
"""

import time
from collections.abc import Sequence
from dataclasses import dataclass

from drd.ceph.rgw_admin import RgwAdminError, S3Keys
from drd.ceph.rgw_failover import (
    GatewayControl,
    RgwFailoverError,
    RgwZone,
    Steps,
    current_period,
    metadata_caught_up,
    metadata_sync_info,
    promote_zone,
)
from drd.ceph.rgw_multisite import Multisite
from drd.domain.rgw_failover import (
    FailbackResult,
    FailoverStep,
    MetadataCatchUp,
    PeriodInfo,
    bucket_caught_up,
)

CATCH_UP_TIMEOUT = 180.0
FOLLOW_TIMEOUT = 45.0  # above rgw_period_push_interval_max (30 s)
POLL_INTERVAL = 1.0


class CatchUpTimeout(RgwFailoverError):
    """The returning zone did not catch up with the current master in time."""

    def __init__(self, zone: str, message: str, catch_up: MetadataCatchUp | None,
                 steps: tuple[FailoverStep, ...]) -> None:
        super().__init__("catch up", zone, message, steps=steps)
        self.catch_up = catch_up


def failback_zone(zone: RgwZone, peers: Sequence[RgwZone], city: Multisite, keys: S3Keys,
                  gateways: GatewayControl, *, catch_up_timeout: float = CATCH_UP_TIMEOUT,
                  follow_timeout: float = FOLLOW_TIMEOUT) -> FailbackResult:
    """Make `zone` master again: pull the realm, follow, catch up, promote, and see every
    zone in `peers` (the current master among them) follow the new period."""
    run = _Failback(city, keys, gateways, follow_timeout, Steps())
    try:
        periods = [current_period(peer, city) for peer in peers]
    except RgwAdminError as error:
        raise run.steps.failed("read period", ",".join(p.name for p in peers), error) \
            from error
    latest = max(periods, key=lambda p: (p.realm_epoch, p.epoch))
    if zone.name != latest.master_zone:
        run.rejoin(zone, latest)
        run.catch_up(zone, latest.master_zone, catch_up_timeout)
    try:
        promoted = promote_zone(zone, city, gateways)
    except RgwFailoverError as error:
        error.steps = (*run.steps.done, *error.steps)
        raise
    run.steps.done.extend(promoted.steps)
    for peer in peers:
        run.ensure_follows(peer, promoted.period_after, "zone follows")
    return FailbackResult(zone.name, latest.master_zone, tuple(run.steps.done),
                          run.steps.elapsed(), latest, promoted.period_after)


@dataclass(frozen=True)
class _Failback:
    city: Multisite
    keys: S3Keys
    gateways: GatewayControl
    follow_timeout: float
    steps: Steps

    def rejoin(self, zone: RgwZone, latest: PeriodInfo) -> None:
        """The returning zone runs `latest` as a secondary. A gateway that is down starts
        with the pulled period; one that is up waits for the push (see the docstring)."""
        since = self.steps.clock()
        try:
            running = self.gateways.running(zone.name)
        except Exception as error:
            raise self.steps.failed("find gateways", zone.name, error) from error
        if running:
            self.ensure_follows(zone, latest, "gateways follow")
            return
        self.pull_realm(zone, latest)
        try:
            self.gateways.restart(zone.name)
            followed = self.wait_following(zone, latest)
        except Exception as error:
            raise self.steps.failed("start gateways", zone.name, error) from error
        if not followed:
            raise RgwFailoverError("start gateways", zone.name, f"started, yet its gateways "
                                   f"do not run {latest}", steps=tuple(self.steps.done))
        self.steps.record("start gateways", zone.name, True,
                          f"started them on {latest}", since)

    def pull_realm(self, zone: RgwZone, latest: PeriodInfo) -> bool:
        """Store `latest` on the zone's cluster unless it holds it; whether it pulled."""
        since, url = self.steps.clock(), ""
        try:
            url = latest.endpoint(latest.master_zone)
            held = current_period(zone, self.city)
            if not latest.newer_than(held):
                self.steps.record("realm pull", zone.name, False, f"already holds {held}", since)
                return False
            zone.admin.json("realm", "pull", "--url", url, "--rgw-realm", self.city.realm,
                            keys=self.keys)
            pulled = current_period(zone, self.city)
        except (RgwAdminError, ValueError) as error:
            raise self.steps.failed("realm pull", zone.name, error) from error
        if latest.newer_than(pulled):
            raise RgwFailoverError("realm pull", zone.name,
                                   f"pulled {pulled} from {url}, older than {latest}",
                                   steps=tuple(self.steps.done))
        self.steps.record("realm pull", zone.name, True,
                          f"pulled {pulled} from {url} (held {held})", since)
        return True

    def follows(self, zone: RgwZone, period: PeriodInfo) -> bool:
        """The zone's cluster holds `period` and its gateway syncs metadata against it."""
        held = current_period(zone, self.city)
        if period.newer_than(held):
            return False
        return zone.name == period.master_zone or metadata_sync_info(zone).follows(period)

    def wait_following(self, zone: RgwZone, period: PeriodInfo) -> bool:
        deadline = time.monotonic() + self.follow_timeout
        while not self.follows(zone, period):
            if time.monotonic() > deadline:
                return False
            time.sleep(POLL_INTERVAL)
        return True

    def ensure_follows(self, zone: RgwZone, period: PeriodInfo, step: str) -> None:
        """Wait for the zone's gateways to run `period` (by push, within the push
        backoff); failing that, pull the realm and restart them."""
        since = self.steps.clock()
        try:
            if self.follows(zone, period):
                self.steps.record(step, zone.name, False, f"it runs {period}", since)
                return
            if self.wait_following(zone, period):
                self.steps.record(step, zone.name, True, f"its gateways took {period} "
                                  "by themselves", since)
                return
            self.pull_realm(zone, period)
            self.gateways.restart(zone.name)
            followed = self.wait_following(zone, period)
        except RgwFailoverError:
            raise
        except Exception as error:
            raise self.steps.failed(step, zone.name, error) from error
        if not followed:
            raise RgwFailoverError(step, zone.name, f"restarted its gateways, yet it does "
                                   f"not run {period}", steps=tuple(self.steps.done))
        self.steps.record(step, zone.name, True, f"restarted its gateways: they had not "
                          f"taken {period} within {self.follow_timeout:.0f} s", since)

    def catch_up(self, zone: RgwZone, master: str, timeout: float) -> None:
        """Wait until the zone holds the master's metadata, and every bucket it knows
        holds what the master wrote: `sync status` alone says "caught up" over a bucket
        whose datalog entries its sync dropped (see the module docstring)."""
        since = self.steps.clock()
        deadline, polls = since + timeout, 0
        while True:
            try:
                status = metadata_caught_up(zone, self.city)
                behind = lagging_buckets(zone, master) if status.caught_up and \
                    status.data_caught_up_from(master) else None
            except RgwAdminError as error:
                raise self.steps.failed("catch up", zone.name, error) from error
            polls += 1
            if behind == []:
                self.steps.record("catch up", zone.name, False,
                                  f"metadata, data and every bucket from {master} caught up"
                                  + (f" after {polls} looks" if polls > 1 else ""), since,
                                  check=True)
                return
            if self.steps.clock() > deadline:
                break
            time.sleep(POLL_INTERVAL)
        data = "; ".join(s.summary() for s in status.data) or "no data sync reported"
        buckets = "; ".join(behind[:5]) if behind else "not checked"
        raise CatchUpTimeout(zone.name, f"not caught up with {master} after {timeout:.0f} s: "
                             f"metadata: {status.reason}; data: {data}; buckets: {buckets}",
                             status, tuple(self.steps.done))


def lagging_buckets(zone: RgwZone, source: str) -> list[str]:
    """Buckets of the zone whose sync from `source` is not caught up, with Ceph's verdict."""
    names = zone.admin.json("bucket", "list") or []
    lagging = []
    for name in names:
        text = zone.admin.text("bucket", "sync", "status", "--bucket", str(name),
                               "--source-zone", source)
        caught_up, verdict = bucket_caught_up(text)
        if not caught_up:
            lagging.append(f"{name}: {verdict}")
    return lagging
