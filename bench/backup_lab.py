"""What the backup benchmark needs around drd: images of random data on site a, fresh
restic repositories with 0600 password files, and meters of CPU and memory.

Images are in pool `rbd`'s default namespace, named `bkbench-<run>-...`, and not
mirrored (the pool mirrors only images enabled one by one), so no rbd-mirror copies
them and no lab policy selects them. Repositories are plain directories under the
benchmark's workspace; each is deleted as soon as its figures are taken.
"""

import os
import resource
import secrets
import shutil
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import rbd

from drd.backup.restic import ResticRepository
from drd.backup.restic_env import restic_environment
from drd.ceph.cluster import connect
from drd.domain.replication_plan import ImageRef
from drd.lab.description import DaemonRole, LabDescription, ProcessRecord

MIB = 1024**2
GIB = 1024**3
POOL = "rbd"
CLIENT = "admin"  # the cephx id the lab's drd daemons use
CEPH_TIMEOUT_S = 30.0
WRITE_CHUNK = 4 * MIB  # one RBD object
WRITE_PART = 64 * MIB  # what one thread writes through one open image
WRITE_THREADS = 4


@dataclass(frozen=True)
class Workspace:
    """The benchmark's files: /tmp/bench<B>/backup-bench, emptied at the start."""

    root: Path

    @classmethod
    def fresh(cls, root: Path) -> "Workspace":
        shutil.rmtree(root, ignore_errors=True)
        (root / "repos").mkdir(parents=True)
        return cls(root)

    @property
    def log(self) -> Path:
        return self.root / "drd.log"

    @property
    def cache_dir(self) -> Path:
        return self.root / "restic-cache"

    def repository(self, name: str, password_file: Path | None = None) -> ResticRepository:
        """A repository that does not exist yet, with a new 0600 password file unless
        one is given (tenants sharing a repository share its password)."""
        directory = self.root / "repos" / name
        shutil.rmtree(directory, ignore_errors=True)
        directory.mkdir(parents=True)
        if password_file is None:
            password_file = directory / "password"
            password_file.write_text(secrets.token_urlsafe(24) + "\n")
            password_file.chmod(0o600)
        return ResticRepository(str(directory / "repo"), password_file, self.cache_dir)

    def remove_repository(self, repository: ResticRepository) -> None:
        shutil.rmtree(Path(repository.url).parent, ignore_errors=True)


def environment(repository: ResticRepository) -> dict[str, str]:
    """restic's environment as drd builds it: the password only as RESTIC_PASSWORD_FILE."""
    return restic_environment(os.environ, password_file=repository.password_file,
                              cache_dir=repository.cache_dir)


def create_random_images(conf: Path, refs: Sequence[ImageRef], size: int) -> None:
    """Images of `size` random bytes each (nothing for restic to compress or dedup)."""
    with connect(conf, CLIENT, CEPH_TIMEOUT_S) as cluster, \
            cluster.open_ioctx(POOL) as ioctx:
        for ref in refs:
            rbd.RBD().create(ioctx, ref.name, size, old_format=False)

        def fill(part: tuple[str, int]) -> None:
            name, start = part
            with rbd.Image(ioctx, name) as image:
                for offset in range(start, min(start + WRITE_PART, size), WRITE_CHUNK):
                    image.write(os.urandom(min(WRITE_CHUNK, size - offset)), offset)

        parts = [(ref.name, start) for ref in refs for start in range(0, size, WRITE_PART)]
        with ThreadPoolExecutor(max_workers=WRITE_THREADS) as pool:
            list(pool.map(fill, parts))


def remove_images(conf: Path, prefix: str) -> list[str]:
    """Delete every image named `prefix...`, with any snapshot left on it; their names."""
    removed = []
    with connect(conf, CLIENT, CEPH_TIMEOUT_S) as cluster, \
            cluster.open_ioctx(POOL) as ioctx:
        for name in rbd.RBD().list(ioctx):
            if not name.startswith(prefix):
                continue
            with rbd.Image(ioctx, name) as image:
                for snap in list(image.list_snaps()):
                    image.remove_snap(snap["name"])
            rbd.RBD().remove(ioctx, name)
            removed.append(name)
    return removed


def site_osd(description: LabDescription, site: str = "a") -> psutil.Process | None:
    """Site's OSD process, if it is still the one `lab up` started."""
    for record in description.sites[site].processes:
        if record.role is DaemonRole.OSD:
            return _live(record)
    return None


def _live(record: ProcessRecord) -> psutil.Process | None:
    try:
        process = psutil.Process(record.pid)
        if abs(process.create_time() - record.create_time) < 1.0:
            return process
    except psutil.Error:
        pass
    return None


@dataclass(frozen=True)
class CpuUse:
    """CPU seconds a measured step took: the processes it started (reaped), this
    process (drd's Python and librados threads), and the site's OSD."""

    children: float
    own: float
    osd: float

    @property
    def total(self) -> float:
        return self.children + self.own + self.osd


class CpuMeter:
    """CPU use between `start` and `stop`. Children count once reaped, so every child
    of a step must have exited by `stop`: restic reaps its command, which reaps rbd."""

    def __init__(self, osd: psutil.Process | None) -> None:
        self._osd = osd
        self._begin = (0.0, 0.0, 0.0)

    def _now(self) -> tuple[float, float, float]:
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        own = resource.getrusage(resource.RUSAGE_SELF)
        osd = 0.0
        if self._osd is not None:
            try:
                times = self._osd.cpu_times()
                osd = times.user + times.system
            except psutil.Error:
                self._osd = None
        return (children.ru_utime + children.ru_stime, own.ru_utime + own.ru_stime, osd)

    def start(self) -> None:
        self._begin = self._now()

    def stop(self) -> CpuUse:
        end = self._now()
        return CpuUse(*(after - before for after, before in zip(end, self._begin, strict=True)))


@dataclass
class MemorySampler:
    """Peak resident memory of this process's descendants (restic and rbd), and
    the most restic processes seen at once, sampled every `interval` s in a thread."""

    interval: float = 0.5
    peak_bytes: int = 0
    peak_restics: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)

    def _sample(self) -> None:
        while not self._stop.wait(self.interval):
            total, restics = 0, 0
            for child in psutil.Process().children(recursive=True):
                try:
                    if child.status() == psutil.STATUS_ZOMBIE:
                        continue  # ended, not reaped yet: its successor may already run
                    total += child.memory_info().rss
                    restics += child.name() == "restic"
                except psutil.Error:
                    continue
            self.peak_bytes = max(self.peak_bytes, total)
            self.peak_restics = max(self.peak_restics, restics)

    @contextmanager
    def running(self) -> Iterator["MemorySampler"]:
        thread = threading.Thread(target=self._sample, name="memory sampler", daemon=True)
        thread.start()
        try:
            yield self
        finally:
            self._stop.set()
            thread.join()


def load_average() -> str:
    return ", ".join(f"{x:.2f}" for x in os.getloadavg())


def seconds_since(started: float) -> float:
    return time.monotonic() - started


def describe(value: Any) -> str:
    """A short, single-line rendering of an error for the console."""
    text = " ".join(str(value).split())
    return text if len(text) <= 300 else text[:297] + "..."
