"""drd's journal RPO algorithm, run by the benchmark ten times as often as the daemon.

The daemon samples each journal image's commit positions every 0.25 s and dates a
peer's position by the newest sample the primary had not passed yet, so its readings
come in steps of that period. This probe reads the same positions (one cls_journal
call per image) every 0.1 s with the same JournalRpoTracker and the same writer commit
interval, from its own thread and connection, to show what part of a reading is the
sampling step and what is the peer's real lag.
"""

import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import rbd

from drd.ceph import rbd_images
from drd.ceph.cluster import CephError, connect
from drd.domain.journal_position import JournalRpoTracker
from drd.domain.replication_plan import ImageRef

PERIOD_S = 0.1


@dataclass
class _Tracked:
    ref: ImageRef
    image_id: str
    trackers: dict[str, JournalRpoTracker]  # peer mirror uuid -> tracker


@dataclass
class JournalProbe:
    """Samples `names` in `namespace` of site a every PERIOD_S until stopped."""

    conf: Path
    pool: str
    namespace: str
    names: list[str]
    peer_sites: dict[str, str]  # destination -> peer site name, e.g. same_city -> b
    # (monotonic time, destination, image, measured RPO in s, caught up), in order read
    readings: list[tuple[float, str, str, float, bool]] = field(default_factory=list)
    errors: int = 0
    rounds: int = 0
    failure: str = ""  # why the probe stopped early, if it did
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="journal-probe", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def _run(self) -> None:
        try:
            self._sample_until_stopped()
        except (CephError, KeyError) as error:
            self.failure = f"the journal probe stopped: {error!r}"

    def _sample_until_stopped(self) -> None:
        with connect(self.conf, timeout=10.0) as cluster:
            uuids = rbd_images.peer_mirror_uuids(cluster, self.pool)
            tracked = [_Tracked(ref, _image_id(cluster, ref),
                                {uuids[site]: JournalRpoTracker()
                                 for site in self.peer_sites.values()})
                       for ref in (ImageRef(self.pool, self.namespace, name)
                                   for name in self.names)]
            destination_of = {uuids[site]: destination
                              for destination, site in self.peer_sites.items()}
            next_at = time.monotonic()
            while not self._stop.is_set():
                self._sample(cluster, tracked, destination_of)
                self.rounds += 1
                next_at += PERIOD_S
                self._stop.wait(max(0.0, next_at - time.monotonic()))

    def _sample(self, cluster: Any, tracked: list[_Tracked],
                destination_of: dict[str, str]) -> None:
        commit_age = timedelta(seconds=rbd_images.writer_commit_age(cluster))
        found = rbd_images.journal_clients(cluster, self.pool, self.namespace,
                                           [image.image_id for image in tracked])
        now, at = datetime.now(UTC), time.monotonic()
        for image in tracked:
            clients = found[image.image_id]
            if isinstance(clients, CephError):
                self.errors += 1
                continue
            for uuid, tracker in image.trackers.items():
                tracker.writer_commit_age = commit_age
                reading = tracker.observe(now, clients, uuid)
                if reading.measured is not None:
                    self.readings.append((at, destination_of[uuid], image.ref.name,
                                          reading.measured.total_seconds(),
                                          reading.detail == "caught up"))

    def during(self, start: float, end: float) -> dict[str, list[float]]:
        """Destination -> readings taken between two monotonic times."""
        found: dict[str, list[float]] = {}
        for at, destination, _, value, _ in self.readings:
            if start <= at <= end:
                found.setdefault(destination, []).append(value)
        return found

    def caught_up_after(self, moment: float) -> dict[str, float | None]:
        """Destination -> seconds after `moment` until every image read caught up
        (None: never).

        An image counts as caught up from its first such reading after `moment` on, as
        nothing is written after it."""
        zero_at: dict[tuple[str, str], float] = {}
        images = {(destination, name) for _, destination, name, _, _ in self.readings}
        for at, destination, name, _, caught_up in self.readings:
            if at >= moment and caught_up:
                zero_at.setdefault((destination, name), at - moment)
        result: dict[str, float | None] = {}
        for destination in sorted({d for d, _ in images}):
            times = [zero_at.get((d, n)) for d, n in images if d == destination]
            result[destination] = (None if any(t is None for t in times)
                                   else max(t for t in times if t is not None))
        return result


def _image_id(cluster: Any, ref: ImageRef) -> str:
    ioctx = cluster.open_ioctx(ref.pool)
    try:
        ioctx.set_namespace(ref.namespace)
        with rbd.Image(ioctx, ref.name, read_only=True) as image:
            return str(image.id())
    finally:
        ioctx.close()
