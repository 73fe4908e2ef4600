"""How old the newest data on a peer's copy is, read from the data itself.

bench/rbd_write_load.py puts a time marker in block 0 of a few images every few writes.
This probe reads block 0 of each peer's copy ten times a second straight from its
RADOS object (no librbd cache or object map to go stale) and notes now minus the
marker's time: the RPO a failover to that peer would have had at that instant, to
within the marker spacing. Neither drd nor rbd-mirror's own reports are involved.
"""

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import rados
import rbd
from rbd_write_load import MARKER

from drd.ceph.cluster import CephError, connect

PERIOD_S = 0.1
OPEN_TIMEOUT_S = 60.0  # for rbd-mirror to create the peer's copy


@dataclass
class DataAgeProbe:
    """Reads the markers of `names` on each peer (destination -> ceph.conf)."""

    peers: dict[str, Path]
    pool: str
    namespace: str
    names: list[str]
    # (monotonic time, destination, image, age of the newest marker on the peer in s)
    readings: list[tuple[float, str, str, float]] = field(default_factory=list)
    failure: str = ""
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)

    def start(self) -> None:
        for destination, conf in self.peers.items():
            thread = threading.Thread(target=self._run, args=(destination, conf),
                                      name=f"data-age-{destination}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join()

    def during(self, start: float, end: float) -> dict[str, list[float]]:
        """Destination -> ages read between two monotonic times."""
        found: dict[str, list[float]] = {}
        for at, destination, _, age in self.readings:
            if start <= at <= end:
                found.setdefault(destination, []).append(age)
        return found

    def _run(self, destination: str, conf: Path) -> None:
        try:
            with connect(conf, timeout=10.0) as cluster:
                ioctx = cluster.open_ioctx(self.pool)
                try:
                    ioctx.set_namespace(self.namespace)
                    objects = {name: _first_object(ioctx, name) for name in self.names}
                    self._sample(ioctx, destination, objects)
                finally:
                    ioctx.close()
        except (CephError, rados.Error, rbd.Error) as error:
            self.failure = f"the data-age probe of {destination} stopped: {error!r}"

    def _sample(self, ioctx: Any, destination: str, objects: dict[str, str]) -> None:
        next_at = time.monotonic()
        while not self._stop.is_set():
            for name, obj in objects.items():
                try:
                    data = ioctx.read(obj, MARKER.size, 0)
                except rados.ObjectNotFound:
                    continue  # no marker has reached this copy yet
                if len(data) == MARKER.size:
                    written, _ = MARKER.unpack(data)
                    if written > 0:
                        self.readings.append((time.monotonic(), destination, name,
                                              time.time() - written))
            next_at += PERIOD_S
            self._stop.wait(max(0.0, next_at - time.monotonic()))


def _first_object(ioctx: Any, name: str) -> str:
    """The RADOS object holding the image's first 4 MiB, once the copy exists."""
    deadline = time.monotonic() + OPEN_TIMEOUT_S
    while True:
        try:
            with rbd.Image(ioctx, name, read_only=True) as image:
                return f"{image.stat()['block_name_prefix']}.{0:016x}"
        except rbd.ImageNotFound:
            if time.monotonic() > deadline:
                raise
            time.sleep(1.0)
