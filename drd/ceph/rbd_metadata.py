"""Image metadata (`rbd image-meta`), written on a primary and read on its copies.
Blocking: call from worker threads.

Checked on Ceph 16.2.15 (the lab): rbd-mirror carries image metadata to every peer in
both modes; in journal mode as a journal event (on the copy 0.2-0.3 s later), in
snapshot mode with the next mirror snapshot (the image state a mirror snapshot
records includes the metadata; 0.2 s after the snapshot). Neither touches the image's
data, which makes a metadata key a probe of replication that leaves tenant data alone.
"""

import contextlib
import errno
import os
import struct
from typing import Any

import rados
import rbd

from drd.ceph.cluster import CephError
from drd.ceph.rbd_images import execute_all, pool_ioctx
from drd.domain.replication_plan import ImageRef


def set_metadata(cluster: Any, ref: ImageRef, key: str, value: str) -> None:
    ioctx = pool_ioctx(cluster, ref.pool, ref.namespace)
    try:
        with rbd.Image(ioctx, ref.name) as image:
            image.metadata_set(key, value)
    except (rbd.Error, rados.Error) as error:
        raise CephError(f"setting metadata {key} of {ref}: {error}") from error
    finally:
        ioctx.close()


def remove_metadata(cluster: Any, ref: ImageRef, key: str) -> bool:
    """Remove the key; False if the image did not have it."""
    ioctx = pool_ioctx(cluster, ref.pool, ref.namespace)
    try:
        with rbd.Image(ioctx, ref.name) as image:
            with contextlib.suppress(KeyError):
                image.metadata_remove(key)
                return True
            return False
    except (rbd.Error, rados.Error) as error:
        raise CephError(f"removing metadata {key} of {ref}: {error}") from error
    finally:
        ioctx.close()


def metadata_values(cluster: Any, pool: str, namespace: str, image_ids: list[str],
                    key: str) -> dict[str, str | CephError | None]:
    """Each image's value of `key` (None if unset), one cls_rbd `metadata_get` per image,
    all in flight at once, opening no image."""
    raw = key.encode()
    request = struct.pack("<I", len(raw)) + raw
    spec = f"{pool}/{namespace}" if namespace else pool
    ioctx = pool_ioctx(cluster, pool, namespace)
    try:
        replies = execute_all(ioctx, {image_id: (f"rbd_header.{image_id}", "metadata_get",
                                                 request) for image_id in image_ids})
    except rados.Error as error:
        raise CephError(f"reading metadata {key} in {spec}: {error}") from error
    finally:
        ioctx.close()
    return {image_id: _value(code, data, f"metadata {key} of image id {image_id} in {spec}")
            for image_id, (code, data) in replies.items()}


def _value(code: int, data: bytes | None, what: str) -> str | CephError | None:
    if code == -errno.ENOENT:
        return None  # the key is not set (or the image is being recreated)
    if code < 0 or data is None:
        return CephError(f"reading {what}: {os.strerror(-code) if code < 0 else 'no reply'}")
    data = bytes(data)
    if len(data) < 4:
        return CephError(f"reading {what}: a reply of {len(data)} bytes")
    (length,) = struct.unpack_from("<I", data)
    if len(data) < 4 + length:
        return CephError(f"reading {what}: the value ends early")
    return data[4:4 + length].decode(errors="replace")
