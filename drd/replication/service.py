"""The replication service of one daemon: reconcile, mirror snapshots, RPO.

Three loops share this state on the event loop thread; every librbd call runs in
the service's own worker threads with a deadline:
- reconcile (every RECONCILE_SECONDS, or at once after a policy change) makes
  mirroring match the policies;
- snapshots (every second) take the mirror snapshots that are due, a few at a time;
- RPO measures each protected image at each destination: journal images every
  JOURNAL_RPO_SECONDS, snapshot images every SNAPSHOT_RPO_SECONDS.
"""

import asyncio
import contextlib
import contextvars
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any, TypeVar

import structlog

from drd.api.metrics import DaemonMetrics
from drd.ceph import rbd_images
from drd.ceph.cluster import CephError, ClusterHandle
from drd.ceph.rbd_images import PeerImageStatus
from drd.ceph.rbd_observe import ObservationMemo
from drd.domain.journal_position import JournalClient, JournalRpoTracker
from drd.domain.protection import Destination, ProtectionSpec, destination_site
from drd.domain.replication_plan import MirrorMode, Protected
from drd.domain.rpo import (
    MirrorSnapshot,
    RpoReading,
    RpoState,
    judge_rpo,
    snapshot_rpo,
)
from drd.domain.site import SiteKind
from drd.domain.snapshot_schedule import is_due
from drd.replication.reconciler import ReconcileReport, reconcile_once

log = structlog.get_logger()
T = TypeVar("T")
JournalRound = tuple[float, dict[str, list[JournalClient] | CephError]]
SnapshotsByName = dict[str, list[MirrorSnapshot] | CephError]

RECONCILE_SECONDS = 15.0
SNAPSHOT_TICK_SECONDS = 1.0
# A journal reading is late by up to one period: 0.25 s keeps that a quarter of the
# 1 s same-city target, for one OSD call per journal image per period.
JOURNAL_RPO_SECONDS = 0.25
SNAPSHOT_RPO_SECONDS = 15.0  # a 1 min snapshot interval needs no finer view
NEW_IMAGE_SECONDS = 60.0  # how long a new image is retried every second until measured
CEPH_DEADLINE = 30.0
SNAPSHOT_CONCURRENCY = 8
WORKERS = 8


@dataclass
class Measurement:
    reading: RpoReading
    state: RpoState
    peer: PeerImageStatus | None


@dataclass
class ReplicationState:
    """What the loops learned; replaced piecewise, read by the API."""

    report: ReconcileReport | None = None
    last_snapshot: dict[str, datetime] = field(default_factory=dict)  # image id -> time
    measurements: dict[tuple[str, Destination], Measurement] = field(default_factory=dict)
    statuses: dict[str, list[PeerImageStatus]] = field(default_factory=dict)
    journal_trackers: dict[str, JournalRpoTracker] = field(default_factory=dict)
    peer_uuids: dict[str, dict[str, str]] = field(default_factory=dict)  # pool -> site -> id
    measured_ids: set[str] = field(default_factory=set)  # with a reading at every target
    first_seen: dict[str, float] = field(default_factory=dict)  # image id -> monotonic


class ReplicationService:
    def __init__(self, *, own_kind: SiteKind, peers: dict[str, SiteKind],
                 local: Callable[[], ClusterHandle],
                 peer_handles: dict[str, ClusterHandle], metrics: DaemonMetrics) -> None:
        self.own_kind = own_kind
        self.peers = peers
        self._reconcile_handle = local()
        self._snapshot_handle = local()
        self._rpo_handle = local()
        self._peer_handles = peer_handles
        self._metrics = metrics
        self._executor = ThreadPoolExecutor(max_workers=WORKERS,
                                            thread_name_prefix="replication")
        # Snapshots get workers of their own: reads for RPO must never delay them.
        self._snapshot_executor = ThreadPoolExecutor(max_workers=SNAPSHOT_CONCURRENCY,
                                                     thread_name_prefix="snapshots")
        self._journal_executor = ThreadPoolExecutor(1, thread_name_prefix="journal-rpo")
        # A pass waits for no RPO read queued ahead of it, and its time measures the
        # pass: sharing the workers made a 0.2 s pass read 2-3 s at 1,000 images.
        self._reconcile_executor = ThreadPoolExecutor(1, thread_name_prefix="reconcile-pass")
        self._observation_memo = ObservationMemo()  # the reconcile thread's only
        self.specs: list[ProtectionSpec] = []
        self.state = ReplicationState()
        self.poke = asyncio.Event()

    def set_policies(self, specs: list[ProtectionSpec]) -> None:
        """New policies: reconcile now rather than at the next interval."""
        self.specs = specs
        self.poke.set()

    async def _in_thread(self, call: Callable[[], T], deadline: float | None = CEPH_DEADLINE,
                         executor: ThreadPoolExecutor | None = None) -> T:
        # Carry the log context (the site) into the worker thread, as to_thread does.
        context = contextvars.copy_context()
        future = asyncio.get_running_loop().run_in_executor(
            executor or self._executor, partial(context.run, call))
        return await asyncio.wait_for(future, deadline)

    def spec_of(self, protected: Protected) -> ProtectionSpec | None:
        return next((s for s in self.specs if s.selection == protected.selection), None)

    # --- reconcile -----------------------------------------------------------------

    async def reconcile_loop(self) -> None:
        while True:
            await self.reconcile_now()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.poke.wait(), RECONCILE_SECONDS)
            self.poke.clear()

    async def reconcile_now(self) -> ReconcileReport | None:
        selections = [spec.selection for spec in self.specs]
        if not selections:
            self.state.report = None
            return None
        started = time.monotonic()
        production = self.own_kind is SiteKind.PRODUCTION
        # No deadline on the whole pass: a first pass over a thousand new images
        # rightly takes longer than any single call may. Each librados call carries
        # its own timeout, and the loop awaits the pass, so passes never overlap.
        report = await self._in_thread(
            lambda: reconcile_once(self._reconcile_handle, selections, production,
                                   self._observation_memo),
            deadline=None, executor=self._reconcile_executor)
        self._metrics.reconcile_duration.set(time.monotonic() - started)
        for outcome in report.outcomes:
            self._metrics.reconcile_actions.labels(
                kind=outcome.action.kind.value, result="ok" if outcome.ok else "failed").inc()
        self.state.report = report
        return report

    # --- mirror snapshots ---------------------------------------------------------

    async def snapshot_loop(self) -> None:
        limit = asyncio.Semaphore(SNAPSHOT_CONCURRENCY)
        while True:
            started = time.monotonic()
            now = datetime.now(UTC)
            due = [p for p in self._protected() if self._snapshot_due(p, now)]
            if due:
                await asyncio.gather(*(self._snapshot(p, limit) for p in due))
            await asyncio.sleep(max(0.0, SNAPSHOT_TICK_SECONDS - (time.monotonic() - started)))

    def _protected(self) -> tuple[Protected, ...]:
        report = self.state.report
        return report.protected if report is not None else ()

    def _snapshot_due(self, protected: Protected, now: datetime) -> bool:
        interval = protected.selection.snapshot_interval
        if protected.selection.mode is not MirrorMode.SNAPSHOT or interval is None:
            return False
        last = self.state.last_snapshot.get(protected.image_id)
        # Until the RPO loop has read an image's snapshots once, its last one is
        # unknown; waiting for that read avoids a burst of snapshots at start-up.
        return last is not None and is_due(protected.image_id, interval, last, now)

    async def _snapshot(self, protected: Protected, limit: asyncio.Semaphore) -> None:
        async with limit:
            try:
                await self._in_thread(partial(self._snapshot_handle.run, partial(
                    rbd_images.take_mirror_snapshot, ref=protected.ref)),
                    executor=self._snapshot_executor)
            except (CephError, TimeoutError) as error:
                self._metrics.mirror_snapshots.labels(result="failed").inc()
                log.warning("mirror snapshot failed", image=str(protected.ref),
                            tenant=protected.selection.tenant, error=str(error) or "timeout")
                return
        self.state.last_snapshot[protected.image_id] = datetime.now(UTC)
        self._metrics.mirror_snapshots.labels(result="ok").inc()

    # --- RPO -------------------------------------------------------------------------

    async def journal_rpo_loop(self) -> None:
        """Journal images every JOURNAL_RPO_SECONDS: one batch of OSD calls per namespace,
        on a worker of its own so that snapshot reads never delay it."""
        while True:
            started = time.monotonic()
            try:
                await self.measure_journals()
            except (CephError, TimeoutError) as error:
                log.warning("journal RPO measurement failed", error=str(error) or "timeout")
            await asyncio.sleep(max(0.0, JOURNAL_RPO_SECONDS - (time.monotonic() - started)))

    async def snapshot_rpo_loop(self) -> None:
        """Snapshot images, and the batch of replay statuses, every SNAPSHOT_RPO_SECONDS.

        An image not measured yet (new, or its copy not created yet) is tried again
        every second for its first NEW_IMAGE_SECONDS, rather than a round later."""
        last_full = -SNAPSHOT_RPO_SECONDS
        while True:
            started = time.monotonic()
            if started - last_full >= SNAPSHOT_RPO_SECONDS:
                last_full = started
                only = None
            else:
                only = self._not_measured_yet(started)
            if only is None or only:
                try:
                    await self.measure_rpo(only)
                except (CephError, TimeoutError) as error:
                    log.warning("RPO measurement failed", error=str(error) or "timeout")
            await asyncio.sleep(max(0.0, 1.0 - (time.monotonic() - started)))

    def _not_measured_yet(self, now: float) -> set[str]:
        protected = {p.image_id for p in self._protected()}
        first_seen = self.state.first_seen
        for image_id in protected - first_seen.keys():
            first_seen[image_id] = now
        for image_id in first_seen.keys() - protected:
            del first_seen[image_id]
        return {image_id for image_id in protected - self.state.measured_ids
                if now - first_seen[image_id] < NEW_IMAGE_SECONDS}

    async def measure_rpo(self, only: set[str] | None = None) -> None:
        """Read every peer status, and measure the snapshot-mode images (`only` those)."""
        protected = [p for p in self._protected() if only is None or p.image_id in only]
        statuses: dict[str, list[PeerImageStatus]] = {}
        for pool, namespace in sorted({(p.ref.pool, p.ref.namespace) for p in protected}):
            read = partial(rbd_images.peer_statuses, pool=pool, namespace=namespace)
            statuses |= await self._in_thread(partial(self._rpo_handle.run, read))
        self.state.statuses = (statuses if only is None
                               else self.state.statuses | statuses)
        snapshot_mode = [p for p in protected if p.selection.mode is MirrorMode.SNAPSHOT]
        by_namespace: dict[tuple[str, str], list[Protected]] = {}
        for image in snapshot_mode:
            by_namespace.setdefault((image.ref.pool, image.ref.namespace), []).append(image)
        for (pool, namespace), images in sorted(by_namespace.items()):
            await self._measure_snapshot_namespace(pool, namespace, images)

    async def _measure_snapshot_namespace(self, pool: str, namespace: str,
                                          images: list[Protected]) -> None:
        """Every image's snapshots here and on each peer: one batch of OSD calls per
        site, never an image open per image."""
        primary = await self._in_thread(partial(self._rpo_handle.run, partial(
            rbd_images.mirror_snapshots_many, pool=pool, namespace=namespace,
            image_ids=[p.image_id for p in images])))
        names = [p.ref.name for p in images]
        copies: dict[str, SnapshotsByName | CephError] = {}
        for site, handle in self._peer_handles.items():
            try:
                copies[site] = await self._in_thread(partial(handle.run, partial(
                    _copies, pool=pool, namespace=namespace, names=names)))
            except (CephError, TimeoutError) as error:
                copies[site] = CephError(str(error) or "timeout")
        for protected in images:
            snaps = primary.get(protected.image_id, CephError("not read"))
            if isinstance(snaps, CephError):
                log.warning("cannot read mirror snapshots", image=str(protected.ref),
                            error=str(snaps))
                continue
            newest = [s.created for s in snaps if s.primary]
            if newest:
                self.state.last_snapshot[protected.image_id] = max(newest)
            peer_snaps = {site: found if isinstance(found, CephError)
                          else found.get(protected.ref.name, CephError("not read"))
                          for site, found in copies.items()}
            await self._measure_image(protected, snaps, peer_snaps=peer_snaps)

    async def measure_journals(self) -> None:
        by_namespace: dict[tuple[str, str], list[Protected]] = {}
        for protected in self._protected():
            if protected.selection.mode is MirrorMode.JOURNAL:
                by_namespace.setdefault((protected.ref.pool, protected.ref.namespace),
                                        []).append(protected)
        for (pool, namespace), images in by_namespace.items():
            if pool not in self.state.peer_uuids:
                self.state.peer_uuids[pool] = await self._in_thread(partial(
                    self._rpo_handle.run, partial(rbd_images.peer_mirror_uuids, pool=pool)),
                    executor=self._journal_executor)
            read = partial(_journal_round, pool=pool, namespace=namespace,
                           image_ids=[p.image_id for p in images])
            commit_age, clients = await self._in_thread(
                partial(self._rpo_handle.run, read), executor=self._journal_executor)
            for protected in images:
                tracker = self.state.journal_trackers.setdefault(protected.image_id,
                                                                 JournalRpoTracker())
                tracker.writer_commit_age = timedelta(seconds=commit_age)
                await self._measure_image(protected, [], clients.get(protected.image_id))

    async def _measure_image(self, protected: Protected, primary_snaps: list[MirrorSnapshot],
                             journal: list[JournalClient] | CephError | None = None,
                             peer_snaps: dict[str, list[MirrorSnapshot] | CephError] | None
                             = None) -> None:
        spec = self.spec_of(protected)
        if spec is None:
            return
        statuses = self.state.statuses.get(protected.image_id, [])
        now = datetime.now(UTC)
        measured_all = True
        for target in spec.targets:
            site = destination_site(target.destination, self.own_kind, self.peers)
            peer_status = next((s for s in statuses if s.site == site), None)
            if site is None:
                reading = RpoReading(None, None, "no peer plays this destination from this site")
            elif protected.selection.mode is MirrorMode.JOURNAL:
                reading = self._journal_reading(protected, site, journal)
            else:
                reading = _snapshot_reading(site, primary_snaps, peer_snaps or {}, now)
            state = judge_rpo(reading.measured, target.rpo_target)
            self._record(protected, target.destination, target.rpo_target,
                         Measurement(reading, state, peer_status))
            measured_all = measured_all and reading.measured is not None
        if measured_all:
            self.state.measured_ids.add(protected.image_id)
        else:
            self.state.measured_ids.discard(protected.image_id)

    def _journal_reading(self, protected: Protected, site: str,
                         journal: list[JournalClient] | CephError | None) -> RpoReading:
        pool = protected.ref.pool
        peer_client = self.state.peer_uuids.get(pool, {}).get(site)
        if peer_client is None:
            # Learn peers added since; the next round uses them.
            self.state.peer_uuids.pop(pool, None)
            return RpoReading(None, None, f"site {site} is not a mirror peer of pool {pool}")
        if not isinstance(journal, list):
            return RpoReading(None, None, f"cannot read the journal: {journal}")
        tracker = self.state.journal_trackers[protected.image_id]
        return tracker.observe(datetime.now(UTC), journal, peer_client)

    def _record(self, protected: Protected, destination: Destination, target: timedelta,
                measurement: Measurement) -> None:
        key = (protected.image_id, destination)
        before = self.state.measurements.get(key)
        self.state.measurements[key] = measurement
        labels = {"tenant": protected.selection.tenant, "image": str(protected.ref),
                  "destination": destination.value}
        self._metrics.rpo_target.labels(**labels).set(target.total_seconds())
        if measurement.reading.measured is not None:
            self._metrics.rpo.labels(**labels).set(measurement.reading.measured.total_seconds())
        if measurement.state is RpoState.BREACH and (
                before is None or before.state is not RpoState.BREACH):
            log.error("RPO breach", tenant=protected.selection.tenant, image=str(protected.ref),
                      destination=destination.value,
                      measured_seconds=_seconds(measurement.reading.measured),
                      target_seconds=target.total_seconds())

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
        self._snapshot_executor.shutdown(wait=False, cancel_futures=True)
        self._journal_executor.shutdown(wait=False, cancel_futures=True)
        self._reconcile_executor.shutdown(wait=False, cancel_futures=True)
        for handle in (self._reconcile_handle, self._snapshot_handle, self._rpo_handle,
                       *self._peer_handles.values()):
            handle.close()


def _snapshot_reading(site: str, primary_snaps: list[MirrorSnapshot],
                      peer_snaps: dict[str, list[MirrorSnapshot] | CephError],
                      now: datetime) -> RpoReading:
    found = peer_snaps.get(site)
    if found is None:
        return RpoReading(None, None, f"no ceph_conf for peer {site} in the site config")
    if isinstance(found, CephError):
        return RpoReading(None, None, f"cannot read the copy on {site}: {found}")
    return snapshot_rpo(primary_snaps, found, now)


def _copies(cluster: Any, pool: str, namespace: str, names: list[str]) -> SnapshotsByName:
    """A peer's copies of the named images, by name: their ids differ from the primary's."""
    ids = rbd_images.image_ids_by_name(cluster, pool, namespace)
    present = [name for name in names if name in ids]
    found = rbd_images.mirror_snapshots_many(cluster, pool, namespace,
                                             [ids[name] for name in present])
    copies: SnapshotsByName = {name: CephError(f"no copy of {name} there yet")
                               for name in names if name not in ids}
    copies |= {name: found[ids[name]] for name in present}
    return copies


def _journal_round(cluster: Any, pool: str, namespace: str,
                   image_ids: list[str]) -> JournalRound:
    return (rbd_images.writer_commit_age(cluster),
            rbd_images.journal_clients(cluster, pool, namespace, image_ids))


def _seconds(value: timedelta | None) -> float | None:
    return None if value is None else round(value.total_seconds(), 3)

