"""Watch which site holds each image as primary, on every site at once, for the length of
a chaos run: the evidence the split-brain invariant is judged on.

One thread per site, so a frozen or cut-off site only leaves gaps in its own record. A
look that gets no answer is recorded as such (primary None): it proves nothing either way.
"""

import threading
import time
from collections.abc import Callable
from typing import Any

import rados
import rbd

from drd.chaos.invariants import Sample
from drd.chaos.write_load import open_cluster
from drd.lab.description import SiteRecord

INTERVAL_SECONDS = 0.25


def primaries(ioctx: Any, images: list[str]) -> dict[str, bool]:
    """Each of `images` that is mirrored here, and whether it is primary: two calls, for
    every image of the namespace at once."""
    ids = {entry["id"]: entry["name"] for entry in rbd.RBD().list2(ioctx)}
    wanted = set(images)
    return {ids[image_id]: bool(info["primary"])
            for image_id, info in rbd.RBD().mirror_image_info_list(ioctx)
            if ids.get(image_id) in wanted}


class PrimaryWatch:
    def __init__(self, sites: list[SiteRecord], namespace: str, images: list[str],
                 clock: Callable[[], float]) -> None:
        self._namespace = namespace
        self._images = images
        self._clock = clock
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._samples: list[Sample] = []
        self._threads = [threading.Thread(target=self._watch, args=(site,), daemon=True,
                                          name=f"chaos-watch-{site.name}") for site in sites]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=30)

    @property
    def samples(self) -> list[Sample]:
        with self._lock:
            return list(self._samples)

    def _watch(self, site: SiteRecord) -> None:
        cluster: Any = None
        while not self._stop.is_set():
            try:
                if cluster is None:
                    cluster = open_cluster(site)
                with cluster.open_ioctx(site.rbd_pool) as ioctx:
                    ioctx.set_namespace(self._namespace)
                    seen = primaries(ioctx, self._images)
                at = self._clock()
                found = [Sample(at, site.name, image, seen.get(image)) for image in self._images]
            except (rados.Error, rbd.Error):
                found = [Sample(self._clock(), site.name, image, None) for image in self._images]
                if cluster is not None:
                    cluster.shutdown()
                cluster = None
            with self._lock:
                self._samples += found
            self._stop.wait(INTERVAL_SECONDS)
        if cluster is not None:
            cluster.shutdown()


def wait_for(check: Callable[[], bool], timeout: float, interval: float = 0.5) -> bool:
    """Poll `check` until it holds or `timeout` passes; whether it held."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(interval)
    return check()
