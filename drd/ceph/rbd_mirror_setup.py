"""Pool-level RBD mirroring set-up: mode, site name and peers, through librbd.

Every function here is idempotent: it reads the current state first and changes
only what differs, so `drd lab up` can run it again safely.
"""

import base64
import json
from dataclasses import dataclass, field
from typing import Any

import rados
import rbd

from drd.ceph.cluster import CephError
from drd.domain.replication_plan import ImageRef


@dataclass(frozen=True)
class MirrorPeer:
    site_name: str
    direction: str  # rx-only, tx-only or rx-tx
    client_name: str


_DIRECTIONS = {
    rbd.RBD_MIRROR_PEER_DIRECTION_RX: "rx-only",
    rbd.RBD_MIRROR_PEER_DIRECTION_TX: "tx-only",
    rbd.RBD_MIRROR_PEER_DIRECTION_RX_TX: "rx-tx",
}


def enable_image_mode(cluster: Any, pool: str, site_name: str) -> None:
    """Put `pool` in image mirroring mode and name this site."""
    with cluster.open_ioctx(pool) as ioctx:
        api = rbd.RBD()
        try:
            if api.mirror_mode_get(ioctx) != rbd.RBD_MIRROR_MODE_IMAGE:
                api.mirror_mode_set(ioctx, rbd.RBD_MIRROR_MODE_IMAGE)
            if api.mirror_site_name_get(cluster) != site_name:
                api.mirror_site_name_set(cluster, site_name)
        except (rbd.Error, rados.Error) as error:
            raise CephError(f"enabling image mirroring on pool {pool}: {error}") from error


def ensure_namespace(cluster: Any, pool: str, namespace: str) -> None:
    """Create an RBD namespace if it is missing, and put it in image mirroring mode.

    Pacific mirrors a namespace only when it exists, in the same mode, on every peer.
    """
    api = rbd.RBD()
    try:
        with cluster.open_ioctx(pool) as ioctx:
            if not api.namespace_exists(ioctx, namespace):
                api.namespace_create(ioctx, namespace)
            ioctx.set_namespace(namespace)
            if api.mirror_mode_get(ioctx) != rbd.RBD_MIRROR_MODE_IMAGE:
                api.mirror_mode_set(ioctx, rbd.RBD_MIRROR_MODE_IMAGE)
    except (rbd.Error, rados.Error) as error:
        raise CephError(f"preparing namespace {pool}/{namespace}: {error}") from error


def list_peers(cluster: Any, pool: str) -> list[MirrorPeer]:
    try:
        with cluster.open_ioctx(pool) as ioctx:
            peers = list(rbd.RBD().mirror_peer_list(ioctx))
    except (rbd.Error, rados.Error) as error:
        raise CephError(f"listing mirror peers of pool {pool}: {error}") from error
    return [
        MirrorPeer(
            site_name=peer.get("site_name", ""),
            direction=_DIRECTIONS.get(peer.get("direction", -1), "unknown"),
            client_name=peer.get("client_name", ""),
        )
        for peer in peers
    ]


@dataclass(frozen=True)
class PeerCredentials:
    """How a remote rbd-mirror reaches this cluster. The key is a secret: never print it."""

    fsid: str
    client_id: str
    mon_host: str
    key: str = field(repr=False)


def peer_credentials(cluster: Any, pool: str) -> PeerCredentials:
    """Mint (or fetch) this cluster's peer user through `mirror peer bootstrap create`."""
    try:
        with cluster.open_ioctx(pool) as ioctx:
            token = rbd.RBD().mirror_peer_bootstrap_create(ioctx)
    except (rbd.Error, rados.Error) as error:
        raise CephError(f"creating the mirror peer user on pool {pool}: {error}") from error
    fields = json.loads(base64.b64decode(token))
    return PeerCredentials(fsid=fields["fsid"], client_id=fields["client_id"],
                           mon_host=fields["mon_host"], key=fields["key"])


_DIRECTION_CODES = {name: code for code, name in _DIRECTIONS.items()}


def add_peer(cluster: Any, pool: str, remote_site: str, remote: PeerCredentials,
             direction: str) -> bool:
    """Register `remote_site` as a peer of `pool` (rx-only or rx-tx); False if it is one.

    Pacific's `peer bootstrap import` refuses a second peer on a pool ("multiple
    peers are not currently supported"), so drd mints the remote's peer user with
    `bootstrap create` there and registers it here with `peer add`.
    """
    if any(p.site_name == remote_site for p in list_peers(cluster, pool)):
        return False
    api = rbd.RBD()
    try:
        with cluster.open_ioctx(pool) as ioctx:
            peer_uuid = api.mirror_peer_add(ioctx, remote_site, f"client.{remote.client_id}",
                                            _DIRECTION_CODES[direction])
            api.mirror_peer_set_attributes(ioctx, peer_uuid,
                                           {"mon_host": remote.mon_host, "key": remote.key})
    except (rbd.Error, rados.Error) as error:
        raise CephError(f"adding mirror peer {remote_site} on pool {pool}: {error}") from error
    return True


def remove_peer(cluster: Any, pool: str, site_name: str) -> bool:
    """Unregister `site_name` as a peer of `pool`; False if it was none."""
    api = rbd.RBD()
    try:
        with cluster.open_ioctx(pool) as ioctx:
            found = [p["uuid"] for p in api.mirror_peer_list(ioctx)
                     if p.get("site_name") == site_name]
            for peer_uuid in found:
                api.mirror_peer_remove(ioctx, peer_uuid)
    except (rbd.Error, rados.Error) as error:
        raise CephError(f"removing mirror peer {site_name} from pool {pool}: {error}") \
            from error
    return bool(found)


def mirrored_images(cluster: Any, pool: str) -> dict[ImageRef, bool]:
    """Every image with mirroring enabled in `pool`, in every namespace: is it primary?"""
    api = rbd.RBD()
    found: dict[ImageRef, bool] = {}
    try:
        with cluster.open_ioctx(pool) as ioctx:
            namespaces = ["", *api.namespace_list(ioctx)]
        for namespace in namespaces:
            with cluster.open_ioctx(pool) as ioctx:
                ioctx.set_namespace(namespace)
                names = {image["id"]: image["name"] for image in api.list2(ioctx)}
                for image_id, info in api.mirror_image_info_list(ioctx):
                    if image_id in names and info.get("state") == rbd.RBD_MIRROR_IMAGE_ENABLED:
                        found[ImageRef(pool, namespace, names[image_id])] = bool(info["primary"])
    except (rbd.Error, rados.Error) as error:
        raise CephError(f"listing the mirrored images of pool {pool}: {error}") from error
    return found
