"""A namespace's images and their mirroring, read in a few batched rounds of cls calls.
Blocking: call from worker threads.

librbd 16.2's `mirror_image_info_list` reads images one after another, three round
trips each; here each round has every image's call in flight at once:

1. `list2`: names and ids;
2. `rbd.mirror_image_get` for every id: state and mode;
3. for enabled images, `rbd.get_snapcontext` (snapshot mode) or `journal.get_client`
   (journal mode, the image client's tag class);
4. `rbd.snapshot_get` of the newest snapshot, or `journal.tag_list` of that class;
5. rarely, older snapshots, while the newest ones are not mirror snapshots.

An image removed between rounds is left out, as it would be from the next `list2`.
"""

import contextlib
import errno
import os
from collections.abc import Callable
from typing import Any, TypeVar

import rados
import rbd

from drd.ceph.cluster import CephError
from drd.ceph.rbd_images import execute_all, pool_ioctx
from drd.domain import rbd_mirror_codec as mirror
from drd.domain.rbd_snapshot_codec import (
    DecodeError,
    SnapshotInfo,
    decode_snapcontext,
    decode_snapshot_info,
    encode_snapshot_get_request,
)
from drd.domain.replication_plan import ImageRef, ObservedImage

Decoded = TypeVar("Decoded")
_GONE = -errno.ENOENT


class _Removed(Exception):
    """The object is gone: the image was removed since it was listed."""


def observe_pool_batched(cluster: Any, pool: str, namespace: str) -> list[ObservedImage]:
    """Every image of `pool`/`namespace` with its mirroring state, as `observe_pool`
    gives it, in four or five rounds of OSD calls whatever the number of images."""
    spec = f"{pool}/{namespace}" if namespace else pool
    ioctx = pool_ioctx(cluster, pool, namespace)
    try:
        names = {str(image["id"]): str(image["name"]) for image in rbd.RBD().list2(ioctx)}
        entries = _mirror_entries(ioctx, list(names), spec)
        enabled = {image_id: entry for image_id, entry in entries.items()
                   if entry is not None and entry.state == mirror.STATE_ENABLED}
        primary = _snapshot_primaries(ioctx, [i for i, e in enabled.items()
                                              if e.mode == mirror.MODE_SNAPSHOT], spec)
        primary |= _journal_primaries(ioctx, [i for i, e in enabled.items()
                                              if e.mode == mirror.MODE_JOURNAL], spec)
    except (rbd.Error, rados.Error) as error:
        raise CephError(f"observing the images of {spec}: {error}") from error
    finally:
        ioctx.close()
    return [mirror.observed(ImageRef(pool, namespace, name), image_id, entries[image_id],
                            primary.get(image_id))
            for image_id, name in names.items()
            if image_id not in enabled or image_id in primary]


def _mirror_entries(ioctx: Any, image_ids: list[str], spec: str
                    ) -> dict[str, mirror.MirrorImage | None]:
    replies = execute_all(ioctx, {
        image_id: ("rbd_mirroring", "mirror_image_get",
                   mirror.encode_mirror_image_get_request(image_id))
        for image_id in image_ids})
    entries: dict[str, mirror.MirrorImage | None] = {}
    for image_id, (code, data) in replies.items():
        try:
            entries[image_id] = _decoded(code, data, mirror.decode_mirror_image,
                                         f"the mirror entry of image id {image_id} in {spec}")
        except _Removed:
            entries[image_id] = None  # never mirrored, or mirroring disabled
    return entries


def _snapshot_primaries(ioctx: Any, image_ids: list[str], spec: str) -> dict[str, bool]:
    """Each image's newest mirror snapshot decides: one `snapshot_get` each, unless
    snapshots newer than it are of other kinds (user, trash) or vanish meanwhile."""
    contexts = execute_all(ioctx, {
        image_id: (f"rbd_header.{image_id}", "get_snapcontext", b"") for image_id in image_ids})
    unread: dict[str, list[int]] = {}  # snapshot ids still to look at, newest first
    for image_id, (code, data) in contexts.items():
        with contextlib.suppress(_Removed):
            unread[image_id] = list(_decoded(code, data, decode_snapcontext,
                                             f"the snapshots of image id {image_id} in {spec}"
                                             ).snap_ids)
    primary: dict[str, bool] = {}
    while unread:
        for image_id in [i for i, ids in unread.items() if not ids]:
            primary[image_id] = mirror.snapshot_primary(None)  # no mirror snapshot yet
            del unread[image_id]
        replies = execute_all(ioctx, {
            image_id: (f"rbd_header.{image_id}", "snapshot_get",
                       encode_snapshot_get_request(ids.pop(0)))
            for image_id, ids in unread.items()})
        for image_id, (code, data) in replies.items():
            try:
                info: SnapshotInfo = _decoded(code, data, decode_snapshot_info,
                                              f"a snapshot of image id {image_id} in {spec}")
            except _Removed:
                continue  # removed since listed: the next older one decides
            if info.mirror is not None:
                primary[image_id] = mirror.snapshot_primary(info)
                del unread[image_id]
    return primary


def _journal_primaries(ioctx: Any, image_ids: list[str], spec: str) -> dict[str, bool]:
    """The owner of the newest tag of each image client's tag class decides."""
    clients = execute_all(ioctx, {
        image_id: (f"journal.{image_id}", "get_client", mirror.encode_get_client_request())
        for image_id in image_ids}, cls="journal")
    classes: dict[str, int] = {}
    for image_id, (code, data) in clients.items():
        with contextlib.suppress(_Removed):
            classes[image_id] = _decoded(code, data, mirror.decode_image_client_tag_class,
                                         f"the journal client of image id {image_id} in {spec}")
    newest: dict[str, mirror.JournalTag] = {}
    after = dict.fromkeys(classes, 0)
    while after:
        replies = execute_all(ioctx, {
            image_id: (f"journal.{image_id}", "tag_list",
                       mirror.encode_tag_list_request(classes[image_id], start_after))
            for image_id, start_after in after.items()}, cls="journal")
        for image_id, (code, data) in replies.items():
            try:
                tags = _decoded(code, data, mirror.decode_tag_list,
                                f"the journal tags of image id {image_id} in {spec}")
            except _Removed:
                del classes[image_id], after[image_id]
                continue
            if tags:
                newest[image_id] = tags[-1]
            if len(tags) == mirror.TAG_PAGE:
                after[image_id] = tags[-1].tid
            else:
                del after[image_id]
    missing = sorted(set(classes) - set(newest))
    if missing:
        # librbd fails such an image (ENOENT: "no journal tags retrieved").
        raise CephError(f"reading the journal tags of image id {missing[0]} in {spec}: "
                        "its journal has no tags")
    return {image_id: mirror.journal_primary(tag) for image_id, tag in newest.items()}


def _decoded(code: int, data: bytes | None, decode: Callable[[bytes], Decoded],
             what: str) -> Decoded:
    if code == _GONE:
        raise _Removed
    if code < 0 or data is None:
        raise CephError(f"reading {what}: {os.strerror(-code) if code < 0 else 'no reply'}")
    try:
        return decode(bytes(data))
    except DecodeError as error:
        raise CephError(f"reading {what}: {error}") from error
