"""Backing up the remote site's mirrored copy of an image, to keep the read load of a
backup off production (a policy source with `from: remote`).

A non-primary copy takes no snapshot of its own (RBD refuses: EROFS), so the backup
snapshot is taken on the primary as always, and RBD mirroring carries it over: user
snapshots are mirrored with the data they cover. In snapshot mode drd then takes a
mirror snapshot, and the copy of the backup snapshot is complete once the remote's copy
of that mirror snapshot is. In journal mode the snapshot is an event in the journal,
replayed after every write before it, so its arrival is enough once the copy replays;
but while the copy is still in its first image sync, the sync creates every snapshot
first and copies the data after (seen on the lab: the backup snapshot was on c 2.6 s
after mirroring began, 3 s before the sync ended, and a backup read then held other
bytes). So journal mode waits for the copy to replay too. Then `rbd export` reads it on
the remote cluster. Measured in the lab: exporting the copy on site c gives the
same sha256 as the primary's snapshot.

The removal of the snapshot on the primary reaches the copy the same way, with the next
mirror snapshot (or journal event).
"""

import asyncio
import time
from dataclasses import dataclass
from functools import partial
from typing import Any

from drd.backup.ceph_access import CephAccess
from drd.backup.job_run import JobFailed
from drd.ceph import rbd_images, rbd_snapshots
from drd.ceph.cluster import CephError
from drd.domain.replication_plan import ImageRef

POLL_SECONDS = 1.0


@dataclass(frozen=True)
class RemoteCopy:
    """The remote site's cluster, and how long a backup snapshot may take to reach it."""

    site: str
    ceph: CephAccess
    timeout: float = 900.0


async def carry_to_remote(primary: CephAccess, remote: RemoteCopy, ref: ImageRef,
                          snapshot: str) -> None:
    """Wait until the user snapshot `snapshot`, just taken on the primary, is on the
    remote copy with all its data; JobFailed if the image is not mirrored or it does not
    arrive in time."""
    try:
        snapshot_mode = await primary.call(partial(rbd_snapshots.snapshot_mirroring, ref=ref))
        if snapshot_mode is None:
            raise JobFailed(f"backup of {ref} from site {remote.site} failed: the image is "
                            f"not mirrored, so {remote.site} holds no copy of it")
        mirror_id = (await primary.call(partial(rbd_images.take_mirror_snapshot, ref=ref))
                     if snapshot_mode else None)
        deadline = time.monotonic() + remote.timeout
        while not await remote.ceph.call(partial(_arrived, ref=ref, snapshot=snapshot,
                                                 mirror_id=mirror_id)):
            if time.monotonic() > deadline:
                raise JobFailed(f"backup of {ref} from site {remote.site} failed: its backup "
                                f"snapshot did not reach {remote.site} within "
                                f"{remote.timeout:.0f} s; is rbd-mirror running there?")
            await asyncio.sleep(POLL_SECONDS)
    except CephError as error:
        raise JobFailed(f"backup of {ref} from site {remote.site} failed: {error}") from error


def _arrived(cluster: Any, *, ref: ImageRef, snapshot: str, mirror_id: int | None) -> bool:
    if snapshot not in rbd_snapshots.user_snapshots(cluster, ref):
        return False
    if mirror_id is None:
        return rbd_snapshots.copy_replaying(cluster, ref)
    return any(copy.primary_snap_id == mirror_id and copy.complete
               for copy in rbd_images.mirror_snapshots(cluster, ref))
