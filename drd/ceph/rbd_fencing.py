"""Fencing the clients of a lost site: who holds an image there, and blocklisting them
at that site's OSDs. Blocking librbd and mon calls: run them in worker threads.

Checked on Ceph 16.2.15 (the lab): a writer holds a watch on the image header and,
with exclusive-lock, the lock `rbd_lock` (locker `client.<id>`, cookie `auto <n>`).
After `osd blocklist add <addr>` its next write fails with ESHUTDOWN within a second
and its watch disappears; the lock stays recorded until another client breaks it,
which librbd does on its next acquisition, since the owner is blocklisted.

Not every holder writes: the rbd-mirror daemons of the peers that replicate from this
site keep its primary images open (a watch, to hear of new snapshots) and only read
them. A watch names the client instance only; the monitors' sessions name the cephx
user it logged in as (client.rbd-mirror-peer here), which tells them apart.
"""

import json
from dataclasses import dataclass
from typing import Any

import rados
import rbd

from drd.ceph.cluster import CephError, mon_command
from drd.ceph.rbd_images import pool_ioctx
from drd.ceph.rbd_mirror_setup import peer_credentials
from drd.domain.replication_plan import ImageRef

# A blocklisted client never writes again under that address; the entry only has to
# outlive anything that might still retry with it. A day keeps the OSD map small.
FENCE_SECONDS = 24 * 3600.0


@dataclass(frozen=True)
class Holder:
    """A client that holds an image open on a site."""

    address: str  # the client's entity address, what the blocklist takes
    client: str  # client.<id>
    how: str  # "watch", "exclusive lock" or both
    entity: str | None = None  # the cephx entity it authenticated as, when a mon knows


def image_holders(cluster: Any, ref: ImageRef) -> list[Holder]:
    """The clients watching the image or owning its exclusive lock, except this one.

    The image is opened read-only, which registers no watch of its own."""
    ioctx = pool_ioctx(cluster, ref.pool, ref.namespace)
    try:
        with rbd.Image(ioctx, ref.name, read_only=True) as image:
            watchers = list(image.watchers_list())
            lockers = image.list_lockers() or {}
    except (rbd.Error, rados.Error) as error:
        raise CephError(f"listing the clients of {ref}: {error}") from error
    finally:
        ioctx.close()
    own = str(cluster.get_instance_id())
    entities = client_entities(cluster)
    found: dict[str, tuple[str, list[str]]] = {}
    for watcher in watchers:
        client = f"client.{watcher['id']}"
        found.setdefault(str(watcher["addr"]), (client, []))[1].append("watch")
    for client, _cookie, address in lockers.get("lockers", []):
        found.setdefault(str(address), (str(client), []))[1].append("exclusive lock")
    return [Holder(address, client, " and ".join(how), entities.get(address))
            for address, (client, how) in sorted(found.items())
            if client != f"client.{own}"]


def lock_owners(cluster: Any, ref: ImageRef) -> list[tuple[str, str]]:
    """(client, address) of each owner of the image's exclusive lock: one cheap call,
    without the monitors' sessions that `image_holders` also asks."""
    ioctx = pool_ioctx(cluster, ref.pool, ref.namespace)
    try:
        with rbd.Image(ioctx, ref.name, read_only=True) as image:
            lockers = image.list_lockers() or {}
    except (rbd.Error, rados.Error) as error:
        raise CephError(f"listing the lock owners of {ref}: {error}") from error
    finally:
        ioctx.close()
    return [(str(client), str(address)) for client, _cookie, address
            in lockers.get("lockers", [])]


def client_entities(cluster: Any) -> dict[str, str]:
    """Client address -> the cephx entity it authenticated as, from every monitor's
    sessions: a watch names only the instance (client.4245), its session the user
    (client.rbd-mirror-peer)."""
    monmap = mon_command(cluster, "mon dump")
    found: dict[str, str] = {}
    for mon in monmap.get("mons", []):
        code, out, reason = cluster.mon_command(
            json.dumps({"prefix": "sessions", "format": "json"}), b"", target=str(mon["name"]))
        if code != 0:
            raise CephError(f"listing the sessions of mon.{mon['name']} failed ({code}): "
                            f"{reason.strip() or 'no reason given'}")
        for session in json.loads(out):
            entity = str(session.get("entity_name", ""))
            for addr in session.get("addrs", {}).get("addrvec", []):
                if entity and addr.get("type") != "none":
                    found[f"{addr['addr']}/{addr['nonce']}"] = entity
    return found


def peer_replayers(cluster: Any, pool: str) -> list[str]:
    """The addresses of every client logged in as the pool's mirror peer user: the peers'
    rbd-mirror daemons that replicate from this site. Besides the image, a peer replaying
    a journal image watches its journal header (`journal.<id>`), which no image listing
    shows and librados' Python binding cannot list; the monitors' sessions name them all.
    The peer user is the one `mirror peer bootstrap create` mints (it returns the
    existing one), as drd registers every peer with it."""
    user = f"client.{peer_credentials(cluster, pool).client_id}"
    return sorted(address for address, entity in client_entities(cluster).items()
                  if entity == user)


def blocklist(cluster: Any, address: str, seconds: float = FENCE_SECONDS) -> None:
    """`ceph osd blocklist add ADDRESS SECONDS` on this cluster."""
    mon_command(cluster, "osd blocklist", blocklistop="add", addr=address, expire=seconds)
