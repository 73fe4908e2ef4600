"""What a drill does to RBD: snapshots on the source, clones in the drill namespace of a
replica, reads that compare the two, and their removal. Blocking: call from worker
threads. Every librbd or librados error becomes a CephError naming the image.

Clones are format 2 ("clone v2"): they need no protected parent snapshot, and they
may live in another namespace than their parent, which format 1 refuses ("clone v2
required for cross-namespace clones", EXDEV). librbd picks format 1 unless the cluster
requires mimic clients or `rbd_default_clone_format` says 2, and Pacific's Python
binding has no clone-format argument, so drd sets that option on its own handle.
"""

import hashlib
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import rados
import rbd

from drd.ceph.cluster import CephError
from drd.ceph.rbd_images import execute_all, pool_ioctx
from drd.ceph.rbd_snapshots import ImageMissing, Interrupted, open_image
from drd.domain import rbd_snapshot_codec as codec
from drd.domain.drill import (
    DRILL_NAMESPACE,
    SECTOR,
    CloneMarks,
    Comparison,
    compare_sectors,
    read_marks,
)
from drd.domain.replication_plan import ImageRef, MirrorMode

# A clone for people and tools to use: no journaling, whatever the site's defaults.
CLONE_FEATURES = (rbd.RBD_FEATURE_LAYERING | rbd.RBD_FEATURE_EXCLUSIVE_LOCK
                  | rbd.RBD_FEATURE_OBJECT_MAP | rbd.RBD_FEATURE_FAST_DIFF
                  | rbd.RBD_FEATURE_DEEP_FLATTEN)
# One RBD object per read: the OSD, not the chunk size, limits reading (rbd_snapshots).
COMPARE_CHUNK = 4 << 20
_MODES = {rbd.RBD_MIRROR_IMAGE_MODE_JOURNAL: MirrorMode.JOURNAL,
          rbd.RBD_MIRROR_IMAGE_MODE_SNAPSHOT: MirrorMode.SNAPSHOT}


@contextmanager
def _ioctx(cluster: Any, pool: str, namespace: str) -> Iterator[Any]:
    ioctx = pool_ioctx(cluster, pool, namespace)
    try:
        yield ioctx
    finally:
        ioctx.close()


@dataclass(frozen=True)
class Mirroring:
    """An image's mirroring as one site sees it; mode None: not mirrored."""

    mode: MirrorMode | None
    primary: bool


def mirroring(cluster: Any, ref: ImageRef) -> Mirroring:
    with open_image(cluster, ref, "reading the mirroring of", read_only=True) as image:
        info = image.mirror_image_get_info()
        if info["state"] != rbd.RBD_MIRROR_IMAGE_ENABLED:
            return Mirroring(None, bool(info["primary"]))
        return Mirroring(_MODES.get(image.mirror_image_get_mode()), bool(info["primary"]))


class NotMirroredPrimary(CephError):
    """The image is not a mirrored primary on this cluster: nothing replicates it from here."""


@dataclass(frozen=True)
class DrillPoint:
    """A source image's drill snapshot: its id, and the snapshot closing the journal
    replay window (journal mode only)."""

    mode: MirrorMode
    snap_id: int
    window_end: str | None


def fix_drill_point(cluster: Any, ref: ImageRef, name: str, window_end: str) -> DrillPoint:
    """Take the user snapshot `name` of a mirrored primary image unless it exists; then,
    in snapshot mode, a mirror snapshot after it unless one is (mirroring ships a user
    snapshot with the next mirror snapshot), in journal mode the snapshot `window_end`
    unless it exists. One open: a journaled image's exclusive lock is taken once."""
    with open_image(cluster, ref, f"taking snapshot {name} of") as image:
        info = image.mirror_image_get_info()
        mode = (_MODES.get(image.mirror_image_get_mode())
                if info["state"] == rbd.RBD_MIRROR_IMAGE_ENABLED else None)
        if mode is None or not info["primary"]:
            raise NotMirroredPrimary(f"{ref} is not a mirrored primary image")
        if not image.snap_exists(name):
            image.create_snap(name)
        snap_id = int(image.snap_get_id(name))
        if mode is MirrorMode.SNAPSHOT:
            if not any(s.get("namespace") == rbd.RBD_SNAP_NAMESPACE_TYPE_MIRROR
                       and int(s["id"]) > snap_id for s in image.list_snaps()):
                image.mirror_image_create_snapshot()
            return DrillPoint(mode, snap_id, None)
        if not image.snap_exists(window_end):
            image.create_snap(window_end)
        return DrillPoint(mode, snap_id, window_end)


def remove_snapshots(cluster: Any, ref: ImageRef, names: tuple[str, ...]
                     ) -> tuple[list[str], MirrorMode | None]:
    """Remove those of the user snapshots `names` the image has, in one open: the ones
    removed, and its mirror mode (None: not mirrored, or no such image)."""
    try:
        with open_image(cluster, ref, "removing drill snapshots of") as image:
            removed = [name for name in names if image.snap_exists(name)]
            for name in removed:
                image.remove_snap(name)
            if image.mirror_image_get_info()["state"] != rbd.RBD_MIRROR_IMAGE_ENABLED:
                return removed, None
            return removed, _MODES.get(image.mirror_image_get_mode())
    except ImageMissing:
        return [], None


def snapshots_by_name(cluster: Any, pool: str, namespace: str, names: list[str]
                      ) -> dict[str, list[codec.SnapshotInfo] | CephError | None]:
    """Every snapshot of each named image (None: no such image), in two rounds of cls
    calls with all images' calls in flight at once, opening no image."""
    spec = f"{pool}/{namespace}" if namespace else pool
    with _ioctx(cluster, pool, namespace) as ioctx:
        try:
            ids = {str(i["name"]): str(i["id"]) for i in rbd.RBD().list2(ioctx)}
            wanted = {name: ids[name] for name in names if name in ids}
            contexts = execute_all(ioctx, {name: (f"rbd_header.{image_id}", "get_snapcontext",
                                                  b"") for name, image_id in wanted.items()})
            found: dict[str, list[codec.SnapshotInfo] | CephError | None] = {
                name: None for name in names if name not in wanted}
            snap_ids: dict[str, tuple[int, ...]] = {}
            for name, (code, data) in contexts.items():
                if code < 0 or data is None:
                    found[name] = CephError(f"reading the snapshots of {spec}/{name}: "
                                            f"error {code}")
                else:
                    snap_ids[name] = codec.decode_snapcontext(bytes(data)).snap_ids
            replies = execute_all(ioctx, {
                (name, snap_id): (f"rbd_header.{wanted[name]}", "snapshot_get",
                                  codec.encode_snapshot_get_request(snap_id))
                for name, ids_ in snap_ids.items() for snap_id in ids_})
        except (rbd.Error, rados.Error) as error:
            raise CephError(f"reading snapshots in {spec}: {error}") from error
        except codec.DecodeError as error:
            raise CephError(f"reading snapshots in {spec}: {error}") from error
    for name, ids_ in snap_ids.items():
        infos = []
        for snap_id in ids_:
            code, data = replies[name, snap_id]
            if code >= 0 and data is not None:  # else removed since it was listed
                infos.append(codec.decode_snapshot_info(bytes(data)))
        found[name] = infos
    return found


def trashed_snapshot_names(cluster: Any, ref: ImageRef) -> list[str]:
    """The original names of the image's snapshots in the trash namespace: removed, but
    kept until a clone or a sync lets go of them."""
    try:
        with open_image(cluster, ref, "listing snapshots of", read_only=True) as image:
            return [str(image.snap_get_trash_namespace(s["id"])["original_name"])
                    for s in image.list_snaps()
                    if s.get("namespace") == rbd.RBD_SNAP_NAMESPACE_TYPE_TRASH]
    except ImageMissing:
        return []


def ensure_drill_namespace(cluster: Any, pool: str) -> bool:
    """Create the drill namespace in `pool` unless it exists (True if created).

    CephError if it is mirrored: its clones would then replicate to the peers.
    """
    api = rbd.RBD()
    with _ioctx(cluster, pool, "") as ioctx:
        try:
            created = not api.namespace_exists(ioctx, DRILL_NAMESPACE)
            if created:
                api.namespace_create(ioctx, DRILL_NAMESPACE)
        except rbd.ImageExists:
            created = False  # another step made it at the same moment
        except (rbd.Error, rados.Error) as error:
            raise CephError(f"creating namespace {pool}/{DRILL_NAMESPACE}: {error}") from error
    with _ioctx(cluster, pool, DRILL_NAMESPACE) as ioctx:
        try:
            mode = api.mirror_mode_get(ioctx)
        except (rbd.Error, rados.Error) as error:
            raise CephError(f"reading the mirroring of {pool}/{DRILL_NAMESPACE}: "
                            f"{error}") from error
    if mode != rbd.RBD_MIRROR_MODE_DISABLED:
        raise CephError(f"namespace {pool}/{DRILL_NAMESPACE} has mirroring enabled, so drill "
                        f"clones there would replicate; disable it (rbd mirror pool disable "
                        f"{pool}/{DRILL_NAMESPACE})")
    return created


def clone(cluster: Any, parent: ImageRef, snapshot: str, child: ImageRef,
          marks: CloneMarks) -> bool:
    """Clone `parent@snapshot` to `child` and mark it; False if that clone was there.

    CephError if `child` exists as anything else than this clone.
    """
    cluster.conf_set("rbd_default_clone_format", "2")
    with _ioctx(cluster, parent.pool, parent.namespace) as p_ioctx, \
            _ioctx(cluster, child.pool, child.namespace) as c_ioctx:
        try:
            rbd.RBD().clone(p_ioctx, parent.name, snapshot, c_ioctx, child.name,
                            features=CLONE_FEATURES)
            made = True
        except rbd.ImageExists:
            made = False
        except (rbd.Error, rados.Error) as error:
            raise CephError(f"cloning {parent}@{snapshot} to {child}: {error}") from error
    with open_image(cluster, child, "marking the drill clone") as image:
        if not made and not _is_clone_of(image, parent, snapshot, marks):
            raise CephError(f"{child} exists and is not the clone of {parent}@{snapshot} "
                            f"this run makes; remove it, or give the drill another run")
        for key, value in marks.metadata().items():
            image.metadata_set(key, value)
    return made


def _is_clone_of(image: Any, parent: ImageRef, snapshot: str, marks: CloneMarks) -> bool:
    existing = read_marks(dict(image.metadata_list()))
    if existing is not None:
        return existing == marks
    try:  # cloned by an attempt that stopped before it marked the clone
        spec = image.get_parent_image_spec()
    except rbd.ImageNotFound:
        return False
    return (spec["pool_name"], spec["pool_namespace"], spec["image_name"],
            spec["snap_name"]) == (parent.pool, parent.namespace, parent.name, snapshot)


def open_and_read(cluster: Any, ref: ImageRef) -> None:
    """Open the image and read its first sector: it is usable."""
    with open_image(cluster, ref, "opening", read_only=True) as image:
        image.read(0, SECTOR)


def drill_clones(cluster: Any) -> list[tuple[ImageRef, CloneMarks | None]]:
    """Every image in the drill namespace of every pool that has one, with its marks."""
    found: list[tuple[ImageRef, CloneMarks | None]] = []
    api = rbd.RBD()
    try:
        pools = [str(p) for p in cluster.list_pools()]
    except rados.Error as error:
        raise CephError(f"listing pools: {error}") from error
    for pool in pools:
        with _ioctx(cluster, pool, "") as ioctx:
            try:
                if "rbd" not in ioctx.application_list() or \
                        not api.namespace_exists(ioctx, DRILL_NAMESPACE):
                    continue
            except (rbd.Error, rados.Error) as error:
                raise CephError(f"looking for {pool}/{DRILL_NAMESPACE}: {error}") from error
        with _ioctx(cluster, pool, DRILL_NAMESPACE) as ioctx:
            try:
                names = sorted(str(n) for n in api.list(ioctx))
            except (rbd.Error, rados.Error) as error:
                raise CephError(f"listing {pool}/{DRILL_NAMESPACE}: {error}") from error
        for name in names:
            ref = ImageRef(pool, DRILL_NAMESPACE, name)
            try:
                with open_image(cluster, ref, "reading the marks of", read_only=True) as image:
                    found.append((ref, read_marks(dict(image.metadata_list()))))
            except ImageMissing:
                continue  # removed since it was listed
    return found


def compare(replica: Any, clone_ref: ImageRef, source: Any, marks: CloneMarks, *,
            stop: threading.Event | None = None, chunk: int = COMPARE_CHUNK) -> Comparison:
    """Read the clone on the replica and its source snapshot on the source side by side.

    The window-end snapshot (journal mode) is read only where the two differ.
    """
    clone_digest, source_digest = hashlib.sha256(), hashlib.sha256()
    window = bad = 0
    first_bad: int | None = None
    snap = f"{marks.source}@{marks.snapshot}"
    with open_image(replica, clone_ref, "reading", read_only=True) as ours, \
            open_image(source, marks.source, "reading", read_only=True,
                   snapshot=marks.snapshot) as theirs:
        size, source_size = int(ours.size()), int(theirs.size())
        for offset in range(0, min(size, source_size), chunk):
            if stop is not None and stop.is_set():
                raise Interrupted(f"comparing {clone_ref} with {snap} stopped at byte "
                                  f"{offset}")
            length = min(chunk, size - offset, source_size - offset)
            mine, start = ours.read(offset, length), theirs.read(offset, length)
            clone_digest.update(mine)
            source_digest.update(start)
            if mine == start:
                continue
            end = (None if marks.window_end is None
                   else _read(source, marks.source, marks.window_end, offset, length))
            check = compare_sectors(mine, start, end, offset)
            window += check.window_sectors
            bad += len(check.bad_offsets)
            if check.bad_offsets and first_bad is None:
                first_bad = check.bad_offsets[0]
    return Comparison(size, source_size, clone_digest.hexdigest(), source_digest.hexdigest(),
                      window, bad, first_bad)


def _read(cluster: Any, ref: ImageRef, snapshot: str, offset: int, length: int) -> bytes:
    with open_image(cluster, ref, "reading", read_only=True, snapshot=snapshot) as image:
        return bytes(image.read(offset, length))
