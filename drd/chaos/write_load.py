"""The tenant during a chaos run: a writer that keeps writing to each image wherever it is
primary, and records every write Ceph acknowledged, with its block and checksum.

Each write goes to a block no other write of the run touches, so reading the blocks back
at the end tells exactly which acknowledged writes survived. librbd's cache is off, so an
acknowledgement means the OSDs hold the write (and, in journal mode, its journal entry).
A write that fails or times out was never acknowledged and is not counted; the writer then
looks for the site where the image is primary now, as a tenant's application would after
a failover, and carries on there.
"""

import contextlib
import hashlib
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import rados
import rbd

from drd.chaos.invariants import AckedWrite
from drd.lab.description import SiteRecord

BLOCK = 4096
# A frozen or cut-off site must not stall the writer for long.
CLIENT_TIMEOUT_SECONDS = "3"


def block_data(run: str, image: str, block: int) -> bytes:
    """What write `block` of `image` holds in run `run`: unique, and cheap to make."""
    seed = hashlib.sha256(f"{run}/{image}/{block}".encode()).digest()
    return (seed * (BLOCK // len(seed)))[:BLOCK]


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def open_cluster(site: SiteRecord) -> Any:
    """A librados handle to `site` whose calls give up after a few seconds, with librbd's
    cache off so that a write's acknowledgement means the OSDs hold it."""
    cluster = rados.Rados(conffile=str(site.conf), rados_id="admin", conf={
        "rados_mon_op_timeout": CLIENT_TIMEOUT_SECONDS,
        "rados_osd_op_timeout": CLIENT_TIMEOUT_SECONDS,
        "client_mount_timeout": CLIENT_TIMEOUT_SECONDS,
        "rbd_cache": "false",
    })
    try:
        cluster.connect(timeout=int(CLIENT_TIMEOUT_SECONDS))
    except rados.Error:
        cluster.shutdown()
        raise
    return cluster


class SiteHandle:
    """One site's cluster and open images, reopened after any failure."""

    def __init__(self, site: SiteRecord, namespace: str) -> None:
        self.site = site
        self._namespace = namespace
        self._cluster: Any = None
        self._ioctx: Any = None
        self._images: dict[str, Any] = {}

    def image(self, name: str) -> Any:
        if self._ioctx is None:
            self._cluster = open_cluster(self.site)
            self._ioctx = self._cluster.open_ioctx(self.site.rbd_pool)
            self._ioctx.set_namespace(self._namespace)
        if name not in self._images:
            self._images[name] = rbd.Image(self._ioctx, name)
        return self._images[name]

    def is_primary(self, name: str) -> bool:
        return bool(self.image(name).mirror_image_get_info()["primary"])

    def close(self) -> None:
        for image in self._images.values():
            with contextlib.suppress(rbd.Error, rados.Error):
                image.close()
        self._images = {}
        if self._cluster is not None:
            with contextlib.suppress(rados.Error):
                self._ioctx.close()
            self._cluster.shutdown()
        self._cluster = self._ioctx = None


class WriteLoad:
    """Writes `rate` blocks a second, round-robin over `images`, from its own thread."""

    def __init__(self, run: str, sites: list[SiteRecord], namespace: str, images: list[str],
                 clock: Callable[[], float], *, rate: float = 20.0) -> None:
        self._run = run
        self._handles = [SiteHandle(site, namespace) for site in sites]
        self._images = images
        self._clock = clock
        self._rate = rate
        self._current: dict[str, SiteHandle | None] = dict.fromkeys(images)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="chaos-writer", daemon=True)
        self.writes: list[AckedWrite] = []
        self.failures: Counter[str] = Counter()

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)
        for handle in self._handles:
            handle.close()

    def _loop(self) -> None:
        started = time.monotonic()
        number = 0
        while not self._stop.is_set():
            image = self._images[number % len(self._images)]
            block = number // len(self._images)
            self._write(image, block)
            number += 1
            delay = started + number / self._rate - time.monotonic()
            if delay > 0:
                self._stop.wait(delay)

    def _write(self, image: str, block: int) -> None:
        handle = self._current[image] or self._find_primary(image)
        if handle is None:
            self.failures["no primary reachable"] += 1
            return
        data = block_data(self._run, image, block)
        try:
            handle.image(image).write(data, block * BLOCK)
        except (rbd.Error, rados.Error) as error:
            self.failures[f"{handle.site.name}: {type(error).__name__}"] += 1
            self._current[image] = None
            handle.close()  # it may be blocklisted or cut off: start afresh next time
            return
        self.writes.append(AckedWrite(image, block, handle.site.name, self._clock(),
                                      digest(data)))

    def _find_primary(self, image: str) -> SiteHandle | None:
        for handle in self._handles:
            try:
                if handle.is_primary(image):
                    self._current[image] = handle
                    return handle
            except (rbd.Error, rados.Error):
                handle.close()
        return None


def read_back(site: SiteRecord, namespace: str, writes: list[AckedWrite]
              ) -> dict[tuple[str, int], str]:
    """The digest of every written block as `site` holds it now; "unreadable" for a block
    the site would not give back (which then counts as lost)."""
    handle = SiteHandle(site, namespace)
    found: dict[tuple[str, int], str] = {}
    try:
        for write in writes:
            try:
                data = handle.image(write.image).read(write.block * BLOCK, BLOCK)
            except (rbd.Error, rados.Error) as error:
                found[(write.image, write.block)] = f"unreadable: {error}"
            else:
                found[(write.image, write.block)] = digest(data)
    finally:
        handle.close()
    return found
