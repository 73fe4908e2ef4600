"""The object side of protection: each tenant bucket's sync lag at each destination zone.

RGW multisite moves the objects; this service only measures, reports and, where a
tenant's policy opts in, repairs. Only the daemon whose zone is the zonegroup's master
measures, because tenants write there: after a zone promotion, the new master's daemon
takes over by itself. Every radosgw-admin call runs in a worker thread; a round runs
CONCURRENCY calls at a time, because each call is mostly waiting for its cluster.
"""

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import TypeVar

import structlog

from drd.api.metrics import DaemonMetrics
from drd.ceph import rgw_bucket_sync as rgw
from drd.ceph.rgw_admin import RgwAdmin, RgwAdminError
from drd.ceph.rgw_failover import RgwZone, zone_gateways
from drd.domain.bucket_lag import (
    BucketLag,
    StuckShards,
    bucket_lag,
    in_full_sync,
    unapplied_shards,
)
from drd.domain.bucket_repair import (
    CephRelease,
    RepairAdvice,
    parse_ceph_release,
    repair_advice,
    sync_run_hazard,
)
from drd.domain.object_selection import ObjectSelection, RepairMode
from drd.domain.protection import Destination, destination_site
from drd.domain.rgw_sync_status import parse_sync_status
from drd.domain.rpo import RpoState, judge_rpo
from drd.domain.site import SiteKind

log = structlog.get_logger()
T = TypeVar("T")

ROUND_SECONDS = 15.0
STUCK_AFTER = timedelta(minutes=5)
CONCURRENCY = 8


@dataclass(frozen=True)
class ObjectSpec:
    tenant: str
    rgw_user: str
    selection: ObjectSelection


@dataclass(frozen=True)
class ZonePeer:
    """A peer site's zone, with radosgw-admin on that site's cluster."""

    site: str
    zone: RgwZone


@dataclass(frozen=True)
class BucketMeasurement:
    tenant: str
    selection: str
    bucket: str
    destination: Destination
    site: str | None
    lag_target: timedelta
    lag: BucketLag
    state: RpoState
    stuck: tuple[int, ...] = ()
    repair: str | None = None  # the command an operator would run, when stuck


@dataclass(frozen=True)
class _Watch:
    """One tenant bucket at one destination."""

    spec: ObjectSpec
    bucket: str
    destination: Destination
    target: timedelta


@dataclass
class BucketSyncState:
    role: str = "not measured yet"  # why this daemon measures, or why it does not
    measurements: dict[tuple[str, str, Destination], BucketMeasurement] = field(
        default_factory=dict)
    repaired: set[tuple[str, str]] = field(default_factory=set)  # bucket, site this episode
    releases: dict[str, CephRelease | None] = field(default_factory=dict)  # site -> release
    zones: dict[str, list[str]] = field(default_factory=dict)  # site -> its sync verdicts
    last_round_seconds: float | None = None


class BucketSyncService:
    def __init__(self, *, own_kind: SiteKind, own_zone: str, admin: RgwAdmin,
                 peers: dict[str, SiteKind], zone_peers: dict[str, ZonePeer],
                 metrics: DaemonMetrics, stuck_after: timedelta = STUCK_AFTER,
                 round_seconds: float = ROUND_SECONDS) -> None:
        self.own_kind, self.own_zone, self.admin = own_kind, own_zone, admin
        self.peers, self.zone_peers = peers, zone_peers
        self.round_seconds = round_seconds
        self._metrics = metrics
        self._stuck = StuckShards(stuck_after)
        self._limit = asyncio.Semaphore(CONCURRENCY)
        self.specs: list[ObjectSpec] = []
        self.state = BucketSyncState()

    def set_policies(self, specs: list[ObjectSpec]) -> None:
        self.specs = specs

    async def _call(self, call: Callable[[], T]) -> T:
        async with self._limit:
            return await asyncio.to_thread(call)

    async def loop(self) -> None:
        while True:
            started = time.monotonic()
            try:
                await self.measure_once()
            except RgwAdminError as error:
                self.state.role = f"cannot read RGW sync state: {error}"
                log.warning("bucket sync measurement failed", error=str(error))
            self.state.last_round_seconds = time.monotonic() - started
            await asyncio.sleep(max(1.0, self.round_seconds - self.state.last_round_seconds))

    async def measure_once(self) -> None:
        if not self.specs:
            self.state.role, self.state.measurements = "no tenant selects buckets", {}
            return
        master = await self._call(lambda: rgw.master_zone(self.admin))
        if master != self.own_zone:
            self.state.role = (f"zone {self.own_zone} is not the master zone ({master}); "
                               f"the master's daemon measures bucket sync")
            self.state.measurements = {}
            return
        self.state.role = f"zone {self.own_zone} is the master zone; measuring"
        owned = {}
        for user in sorted({spec.rgw_user for spec in self.specs}):
            owned[user] = await self._call(partial(rgw.user_buckets, self.admin, user))
        watched = [(spec, bucket) for spec in self.specs for bucket in owned[spec.rgw_user]
                   if spec.selection.selects(bucket)]
        zones = asyncio.ensure_future(self._zone_verdicts())
        results = await asyncio.gather(*(self._measure_bucket(spec, bucket)
                                         for spec, bucket in watched))
        self.state.zones = await zones
        self.state.measurements = {(m.tenant, m.bucket, m.destination): m
                                   for found in results for m in found}
        self._stuck.forget_except({(m.bucket, m.site or "") for found in results
                                   for m in found})

    async def _zone_verdicts(self) -> dict[str, list[str]]:
        """Each destination zone's own account of its metadata and data sync."""
        async def verdicts(peer: ZonePeer) -> list[str]:
            try:
                text = await self._call(partial(peer.zone.admin.text, "sync", "status"))
            except RgwAdminError as error:
                return [f"cannot read sync status: {error}"]
            return [source.summary() for source in parse_sync_status(text)]

        peers = list(self.zone_peers.values())
        found = await asyncio.gather(*(verdicts(peer) for peer in peers))
        return {peer.site: lines for peer, lines in zip(peers, found, strict=True)}

    async def _measure_bucket(self, spec: ObjectSpec, bucket: str) -> list[BucketMeasurement]:
        # The source's markers first: a destination found at them held all of it then.
        watches = [_Watch(spec, bucket, destination, target)
                   for destination, target in _targets(spec.selection)]
        read_at = datetime.now(UTC)
        try:
            newest = await self._call(lambda: rgw.newest_markers(self.admin, bucket))
        except RgwAdminError as error:
            return [self._unmeasured(watch, f"cannot read the bucket index log here: {error}")
                    for watch in watches]
        return [await self._measure_at(watch, newest, read_at) for watch in watches]

    async def _measure_at(self, watch: _Watch, newest: dict[int, str],
                          read_at: datetime) -> BucketMeasurement:
        spec, bucket = watch.spec, watch.bucket
        site = destination_site(watch.destination, self.own_kind, self.peers)
        peer = self.zone_peers.get(site or "")
        if site is None or peer is None:
            why = ("no peer plays this destination from this site" if site is None
                   else f"peer {site} has no rgw_zone and ceph_conf in the site config")
            return self._unmeasured(watch, why, site)
        try:
            positions = await self._call(
                lambda: rgw.sync_positions(peer.zone.admin, bucket, self.own_zone))
            behind = unapplied_shards(newest, positions)
            full = in_full_sync(positions, behind)
            shards = [shard for shard in behind if shard not in full]
            oldest = dict(zip(shards, await asyncio.gather(*(
                self._call(partial(rgw.oldest_entry_after, self.admin, bucket, shard,
                                   behind[shard]))
                for shard in shards)), strict=True))
        except RgwAdminError as error:
            return self._unmeasured(watch, f"cannot read sync state at {site}: {error}", site)
        now = datetime.now(UTC)
        lag = bucket_lag(read_at, oldest, full, now)
        stuck = self._stuck.observe(bucket, site, behind, now)
        advice = await self._repair_advice(peer, bucket) if stuck else None
        state = judge_rpo(lag.measured, watch.target)
        if stuck and state in (RpoState.OK, RpoState.UNKNOWN):
            state = RpoState.WARN  # it will not catch up by itself, whatever its lag now
        measurement = BucketMeasurement(
            spec.tenant, spec.selection.name, bucket, watch.destination, site, watch.target,
            lag, state, stuck, advice.text if advice else None)
        await self._handle_stuck(spec, measurement, advice, peer)
        self._record(measurement)
        return measurement

    async def _repair_advice(self, peer: ZonePeer, bucket: str) -> RepairAdvice:
        try:
            gateways = await self._call(partial(zone_gateways, peer.zone))
        except RgwAdminError as error:
            log.warning("cannot see the destination's gateways", site=peer.site,
                        error=str(error))
            gateways = frozenset({"unknown"})
        return repair_advice(
            zone=peer.zone.name, site=peer.site, gateways_running=bool(gateways),
            hazard=sync_run_hazard(await self._release(peer)),
            sync_run_command=rgw.repair_command(peer.zone.admin.conf, bucket, self.own_zone))

    async def _release(self, peer: ZonePeer) -> CephRelease | None:
        """The destination's Ceph release, read once: it changes only with an upgrade,
        which restarts drd too."""
        if peer.site not in self.state.releases:
            try:
                text = await self._call(partial(rgw.ceph_version, peer.zone.admin))
            except RgwAdminError as error:
                log.warning("cannot read the destination's Ceph release", site=peer.site,
                            error=str(error))
                return None
            self.state.releases[peer.site] = parse_ceph_release(text)
        return self.state.releases[peer.site]

    async def _handle_stuck(self, spec: ObjectSpec, measurement: BucketMeasurement,
                            advice: RepairAdvice | None, peer: ZonePeer) -> None:
        episode = (measurement.bucket, peer.site)
        if not measurement.stuck or advice is None:
            self.state.repaired.discard(episode)
            return
        log.error("bucket sync stuck", tenant=spec.tenant, bucket=measurement.bucket,
                  site=peer.site, shards=list(measurement.stuck), repair=advice.text)
        if spec.selection.repair is not RepairMode.AUTO or episode in self.state.repaired:
            return
        self.state.repaired.add(episode)  # once per episode, whatever comes of it
        if not advice.automatic:
            self._metrics.bucket_sync_repairs.labels(result="refused").inc()
            log.warning("automatic bucket repair refused", tenant=spec.tenant,
                        bucket=measurement.bucket, site=peer.site, reason=advice.refusal)
            return
        try:
            await self._call(lambda: rgw.run_bucket_sync(peer.zone.admin, measurement.bucket,
                                                         self.own_zone))
        except RgwAdminError as error:
            self._metrics.bucket_sync_repairs.labels(result="failed").inc()
            log.error("bucket sync repair failed", bucket=measurement.bucket, site=peer.site,
                      error=str(error))
            return
        self._metrics.bucket_sync_repairs.labels(result="ok").inc()
        log.warning("bucket sync repair run", tenant=spec.tenant, bucket=measurement.bucket,
                    site=peer.site, command="bucket sync run")

    def _unmeasured(self, watch: _Watch, why: str, site: str | None = None
                    ) -> BucketMeasurement:
        measurement = BucketMeasurement(watch.spec.tenant, watch.spec.selection.name,
                                        watch.bucket, watch.destination, site, watch.target,
                                        BucketLag(None, None, (), why), RpoState.UNKNOWN)
        self._record(measurement)
        return measurement

    def _record(self, measurement: BucketMeasurement) -> None:
        key = (measurement.tenant, measurement.bucket, measurement.destination)
        before = self.state.measurements.get(key)
        labels = {"tenant": measurement.tenant, "bucket": measurement.bucket,
                  "destination": measurement.destination.value}
        self._metrics.bucket_lag_target.labels(**labels).set(
            measurement.lag_target.total_seconds())
        self._metrics.bucket_stuck_shards.labels(**labels).set(len(measurement.stuck))
        if measurement.lag.measured is not None:
            self._metrics.bucket_lag.labels(**labels).set(
                measurement.lag.measured.total_seconds())
        if measurement.state is RpoState.BREACH and (
                before is None or before.state is not RpoState.BREACH):
            log.error("bucket sync lag breach", tenant=measurement.tenant,
                      bucket=measurement.bucket, destination=measurement.destination.value,
                      lag_seconds=measurement.lag.measured.total_seconds()
                      if measurement.lag.measured else None,
                      target_seconds=measurement.lag_target.total_seconds())


def _targets(selection: ObjectSelection) -> list[tuple[Destination, timedelta]]:
    targets = []
    if selection.same_city is not None:
        targets.append((Destination.SAME_CITY, selection.same_city.lag_target))
    if selection.remote is not None:
        targets.append((Destination.REMOTE, selection.remote.lag_target))
    return targets
