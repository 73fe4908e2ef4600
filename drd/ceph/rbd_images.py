"""RBD images and their mirroring, through librbd. Blocking: call from worker threads.

`observe_pool` reads a namespace's mirroring through librbd, whose 16.2
`mirror_image_info_list` costs three round trips per image, one image after another;
the reconciler uses `rbd_observe.observe_pool_batched` instead, and tests compare it
with this one.
"""

import contextlib
import errno
import os
from collections.abc import Callable, Hashable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

import rados
import rbd

from drd.ceph.cluster import CephError
from drd.domain import rbd_snapshot_codec as codec
from drd.domain.journal_position import (
    DecodeError,
    JournalClient,
    decode_client_list,
    encode_client_list_request,
)
from drd.domain.replication_plan import ImageRef, MirrorMode, MirrorState, ObservedImage
from drd.domain.rpo import MirrorSnapshot

TENANT_MARK = "drd.tenant"  # image metadata: which tenant's policy enabled its mirroring
SELECTION_MARK = "drd.selection"

_MODES = {rbd.RBD_MIRROR_IMAGE_MODE_JOURNAL: MirrorMode.JOURNAL,
          rbd.RBD_MIRROR_IMAGE_MODE_SNAPSHOT: MirrorMode.SNAPSHOT}
_MODE_CODES = {mode: code for code, mode in _MODES.items()}
_STATES = {rbd.RBD_MIRROR_IMAGE_DISABLING: MirrorState.DISABLING,
           rbd.RBD_MIRROR_IMAGE_ENABLED: MirrorState.ENABLED,
           rbd.RBD_MIRROR_IMAGE_DISABLED: MirrorState.DISABLED}
# Journaling needs exclusive-lock; both can be turned on for an existing image.
_JOURNAL_FEATURES = (rbd.RBD_FEATURE_EXCLUSIVE_LOCK, rbd.RBD_FEATURE_JOURNALING)
# librados' aio_exec copies a reply larger than the caller's buffer past its end
# (Ceph 16.2.15: C_aio_Complete; a heap overrun, then a segfault). cls_rbd's replies
# read here are a few hundred bytes, so this is far more than any of them needs;
# the buffer is only touched where the reply lands, so it costs address space.
_REPLY_BUFFER = 1 << 20
Key = TypeVar("Key", bound=Hashable)
Decoded = TypeVar("Decoded")


def pool_ioctx(cluster: Any, pool: str, namespace: str) -> Any:
    """An ioctx on `pool`/`namespace`; the caller closes it."""
    try:
        ioctx = cluster.open_ioctx(pool)
    except rados.Error as error:
        raise CephError(f"opening pool {pool}: {error}") from error
    ioctx.set_namespace(namespace)
    return ioctx


@contextmanager
def _image(cluster: Any, ref: ImageRef, doing: str, read_only: bool = False) -> Iterator[Any]:
    """Open one image for one call; librbd and librados errors become CephError."""
    ioctx = pool_ioctx(cluster, ref.pool, ref.namespace)
    try:
        with rbd.Image(ioctx, ref.name, read_only=read_only) as image:
            yield image
    except (rbd.Error, rados.Error) as error:
        raise CephError(f"{doing} {ref}: {error}") from error
    finally:
        ioctx.close()


def observe_pool(cluster: Any, pool: str, namespace: str) -> list[ObservedImage]:
    """Every image of `pool`/`namespace` with its mirroring state, as librbd gives it.

    librbd lists only enabled images: one disabling or being created shows as disabled.
    """
    api = rbd.RBD()
    ioctx = pool_ioctx(cluster, pool, namespace)
    try:
        names = {image["id"]: image["name"] for image in api.list2(ioctx)}
        infos = dict(api.mirror_image_info_list(ioctx))
    except (rbd.Error, rados.Error) as error:
        raise CephError(f"listing images of {pool}/{namespace}: {error}") from error
    finally:
        ioctx.close()
    observed = []
    for image_id, name in names.items():
        info = infos.get(image_id)
        ref = ImageRef(pool, namespace, name)
        if info is None:
            observed.append(ObservedImage(ref, image_id, MirrorState.DISABLED, None, None, None))
            continue
        observed.append(ObservedImage(
            ref, image_id, _STATES.get(info["state"], MirrorState.ENABLING),
            _MODES.get(info["mode"]), bool(info["primary"]), None))
    return observed


def read_tenant_mark(cluster: Any, ref: ImageRef) -> str:
    """The tenant whose policy made drd mirror this image, or "" if none did."""
    with _image(cluster, ref, "reading the marks of", read_only=True) as image:
        try:
            return str(image.metadata_get(TENANT_MARK))
        except KeyError:
            return ""


def enable_mirroring(cluster: Any, ref: ImageRef, mode: MirrorMode, tenant: str,
                     selection: str) -> None:
    """Mark the image as the tenant's, then enable mirroring in `mode`. Idempotent."""
    with _image(cluster, ref, f"enabling {mode.value} mirroring of") as image:
        image.metadata_set(TENANT_MARK, tenant)
        image.metadata_set(SELECTION_MARK, selection)
        if mode is MirrorMode.JOURNAL:
            features = image.features()
            for feature in _JOURNAL_FEATURES:
                if not features & feature:
                    image.update_features(feature, True)
        if image.mirror_image_get_info()["state"] != rbd.RBD_MIRROR_IMAGE_ENABLED:
            image.mirror_image_enable(_MODE_CODES[mode])


def disable_mirroring(cluster: Any, ref: ImageRef) -> None:
    """Disable mirroring (peers then delete their copies) and drop drd's marks."""
    with _image(cluster, ref, "disabling mirroring of") as image:
        if image.mirror_image_get_info()["state"] != rbd.RBD_MIRROR_IMAGE_DISABLED:
            image.mirror_image_disable(False)
        for mark in (TENANT_MARK, SELECTION_MARK):
            with contextlib.suppress(KeyError):
                image.metadata_remove(mark)


def take_mirror_snapshot(cluster: Any, ref: ImageRef) -> int:
    """`rbd mirror image snapshot`: what was written so far ships to every peer."""
    with _image(cluster, ref, "mirror snapshot of") as image:
        return int(image.mirror_image_create_snapshot())


def mirror_snapshots(cluster: Any, ref: ImageRef) -> list[MirrorSnapshot]:
    """The image's mirror snapshots, oldest first, with their sync state."""
    with _image(cluster, ref, "listing mirror snapshots of", read_only=True) as image:
        found = []
        for snap in image.list_snaps():
            if snap.get("namespace") != rbd.RBD_SNAP_NAMESPACE_TYPE_MIRROR:
                continue
            info = image.snap_get_mirror_namespace(snap["id"])
            state = info["state"]
            primary = state in (rbd.RBD_SNAP_MIRROR_STATE_PRIMARY,
                                rbd.RBD_SNAP_MIRROR_STATE_PRIMARY_DEMOTED)
            created = image.get_snap_timestamp(snap["id"]).replace(tzinfo=UTC)
            found.append(MirrorSnapshot(
                snap_id=int(snap["id"]), created=created, primary=primary,
                complete=bool(info["complete"]),
                primary_snap_id=None if primary else int(info["primary_snap_id"]),
                demoted=state in (rbd.RBD_SNAP_MIRROR_STATE_PRIMARY_DEMOTED,
                                  rbd.RBD_SNAP_MIRROR_STATE_NON_PRIMARY_DEMOTED)))
        return found


def image_ids_by_name(cluster: Any, pool: str, namespace: str) -> dict[str, str]:
    """Image name -> image id in `pool`/`namespace`, from one `list2`.

    Each site holds its copy of an image under an id of its own (rbd-mirror makes
    one for the non-primary copy), so a peer's images are read by the ids this gives.
    """
    ioctx = pool_ioctx(cluster, pool, namespace)
    try:
        return {str(image["name"]): str(image["id"]) for image in rbd.RBD().list2(ioctx)}
    except (rbd.Error, rados.Error) as error:
        raise CephError(f"listing images of {pool}/{namespace}: {error}") from error
    finally:
        ioctx.close()


def mirror_snapshots_many(cluster: Any, pool: str, namespace: str, image_ids: list[str]
                          ) -> dict[str, list[MirrorSnapshot] | CephError]:
    """Each image's mirror snapshots as `mirror_snapshots` gives them, opening none.

    Two rounds of cls_rbd calls on the header objects, each with all calls in flight
    at once: every image's snapshot ids, then every snapshot. A failure is returned
    for its image alone; a snapshot removed between the rounds is left out.
    """
    spec = f"{pool}/{namespace}" if namespace else pool
    ioctx = pool_ioctx(cluster, pool, namespace)
    try:
        contexts = execute_all(ioctx, {
            image_id: (f"rbd_header.{image_id}", "get_snapcontext", b"")
            for image_id in image_ids})
        found: dict[str, list[MirrorSnapshot] | CephError] = {}
        snap_ids: dict[str, tuple[int, ...]] = {}
        for image_id, (code, data) in contexts.items():
            context = _decoded(code, data, codec.decode_snapcontext,
                               f"image id {image_id} in {spec}")
            if isinstance(context, CephError):
                found[image_id] = context
            else:
                snap_ids[image_id] = context.snap_ids
        replies = execute_all(ioctx, {
            (image_id, snap_id): (f"rbd_header.{image_id}", "snapshot_get",
                                  codec.encode_snapshot_get_request(snap_id))
            for image_id, ids in snap_ids.items() for snap_id in ids})
        for image_id, ids in snap_ids.items():
            found[image_id] = _snapshots([replies[image_id, snap_id] for snap_id in ids],
                                         f"image id {image_id} in {spec}")
        return found
    except rados.Error as error:
        raise CephError(f"reading mirror snapshots in {spec}: {error}") from error
    finally:
        ioctx.close()


def _snapshots(replies: list[tuple[int, bytes | None]],
               where: str) -> list[MirrorSnapshot] | CephError:
    infos = []
    for code, data in replies:
        if code == -errno.ENOENT:
            continue  # removed since its id was listed (rbd-mirror prunes old ones)
        info = _decoded(code, data, codec.decode_snapshot_info, where)
        if isinstance(info, CephError):
            return info
        infos.append(info)
    return codec.to_mirror_snapshots(infos)


def _decoded(code: int, data: bytes | None, decode: Callable[[bytes], Decoded],
             where: str) -> Decoded | CephError:
    if code < 0 or data is None:
        return CephError(f"reading the snapshots of {where}: "
                         f"{os.strerror(-code) if code < 0 else 'no reply'}")
    try:
        return decode(bytes(data))
    except codec.DecodeError as error:
        return CephError(f"reading the snapshots of {where}: {error}")


def execute_all(ioctx: Any, calls: dict[Key, tuple[str, str, bytes]], cls: str = "rbd"
                ) -> dict[Key, tuple[int, bytes | None]]:
    """Call methods of object class `cls` on many objects at once: each call's return
    code and reply."""
    replies: dict[Key, bytes | None] = {}

    def keep(key: Key) -> Any:
        return lambda _completion, data: replies.__setitem__(key, data)

    pending: list[tuple[Key, Any]] = []
    try:
        for key, (oid, method, request) in calls.items():
            pending.append((key, ioctx.aio_execute(oid, cls, method, request, _REPLY_BUFFER,
                                                   oncomplete=keep(key))))
    finally:
        # Also when a submission failed: none may complete into a closed ioctx.
        for _, completion in pending:
            completion.wait_for_complete_and_cb()
    return {key: (completion.get_return_value(), replies.get(key))
            for key, completion in pending}


@dataclass(frozen=True)
class PeerImageStatus:
    """What one peer's rbd-mirror last reported for one image."""

    site: str
    state: str  # replaying, syncing, stopped, error, unknown, ...
    description: str
    up: bool
    reported_at: datetime | None


STATUS_STATES = {
    rbd.MIRROR_IMAGE_STATUS_STATE_UNKNOWN: "unknown",
    rbd.MIRROR_IMAGE_STATUS_STATE_ERROR: "error",
    rbd.MIRROR_IMAGE_STATUS_STATE_SYNCING: "syncing",
    rbd.MIRROR_IMAGE_STATUS_STATE_STARTING_REPLAY: "starting_replay",
    rbd.MIRROR_IMAGE_STATUS_STATE_REPLAYING: "replaying",
    rbd.MIRROR_IMAGE_STATUS_STATE_STOPPING_REPLAY: "stopping_replay",
    rbd.MIRROR_IMAGE_STATUS_STATE_STOPPED: "stopped",
}


def peer_statuses(cluster: Any, pool: str,
                  namespace: str) -> dict[str, list[PeerImageStatus]]:
    """Every mirrored image's per-peer replay status, keyed by image id: one batch call.

    rbd-mirror refreshes these every few seconds, so they are for state (error,
    split-brain, stopped) and journal lag; snapshot RPO is read from snapshots.
    """
    api = rbd.RBD()
    sites = {uuid: site for site, uuid in peer_mirror_uuids(cluster, pool).items()}
    ioctx = pool_ioctx(cluster, pool, namespace)
    try:
        statuses: dict[str, list[PeerImageStatus]] = {}
        for entry in api.mirror_image_status_list(ioctx):
            statuses[entry["id"]] = [
                PeerImageStatus(
                    site=sites.get(remote.get("mirror_uuid", ""), remote.get("mirror_uuid", "")),
                    state=STATUS_STATES.get(remote.get("state", -1), "unknown"),
                    description=str(remote.get("description", "")),
                    up=bool(remote.get("up", False)),
                    reported_at=reported_at(remote.get("last_update")))
                for remote in entry.get("remote_statuses", [])]
        return statuses
    except (rbd.Error, rados.Error) as error:
        raise CephError(f"reading mirror statuses of {pool}/{namespace}: {error}") from error
    finally:
        ioctx.close()


def reported_at(value: Any) -> datetime | None:
    # The binding gives a naive datetime; read it as UTC, as Ceph hosts run (and the
    # lab does). On a host in another zone this reading is off by the zone offset.
    if isinstance(value, datetime):
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value
    return None


def peer_mirror_uuids(cluster: Any, pool: str) -> dict[str, str]:
    """Peer site name -> that site's mirror UUID (its journal client id here).

    Peers belong to the pool: a namespace's ioctx lists none.
    """
    ioctx = pool_ioctx(cluster, pool, "")
    try:
        return {str(peer.get("site_name", "")): str(peer.get("mirror_uuid", ""))
                for peer in rbd.RBD().mirror_peer_list(ioctx) if peer.get("mirror_uuid")}
    except (rbd.Error, rados.Error) as error:
        raise CephError(f"listing mirror peers of {pool}: {error}") from error
    finally:
        ioctx.close()


def journal_clients(cluster: Any, pool: str, namespace: str,
                    image_ids: list[str]) -> dict[str, list[JournalClient] | CephError]:
    """Every client of each image's journal with its commit position.

    One OSD call per image, all in flight at once, so a round over many journal
    images takes about one round trip. A failure is returned for its image alone.
    """
    ioctx = pool_ioctx(cluster, pool, namespace)
    try:
        request = encode_client_list_request()
        replies: dict[str, bytes | None] = {}

        def keep(image_id: str) -> Any:
            return lambda _completion, data: replies.__setitem__(image_id, data)

        pending = {image_id: ioctx.aio_execute(
            f"journal.{image_id}", "journal", "client_list", request, 1 << 16,
            oncomplete=keep(image_id)) for image_id in image_ids}
        found: dict[str, list[JournalClient] | CephError] = {}
        for image_id, completion in pending.items():
            completion.wait_for_complete_and_cb()
            found[image_id] = _client_list(completion.get_return_value(),
                                           replies.get(image_id),
                                           f"{pool}/{namespace} {image_id}")
        return found
    except rados.Error as error:
        raise CephError(f"reading journal clients in {pool}/{namespace}: {error}") from error
    finally:
        ioctx.close()


def _client_list(code: int, data: bytes | None, where: str) -> list[JournalClient] | CephError:
    if code < 0 or data is None:
        return CephError(f"reading the journal clients of {where}: "
                         f"{os.strerror(-code) if code < 0 else 'no reply'}")
    try:
        return decode_client_list(bytes(data))
    except DecodeError as error:
        return CephError(f"reading the journal clients of {where}: {error}")


def writer_commit_age(cluster: Any) -> float:
    """`rbd_journal_commit_age` as this host's librbd gets it, central config included.

    Writers commit their journal position that often, so that long is invisible to
    drd; the site's clients are expected to share this value (see systemd/README.md).
    """
    return float(cluster.conf_get("rbd_journal_commit_age"))
