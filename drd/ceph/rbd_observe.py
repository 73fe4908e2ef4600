"""A namespace's images and their mirroring, read in a few batched rounds of cls calls.
Blocking: call from worker threads.

librbd 16.2's `mirror_image_info_list` reads images one after another, three round
trips each; here each round has every image's call in flight at once:

1. `list2`: names and ids;
2. `rbd.mirror_image_status_list`: every mirror entry (state and mode) in one call;
3. for enabled images, `rbd.get_snapcontext` (snapshot mode) or `journal.get_client`
   (journal mode, the image client's tag class);
4. `rbd.snapshot_get` of the newest snapshot, or `journal.tag_list` of that class;
5. rarely, older snapshots, while the newest ones are not mirror snapshots.

An image removed between rounds is left out, as it would be from the next `list2`.

A reconcile pass observes every namespace every few seconds, so an `ObservationMemo`
keeps what cannot change between passes: what a snapshot id of an image is (a mirror
snapshot's state is fixed when it is taken; promotion and demotion take new ones), and
an image journal's tag class (fixed for the life of its mirror entry). Then a steady
pass reads `snapshot_get` only for snapshots taken since the last one, and
`journal.get_client` not at all; primary or not is still decided from fresh reads.
"""

import contextlib
import errno
import os
from collections.abc import Callable
from dataclasses import dataclass, field
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


SnapshotKey = tuple[str, int]  # image id, snapshot id
JournalKey = tuple[str, str]  # image id, global image id


@dataclass
class _Remembered:
    """One namespace's facts from the last pass; only those still in use carry over."""

    # Per snapshot: primary or not if it is a mirror snapshot, None if another kind.
    snapshots: dict[SnapshotKey, bool | None] = field(default_factory=dict)
    tag_classes: dict[JournalKey, int] = field(default_factory=dict)


class ObservationMemo:
    """What observing a namespace learnt that cannot change, kept for the next pass.
    Each namespace is observed by one thread at a time."""

    def __init__(self) -> None:
        self._namespaces: dict[str, _Remembered] = {}

    def recall(self, spec: str) -> _Remembered:
        return self._namespaces.get(spec, _Remembered())

    def keep(self, spec: str, remembered: _Remembered) -> None:
        self._namespaces[spec] = remembered


def observe_pool_batched(cluster: Any, pool: str, namespace: str,
                         memo: ObservationMemo | None = None) -> list[ObservedImage]:
    """Every image of `pool`/`namespace` with its mirroring state, as `observe_pool`
    gives it, in four or five rounds of OSD calls whatever the number of images."""
    spec = f"{pool}/{namespace}" if namespace else pool
    known = memo.recall(spec) if memo is not None else _Remembered()
    learnt = _Remembered()
    ioctx = pool_ioctx(cluster, pool, namespace)
    try:
        names = {str(image["id"]): str(image["name"]) for image in rbd.RBD().list2(ioctx)}
        listed = _mirror_entries(ioctx, spec)
        # Listed after list2: an image created since is left for the next pass.
        entries = {image_id: listed.get(image_id) for image_id in names}
        enabled = {image_id: entry for image_id, entry in entries.items()
                   if entry is not None and entry.state == mirror.STATE_ENABLED}
        primary = _snapshot_primaries(ioctx, [i for i, e in enabled.items()
                                              if e.mode == mirror.MODE_SNAPSHOT], spec,
                                      known.snapshots, learnt.snapshots)
        primary |= _journal_primaries(ioctx, {i: e.global_image_id for i, e in enabled.items()
                                              if e.mode == mirror.MODE_JOURNAL}, spec,
                                      known.tag_classes, learnt.tag_classes)
    except (rbd.Error, rados.Error) as error:
        raise CephError(f"observing the images of {spec}: {error}") from error
    finally:
        ioctx.close()
    if memo is not None:
        memo.keep(spec, learnt)
    return [mirror.observed(ImageRef(pool, namespace, name), image_id, entries[image_id],
                            primary.get(image_id))
            for image_id, name in names.items()
            if image_id not in enabled or image_id in primary]


def _mirror_entries(ioctx: Any, spec: str) -> dict[str, mirror.MirrorImage]:
    """Every mirror entry of the namespace, a page per call; an image without one was
    never mirrored, or its mirroring is disabled."""
    entries: dict[str, mirror.MirrorImage] = {}
    start_after = ""
    while True:
        request = mirror.encode_mirror_image_status_list_request(start_after)
        (code, data), = execute_all(ioctx, {
            0: ("rbd_mirroring", "mirror_image_status_list", request)}).values()
        try:
            page = _decoded(code, data, mirror.decode_mirror_image_status_list,
                            f"the mirror entries of {spec}")
        except _Removed:
            return entries  # no rbd_mirroring object: nothing was ever mirrored here
        entries |= page
        if len(page) < mirror.STATUS_LIST_PAGE:
            return entries
        start_after = max(page)


def _snapshot_primaries(ioctx: Any, image_ids: list[str], spec: str,
                        known: dict[SnapshotKey, bool | None],
                        learnt: dict[SnapshotKey, bool | None]) -> dict[str, bool]:
    """Each image's newest mirror snapshot decides: one `snapshot_get` each, unless
    snapshots newer than it are of other kinds (user, trash) or vanish meanwhile, or
    the last pass already read it."""
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
        asked: dict[str, int] = {}
        for image_id, ids in list(unread.items()):
            key = (image_id, ids.pop(0))
            if key in known:
                _settle(image_id, key, known[key], learnt=learnt, primary=primary,
                        unread=unread)
            else:
                asked[image_id] = key[1]
        replies = execute_all(ioctx, {
            image_id: (f"rbd_header.{image_id}", "snapshot_get",
                       encode_snapshot_get_request(snap_id))
            for image_id, snap_id in asked.items()})
        for image_id, (code, data) in replies.items():
            try:
                info: SnapshotInfo = _decoded(code, data, decode_snapshot_info,
                                              f"a snapshot of image id {image_id} in {spec}")
            except _Removed:
                continue  # removed since listed: the next older one decides
            is_primary = mirror.snapshot_primary(info) if info.mirror is not None else None
            _settle(image_id, (image_id, asked[image_id]), is_primary, learnt=learnt,
                    primary=primary, unread=unread)
    return primary


def _settle(image_id: str, key: SnapshotKey, is_primary: bool | None, *,
            learnt: dict[SnapshotKey, bool | None], primary: dict[str, bool],
            unread: dict[str, list[int]]) -> None:
    """Record what a snapshot is; a mirror snapshot decides its image."""
    learnt[key] = is_primary
    if is_primary is not None:
        primary[image_id] = is_primary
        del unread[image_id]


def _journal_primaries(ioctx: Any, global_ids: dict[str, str], spec: str,
                       known: dict[JournalKey, int],
                       learnt: dict[JournalKey, int]) -> dict[str, bool]:
    """The owner of the newest tag of each image client's tag class decides."""
    classes = {image_id: known[(image_id, global_id)]
               for image_id, global_id in global_ids.items()
               if (image_id, global_id) in known}
    clients = execute_all(ioctx, {
        image_id: (f"journal.{image_id}", "get_client", mirror.encode_get_client_request())
        for image_id in global_ids if image_id not in classes}, cls="journal")
    for image_id, (code, data) in clients.items():
        with contextlib.suppress(_Removed):
            classes[image_id] = _decoded(code, data, mirror.decode_image_client_tag_class,
                                         f"the journal client of image id {image_id} in {spec}")
    learnt.update(((image_id, global_ids[image_id]), tag_class)
                  for image_id, tag_class in classes.items())
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
