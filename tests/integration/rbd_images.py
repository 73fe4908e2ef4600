"""Test helpers on real RBD images: write known data, checksum it, wait for replicas."""

import contextlib
import hashlib
import random
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import rados
import rbd

from drd.ceph import rbd_images
from drd.ceph.cluster import connect
from drd.domain.replication_plan import ImageRef
from drd.lab.description import DaemonRole, SiteRecord
from drd.lab.lab_store import load_description
from drd.lab.processes import is_running

MiB = 1024 * 1024
CHUNK = 1 * MiB  # VM-sized writes
T = TypeVar("T")

JOURNAL_FEATURES = (rbd.RBD_FEATURE_LAYERING | rbd.RBD_FEATURE_EXCLUSIVE_LOCK
                    | rbd.RBD_FEATURE_OBJECT_MAP | rbd.RBD_FEATURE_FAST_DIFF
                    | rbd.RBD_FEATURE_JOURNALING)
MODES = {"snapshot": rbd.RBD_MIRROR_IMAGE_MODE_SNAPSHOT,
         "journal": rbd.RBD_MIRROR_IMAGE_MODE_JOURNAL}


@contextmanager
def pool(site: SiteRecord, namespace: str = "") -> Iterator[Any]:
    with connect(site.conf) as cluster, cluster.open_ioctx(site.rbd_pool) as ioctx:
        ioctx.set_namespace(namespace)
        yield ioctx


def random_bytes(seed: int, size: int) -> bytes:
    """Reproducible test data; not a secret, so a seeded PRNG is right here."""
    return random.Random(seed).randbytes(size)  # noqa: S311


def create_mirrored_image(site: SiteRecord, name: str, size: int, mode: str) -> None:
    features = JOURNAL_FEATURES if mode == "journal" else None
    with pool(site) as ioctx:
        rbd.RBD().create(ioctx, name, size, old_format=False, features=features)
        with rbd.Image(ioctx, name) as image:
            image.mirror_image_enable(MODES[mode])
    if mode == "journal":
        wait_journal_peers(site, [name])


def revive_dead_replayers(site: SiteRecord) -> bool:
    """Restart (`drd lab up`) the lab's rbd-mirror daemons that died, as systemd's
    Restart=on-failure would on a real site; whether any had. The crash described in
    wait_journal_peers takes one while a test waits, and nothing else would start it."""
    lab_dir = site.root.parent
    description = load_description(lab_dir)
    if description is None:
        return False
    dead = [p.entity for _, p in description.all_processes()
            if p.role is DaemonRole.RBD_MIRROR and not is_running(p)]
    if not dead:
        return False
    print(f"\nrestarting rbd-mirror daemons that died: {', '.join(dead)}", file=sys.stderr)
    subprocess.run([str(Path(sys.executable).with_name("drd")), "lab", "up", "--dir",
                    str(lab_dir), "--block", str(description.block)],
                   capture_output=True, timeout=300, check=True)
    return True


def wait_journal_peers(site: SiteRecord, names: list[str], namespace: str = "",
                       timeout: float = 120.0) -> None:
    """Wait until every peer's rbd-mirror reports each image up and replaying.

    Writing a journaled image while rbd-mirror bootstraps it crashes Ceph 16.2.15 here,
    in the writer or in rbd-mirror (`~ImageWatcher`: FAILED ceph_assert(m_pending_ops
    == 0)), in about one round in two of 20 images written right after enabling. The
    peers' journal clients appear early in the bootstrap, so they are not enough;
    "replaying" is its end (reported up to 30 s late, which this wait pays).
    """
    deadline = time.monotonic() + timeout
    with connect(site.conf) as cluster:
        peers = set(rbd_images.peer_mirror_uuids(cluster, site.rbd_pool))
        with pool(site, namespace) as ioctx:
            ids = [i["id"] for i in rbd.RBD().list2(ioctx) if i["name"] in names]
        assert len(ids) == len(names), f"not all of {names} exist"
        while True:
            if revive_dead_replayers(site):
                deadline = time.monotonic() + timeout  # a fresh wait for the new one
            statuses = rbd_images.peer_statuses(cluster, site.rbd_pool, namespace)
            waiting = [image_id for image_id in ids
                       if {s.site for s in statuses.get(image_id, [])
                           if s.up and s.state == "replaying"} != peers]
            if not waiting:
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"{len(waiting)} of {len(ids)} images are not replaying "
                                     f"on every peer after {timeout:.0f} s")
            time.sleep(1.0)


def write(site: SiteRecord, name: str, offset: int, data: bytes, namespace: str = "") -> None:
    with pool(site, namespace) as ioctx, rbd.Image(ioctx, name) as image:
        for start in range(0, len(data), CHUNK):
            image.write(data[start:start + CHUNK], offset + start)
        image.flush()


def mirror_snapshot(site: SiteRecord, name: str) -> None:
    """Snapshot-mode mirroring ships only what a mirror snapshot captured."""
    with pool(site) as ioctx, rbd.Image(ioctx, name) as image:
        image.mirror_image_create_snapshot()


def image_sha256(site: SiteRecord, name: str, namespace: str = "") -> str:
    digest = hashlib.sha256()
    with pool(site, namespace) as ioctx, rbd.Image(ioctx, name, read_only=True) as image:
        size = image.size()
        for start in range(0, size, CHUNK):
            digest.update(image.read(start, min(CHUNK, size - start)))
    return digest.hexdigest()


def is_primary(site: SiteRecord, name: str) -> bool:
    with pool(site) as ioctx, rbd.Image(ioctx, name, read_only=True) as image:
        return bool(image.mirror_image_get_info()["primary"])


def demote(site: SiteRecord, name: str) -> None:
    with pool(site) as ioctx, rbd.Image(ioctx, name) as image:
        image.mirror_image_demote()


def promote(site: SiteRecord, name: str) -> None:
    # "demotion is not propagated yet": the peer has not seen the demotion; retry.
    def attempt() -> None:
        with pool(site) as ioctx, rbd.Image(ioctx, name) as image:
            image.mirror_image_promote(False)
    retry_until(attempt, timeout=90, what=f"promote {name} on {site.name}")


def retry_until(action: Callable[[], T], timeout: float, what: str) -> T:
    deadline = time.monotonic() + timeout
    while True:
        try:
            return action()
        except (rbd.Error, rados.Error) as error:
            if time.monotonic() > deadline:
                raise AssertionError(f"{what}: still failing after {timeout} s: {error}") \
                    from error
            time.sleep(0.2)


def wait_for_checksum(site: SiteRecord, name: str, expected: str, timeout: float = 120,
                      namespace: str = "") -> float:
    """Wait until the image on `site` hashes to `expected`; seconds it took."""
    started = time.monotonic()
    last = "image not there yet"
    while time.monotonic() - started < timeout:
        with contextlib.suppress(rbd.ImageNotFound):
            last = image_sha256(site, name, namespace)
        if last == expected:
            return time.monotonic() - started
        time.sleep(0.2)
    raise AssertionError(f"{name} on site {site.name} did not reach sha256 {expected[:12]} "
                         f"within {timeout} s (last: {last[:12]})")


def wait_snapshot_copied(primary: SiteRecord, copy: SiteRecord, name: str,
                         timeout: float = 180, namespace: str = "") -> None:
    """Wait until `copy` holds the primary's newest mirror snapshot of a snapshot-mode
    image, complete. Matching bytes are not enough: rbd-mirror copies the data before it
    marks the snapshot complete, and a forced promotion rolls back to the last complete
    one, which for a copy still in its first sync is the empty image."""
    ref = ImageRef(primary.rbd_pool, namespace, name)
    with connect(primary.conf) as cluster:
        newest = max(s.snap_id for s in rbd_images.mirror_snapshots(cluster, ref) if s.primary)
    deadline = time.monotonic() + timeout
    held: list[str] = []
    while time.monotonic() < deadline:
        with contextlib.suppress(rbd.ImageNotFound), connect(copy.conf) as cluster:
            snapshots = rbd_images.mirror_snapshots(cluster, ref)
            if any(s.primary_snap_id == newest and s.complete for s in snapshots):
                return
            held = [f"{s.primary_snap_id}{'' if s.complete else ' (incomplete)'}"
                    for s in snapshots]
        time.sleep(0.2)
    raise AssertionError(f"{name} on site {copy.name} did not complete the primary's mirror "
                         f"snapshot {newest} within {timeout} s; it holds {held}")


def local_mirror_description(site: SiteRecord, name: str) -> str:
    """What this site's rbd-mirror reports about its copy of the image."""
    with pool(site) as ioctx, rbd.Image(ioctx, name, read_only=True) as image:
        return str(image.mirror_image_get_status().get("description", ""))


def resync(site: SiteRecord, name: str) -> None:
    """Throw away this site's copy and copy the image again from the primary."""
    with pool(site) as ioctx, rbd.Image(ioctx, name) as image:
        image.mirror_image_resync()
