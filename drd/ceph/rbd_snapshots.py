"""User snapshots, reads, renames and removal of RBD images, for backups and restores.

Blocking librbd calls: run them in worker threads (drd.backup.ceph_access does). Every
librbd or librados error becomes a CephError naming the image and the call; an image
that is not there is an answer (None, False), not an error, where a caller asks.
"""

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import rados
import rbd

from drd.ceph.cluster import CephError
from drd.ceph.rbd_images import pool_ioctx
from drd.domain.image_backups import ExistingImage
from drd.domain.replication_plan import ImageRef

# One RBD object per read. Measured on the lab (a loaded memstore OSD), 256 MiB hashed
# in 1-5 s whether read 4 MiB or 32 MiB at a time, or 8 or 16 reads in flight with
# aio_read: the OSD is the limit, so the simplest loop stays.
READ_CHUNK = 4 << 20


class ImageMissing(CephError):
    """The image (or its snapshot) does not exist."""


class Interrupted(Exception):
    """A long read gave up because its caller no longer wants the answer."""


@contextmanager
def _ioctx(cluster: Any, ref: ImageRef) -> Iterator[Any]:
    ioctx = pool_ioctx(cluster, ref.pool, ref.namespace)
    try:
        yield ioctx
    finally:
        ioctx.close()


@contextmanager
def open_image(cluster: Any, ref: ImageRef, doing: str, *, read_only: bool = False,
           snapshot: str | None = None) -> Iterator[Any]:
    with _ioctx(cluster, ref) as ioctx:
        try:
            with rbd.Image(ioctx, ref.name, snapshot=snapshot, read_only=read_only) as image:
                yield image
        except rbd.ImageNotFound as error:
            where = f"{ref}@{snapshot}" if snapshot else str(ref)
            raise ImageMissing(f"{doing} {where}: it does not exist") from error
        except (rbd.Error, rados.Error) as error:
            raise CephError(f"{doing} {ref}: {error}") from error


def existing_image(cluster: Any, ref: ImageRef) -> ExistingImage | None:
    """What a restore must know of the image named `ref`, or None if there is none."""
    try:
        with open_image(cluster, ref, "inspecting", read_only=True) as image:
            # A read-only open registers no watch, so every watcher is another client.
            return ExistingImage(
                size=int(image.size()),
                mirroring=image.mirror_image_get_info()["state"]
                != rbd.RBD_MIRROR_IMAGE_DISABLED,
                watchers=len(list(image.watchers_list())),
                snapshots=tuple(str(snap["name"]) for snap in image.list_snaps()))
    except ImageMissing:
        return None


def is_non_primary(cluster: Any, ref: ImageRef) -> bool:
    """Whether `ref` is a mirrored copy that another site writes (read-only here)."""
    with open_image(cluster, ref, "reading the mirroring of", read_only=True) as image:
        info = image.mirror_image_get_info()
        return bool(info["state"] != rbd.RBD_MIRROR_IMAGE_DISABLED and not info["primary"])


def snapshot_mirroring(cluster: Any, ref: ImageRef) -> bool | None:
    """Whether the image is mirrored in snapshot mode (True) or journal mode (False);
    None if it is not mirrored."""
    with open_image(cluster, ref, "reading the mirroring of", read_only=True) as image:
        if image.mirror_image_get_info()["state"] != rbd.RBD_MIRROR_IMAGE_ENABLED:
            return None
        return bool(image.mirror_image_get_mode() == rbd.RBD_MIRROR_IMAGE_MODE_SNAPSHOT)


def copy_replaying(cluster: Any, ref: ImageRef) -> bool:
    """Whether this site's rbd-mirror reports its copy of `ref` as replaying: past its
    image sync, which creates every snapshot first and copies their data after."""
    try:
        with open_image(cluster, ref, "reading the mirror status of", read_only=True) as image:
            return bool(image.mirror_image_get_status().get("state")
                        == rbd.MIRROR_IMAGE_STATUS_STATE_REPLAYING)
    except ImageMissing:
        return False


def create_snapshot(cluster: Any, ref: ImageRef, name: str) -> int:
    """Take the user snapshot `name` of the image; the image size it captured."""
    with open_image(cluster, ref, f"taking snapshot {name} of") as image:
        image.create_snap(name)
        image.set_snap(name)
        return int(image.size())


def remove_snapshot(cluster: Any, ref: ImageRef, name: str) -> bool:
    """Remove the user snapshot `name`; False if it (or the image) was not there."""
    try:
        with open_image(cluster, ref, f"removing snapshot {name} of") as image:
            if not image.snap_exists(name):
                return False
            image.remove_snap(name)
            return True
    except ImageMissing:
        return False


def user_snapshots(cluster: Any, ref: ImageRef) -> list[str]:
    """The names of the image's user snapshots (not mirror or trash ones); [] if no image."""
    try:
        with open_image(cluster, ref, "listing snapshots of", read_only=True) as image:
            return [str(snap["name"]) for snap in image.list_snaps()
                    if snap.get("namespace", rbd.RBD_SNAP_NAMESPACE_TYPE_USER)
                    == rbd.RBD_SNAP_NAMESPACE_TYPE_USER]
    except ImageMissing:
        return []


def read_image(cluster: Any, ref: ImageRef, sink: Callable[[bytes], None], *,
               snapshot: str | None = None, stop: threading.Event | None = None,
               chunk: int = READ_CHUNK) -> int:
    """Feed the image's whole content (holes read as zeros), or a snapshot's, to `sink`
    in order, one sequential read of `chunk` bytes at a time; the size it read.

    Raises Interrupted between two reads once `stop` is set: a big image takes minutes.
    """
    with open_image(cluster, ref, "reading", read_only=True, snapshot=snapshot) as image:
        size = int(image.size())
        for offset in range(0, size, chunk):
            if stop is not None and stop.is_set():
                raise Interrupted(f"reading {ref} stopped at byte {offset} of {size}")
            sink(image.read(offset, min(chunk, size - offset)))
    return size


def rename_image(cluster: Any, ref: ImageRef, new_name: str) -> ImageRef:
    """Give the image `new_name` in its pool and namespace; CephError if that is taken."""
    with _ioctx(cluster, ref) as ioctx:
        try:
            rbd.RBD().rename(ioctx, ref.name, new_name)
        except rbd.ImageNotFound as error:
            raise ImageMissing(f"renaming {ref}: it does not exist") from error
        except rbd.ImageExists as error:
            raise CephError(f"renaming {ref} to {new_name}: an image of that name "
                            f"exists") from error
        except (rbd.Error, rados.Error) as error:
            raise CephError(f"renaming {ref} to {new_name}: {error}") from error
    return ImageRef(ref.pool, ref.namespace, new_name)


def remove_image(cluster: Any, ref: ImageRef) -> bool:
    """Delete the image and its data; False if it was not there."""
    with _ioctx(cluster, ref) as ioctx:
        try:
            rbd.RBD().remove(ioctx, ref.name)
        except rbd.ImageNotFound:
            return False
        except (rbd.Error, rados.Error) as error:
            raise CephError(f"removing image {ref}: {error}") from error
    return True
