"""Which copy a peer site's rbd-mirror registered with a primary image's journal, and
unregistering it. Blocking librados calls: run them in worker threads.

A journal-mode primary registers each peer's rbd-mirror as a journal client, keyed by
that site's mirror uuid, with the id of the copy it replays into. Ceph 16.2.15 checks
that id first when it starts replaying: a copy with another id is "split-brain
detected", before a requested resync is even looked at (rbd-mirror's
`journal::PrepareReplayRequest`). A resync recreates the copy under a new id and
rewrites the registration, but only at the primary it replays from then: after a
remote site followed b and then a again, a's journal still names the copy a resync at
b's bidding deleted, and no resync cures it (measured on the lab: "registered
local_image_id=…" in the remote's rbd-mirror log). With the registration gone, the
remote's rbd-mirror registers its copy again and acts on the resync.
"""

from typing import Any

import rados
import rbd

from drd.ceph.cluster import CephError
from drd.ceph.rbd_images import pool_ioctx
from drd.ceph.rbd_snapshots import open_image
from drd.domain import rbd_mirror_codec as codec
from drd.domain.rbd_snapshot_codec import DecodeError
from drd.domain.replication_plan import ImageRef

_REPLY_BUFFER = 1 << 16  # one client's registration: well under 1 KiB


def mirror_uuid(cluster: Any, pool: str) -> str:
    """This site's mirror uuid for `pool`: its rbd-mirror's client id at its peers."""
    ioctx = pool_ioctx(cluster, pool, "")
    try:
        return str(rbd.RBD().mirror_uuid_get(ioctx))
    except (rbd.Error, rados.Error) as error:
        raise CephError(f"reading the mirror uuid of pool {pool}: {error}") from error
    finally:
        ioctx.close()


def registered_copy(cluster: Any, ref: ImageRef, client_id: str) -> str | None:
    """The id of the copy the peer `client_id` registered with this image's journal;
    None when it is not registered, or the image keeps no journal (snapshot mode)."""
    journal = _journal_of(cluster, ref)
    ioctx = pool_ioctx(cluster, ref.pool, ref.namespace)
    try:
        _, reply = ioctx.execute(journal, "journal", "get_client",
                                 codec.encode_get_client_request(client_id), _REPLY_BUFFER)
        return codec.decode_peer_client_image_id(bytes(reply))
    except rados.ObjectNotFound:
        return None
    except (rados.Error, DecodeError) as error:
        raise CephError(f"reading {ref}'s journal client {client_id}: {error}") from error
    finally:
        ioctx.close()


def unregister(cluster: Any, ref: ImageRef, client_id: str) -> None:
    """Remove the peer `client_id` from this image's journal, and tell the image's
    open journal (its writer's librbd) to re-read its clients."""
    journal = _journal_of(cluster, ref)
    ioctx = pool_ioctx(cluster, ref.pool, ref.namespace)
    try:
        ioctx.execute(journal, "journal", "client_unregister",
                      codec.encode_client_unregister_request(client_id), 0)
        # Its watchers re-read the header on any notification.
        ioctx.notify(journal)
    except rados.ObjectNotFound:
        return
    except rados.Error as error:
        raise CephError(f"unregistering journal client {client_id} of {ref}: {error}") \
            from error
    finally:
        ioctx.close()


def _journal_of(cluster: Any, ref: ImageRef) -> str:
    with open_image(cluster, ref, "reading the id of", read_only=True) as image:
        return f"journal.{image.id()}"
