"""Demote, promote and resync RBD images, and read what each site's rbd-mirror reports
about its own copies. Blocking librbd calls: run them in worker threads.

Measured on Ceph 16.2.15 (the lab):
- `promote` of a copy whose peer's demotion has not reached it fails with EBUSY
  ("image is busy"), and in snapshot mode also with EROFS while rbd-mirror is still
  copying the demotion snapshot; both mean "not propagated yet" and pass once the copy
  has replayed the demotion.
- `promote --force` while the peer is alive and primary takes 0.3 s in journal mode and
  2 s in snapshot mode (rbd-mirror's replayer is stopped first; its status reads
  "orphan (force promoting)" meanwhile). rbd-mirror replays nothing into a primary, so
  replay from the lost site stops with the forced promotion, in both modes.
- `resync` makes rbd-mirror delete the copy and create it again under a new image id;
  for some seconds the image is not listed at all, and its status is empty until
  rbd-mirror's next report.
"""

from typing import Any

import rados
import rbd

from drd.ceph.cluster import CephError
from drd.ceph.rbd_images import STATUS_STATES, pool_ioctx, reported_at
from drd.ceph.rbd_snapshots import open_image
from drd.domain.rbd_step_decisions import NO_STATUS, MirrorStatus
from drd.domain.replication_plan import ImageRef


class NotPropagated(CephError):
    """The peer's demotion has not reached this copy yet; promoting later will work."""


def demote(cluster: Any, ref: ImageRef) -> bool:
    """Demote the image to non-primary; False if it already was (nothing done)."""
    with open_image(cluster, ref, "demoting") as image:
        if not image.mirror_image_get_info()["primary"]:
            return False
        image.mirror_image_demote()
        return True


def promote(cluster: Any, ref: ImageRef, force: bool = False) -> bool:
    """Promote the image to primary; False if it already was (nothing done).

    Raises NotPropagated while the peer's demotion is still on its way (not forced)."""
    with open_image(cluster, ref, "force-promoting" if force else "promoting") as image:
        if image.mirror_image_get_info()["primary"]:
            return False
        try:
            image.mirror_image_promote(force)
        except (rbd.ImageBusy, rbd.ReadOnlyImage) as error:
            if force:
                raise
            raise NotPropagated(f"promoting {ref}: Ceph says it is still primary on a peer, "
                                f"or the peer's demotion has not reached this copy yet "
                                f"({error})") from error
        return True


def request_resync(cluster: Any, ref: ImageRef) -> None:
    """Flag the non-primary copy for resync: rbd-mirror deletes it and copies the
    image again from the primary."""
    with open_image(cluster, ref, "requesting a resync of") as image:
        image.mirror_image_resync()


def local_statuses(cluster: Any, pool: str, namespace: str) -> dict[str, MirrorStatus]:
    """What this site's rbd-mirror last reported on each of this site's copies, by
    image id, from one listing. Images without a report are left out."""
    ioctx = pool_ioctx(cluster, pool, namespace)
    try:
        found = {}
        for entry in rbd.RBD().mirror_image_status_list(ioctx):
            # A copy with no status has no state key; "status not found" says the same.
            if "state" not in entry or entry.get("description") == NO_STATUS:
                continue
            found[str(entry["id"])] = MirrorStatus(
                state=STATUS_STATES.get(entry["state"], "unknown"),
                description=str(entry.get("description", "")),
                up=bool(entry.get("up", False)),
                reported_at=reported_at(entry.get("last_update")))
        return found
    except (rbd.Error, rados.Error) as error:
        raise CephError(f"reading mirror statuses of {pool}/{namespace}: {error}") from error
    finally:
        ioctx.close()


class NotWritableYet(CephError):
    """The copy is primary but a writer cannot take its exclusive lock yet."""


def prove_writable(cluster: Any, ref: ImageRef) -> None:
    """Take the image's exclusive lock and give it back: what a writer must do first.

    Measured on Ceph 16.2.15: right after `promote --force` of a journal-mode copy the
    image already reads as primary, but a write fails with EROFS while the local
    rbd-mirror still holds the lock for its replay; only a taken lock proves writers
    can write. An image without the exclusive-lock feature has no lock to prove.
    """
    with open_image(cluster, ref, "proving writable") as image:
        if not image.features() & rbd.RBD_FEATURE_EXCLUSIVE_LOCK:
            return
        try:
            image.lock_acquire(rbd.RBD_LOCK_MODE_EXCLUSIVE)
        except (rbd.ReadOnlyImage, rbd.ImageBusy, rbd.Timeout) as error:
            raise NotWritableYet(f"{ref} is primary but not writable yet: {error}") \
                from error
        image.lock_release()
