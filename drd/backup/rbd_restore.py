"""Restoring an RBD image from a restic snapshot.

`restic dump` streams the image's file into `rbd import - <staging image>` through an OS
pipe, so no byte passes through Python. Only a complete, verified import takes the
target's name:
- a new target: the staging image is renamed to it (a rename refuses a name taken
  meanwhile, so a concurrent creation is never overwritten);
- an existing target, with force: the old image is renamed aside, the staging image
  takes its name, and only then is the old one deleted; if the second rename fails the
  old image gets its name back. A failed restore never touches the existing image.
The staging image is removed on every failure and on cancellation. The read-back is one
pass of large sequential reads; a restore test hands in restic's chunk layout so that the
same pass hashes each chunk's piece too (drd.domain.chunk_check).
"""

import re
import secrets
import threading
from dataclasses import dataclass
from functools import partial

import structlog

from drd.backup.ceph_access import CephAccess, finish_despite_cancel
from drd.backup.job_run import JobFailed
from drd.backup.restic import ResticError
from drd.backup.restic_argv import SnapshotFilter
from drd.backup.restic_port import ResticRepositoryPort
from drd.ceph import rbd_snapshots
from drd.ceph.cluster import CephError
from drd.domain.chunk_check import ChunkHasher, ChunkLayout, ReadBack
from drd.domain.image_backups import replaced_image, restore_refusal, staging_image
from drd.domain.replication_plan import ImageRef

log = structlog.get_logger()

LATEST = "latest"
_FULL_ID = re.compile(r"^[0-9a-f]{64}$")
_SHORT_ID = re.compile(r"^[0-9a-f]{8,63}$")  # fewer digits would match by accident


class RestoreRefused(Exception):
    """A restore that must not run as asked; nothing was changed."""


@dataclass(frozen=True)
class RestoredImage:
    """An image restored from `snapshot_id`, as read back through librbd after the
    import: its size, its sha256 and, given restic's chunk layout, how its pieces
    compared with the chunks."""

    target: ImageRef
    snapshot_id: str
    read_back: ReadBack
    replaced: bool = False  # an existing image of that name was replaced (force)

    @property
    def bytes(self) -> int:
        return self.read_back.size

    @property
    def sha256(self) -> str:
        return self.read_back.sha256


async def resolve_snapshot(restic: ResticRepositoryPort, snapshot: str,
                           file_name: str) -> str:
    """The full ID of the snapshot `snapshot` names (`latest`, an ID or a unique ID
    prefix) among those that hold `/<file_name>`; RestoreRefused if there is none."""
    if _FULL_ID.match(snapshot):
        return snapshot  # listing costs restic a second; dump refuses an unknown ID itself
    if snapshot != LATEST and not _SHORT_ID.match(snapshot):
        raise RestoreRefused(f"{snapshot!r} is not a snapshot ID: give 'latest' or at "
                             f"least 8 hex digits of one")
    try:
        held = await restic.snapshots(SnapshotFilter(paths=(f"/{file_name}",)))
    except ResticError as error:
        raise JobFailed(f"listing the snapshots of {file_name} failed: {error}") from error
    if snapshot == LATEST:
        if not held:
            raise RestoreRefused(f"the repository holds no snapshot of {file_name}")
        return max(held, key=lambda found: found.time).id
    matches = [found.id for found in held if found.id.startswith(snapshot)]
    if len(matches) != 1:
        raise RestoreRefused(f"{len(matches) or 'no'} snapshot(s) of {file_name} in the "
                             f"repository have an ID starting {snapshot}")
    return matches[0]


async def restore_rbd_image(restic: ResticRepositoryPort, ceph: CephAccess, *,
                            snapshot: str, file_name: str, target: ImageRef, force: bool,
                            deadline: float | None = None,
                            chunks: ChunkLayout | None = None) -> RestoredImage:
    """Restore `/<file_name>` of `snapshot` (or `latest`) into the image `target`. The
    read-back also hashes each piece of the image cut at `chunks`, if given; judging
    that is the caller's.

    RestoreRefused, changing nothing, if the target exists and not `force`, or if
    replacing it would break something (mirroring, a client using it, its snapshots).
    JobFailed with restic's or rbd's reason if the restore itself fails.
    """
    snapshot_id = await resolve_snapshot(restic, snapshot, file_name)
    short = snapshot_id[:8]
    await _refuse_unless_allowed(ceph, target, force)
    token = secrets.token_hex(8)
    staging = staging_image(target, token)
    placed = False
    try:
        result = await restic.dump_to(snapshot_id, f"/{file_name}",
                                      ceph.rbd("import", "--no-progress", "-", str(staging)),
                                      deadline=deadline)
        if not result.outcome.ok:
            raise JobFailed(f"restore of snapshot {short} into {target} failed: "
                            f"{result.outcome.reason}", snapshot_id=snapshot_id)
        stop, hasher = threading.Event(), ChunkHasher(chunks)
        await ceph.call(partial(rbd_snapshots.read_image, ref=staging, sink=hasher.update,
                                stop=stop), stop=stop)
        read_back = hasher.result()
        replaced = await ceph.call(partial(_place, staging=staging, target=target,
                                           force=force, token=token))
        placed = True
    except CephError as error:
        raise JobFailed(f"restore of snapshot {short} into {target} failed: {error}",
                        snapshot_id=snapshot_id) from error
    finally:
        if not placed:
            await finish_despite_cancel(_remove_staging(ceph, staging))
    log.info("image restored", image=str(target), snapshot_id=snapshot_id,
             bytes=read_back.size, replaced=replaced)
    return RestoredImage(target, snapshot_id, read_back, replaced)


async def _refuse_unless_allowed(ceph: CephAccess, target: ImageRef, force: bool) -> None:
    try:
        existing = await ceph.call(partial(rbd_snapshots.existing_image, ref=target))
    except CephError as error:
        raise JobFailed(f"restore into {target} failed: {error}") from error
    refusal = restore_refusal(target, existing, force)
    if refusal is not None:
        raise RestoreRefused(refusal)


def _place(cluster: object, *, staging: ImageRef, target: ImageRef, force: bool,
           token: str) -> bool:
    """Give the staging image the target's name; whether an old image was replaced."""
    existing = rbd_snapshots.existing_image(cluster, target)
    if existing is None:
        rbd_snapshots.rename_image(cluster, staging, target.name)
        return False
    # Looked at again: the image may have changed since the restore began.
    refusal = restore_refusal(target, existing, force)
    if refusal is not None:
        raise CephError(f"not replacing it: {refusal}")
    aside = rbd_snapshots.rename_image(cluster, target, replaced_image(target, token).name)
    try:
        rbd_snapshots.rename_image(cluster, staging, target.name)
    except CephError:
        rbd_snapshots.rename_image(cluster, aside, target.name)
        raise
    try:
        rbd_snapshots.remove_image(cluster, aside)
    except CephError as error:
        # The restore is done; only the old copy's space is not yet given back.
        log.error("restored, but the replaced image could not be deleted; delete it by "
                  "hand", image=str(aside), error=str(error))
    return True


async def _remove_staging(ceph: CephAccess, staging: ImageRef) -> None:
    try:
        await ceph.call(partial(rbd_snapshots.remove_image, ref=staging))
    except CephError as error:
        log.error("could not remove a failed restore's staging image; delete it by hand",
                  image=str(staging), error=str(error))
