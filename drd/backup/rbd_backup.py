"""Crash-consistent backups of RBD images into restic.

One backup of one image:
1. remove any `drd-backup-*` snapshot an earlier drd left on it (killed mid-backup);
2. take a user snapshot `drd-backup-<token>`, noting the image's size at it: what it
   captured is crash-consistent, as a disk is after a power cut, however the image is
   written meanwhile;
3. restic runs `rbd export <spec>@<snap> -` itself with --stdin-from-command and stores
   its stdout as `/<image_file_name(ref)>`. Nothing relays or hashes the stream: restic
   records each chunk's sha256 (its blob ID) anyway, and a restore test verifies
   against those (drd.backup.restore_test);
4. always, on success, failure or cancellation: remove the snapshot.

A backup succeeds only if restic saved a snapshot and read as many bytes as the
snapshot holds (restic fails the backup itself when `rbd export` exits non-zero).
Everything else raises JobFailed with restic's reason.

The job of one RBD source of a policy (`back_up_rbd_source`) backs up every image it
selects, one after another, and records each image backup (tenant, source, image, file
name and size: what a restore test needs) as soon as it ends. One image failing does not
stop the others (their backups are still worth having), but the job then fails, naming
each image that failed and why. A source that selects no image fails too: a glob that
matches nothing is more likely a mistake than a success.
"""

import asyncio
import secrets
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from functools import partial

import structlog

from drd.backup.ceph_access import CephAccess, finish_despite_cancel
from drd.backup.job_run import Clock, JobFailed, JobOutcome
from drd.backup.rbd_remote_copy import RemoteCopy, carry_to_remote
from drd.backup.restic_messages import BackupStatus
from drd.backup.restic_outcome import BackupResult, OutcomeKind
from drd.backup.restic_port import ProgressCallback, ResticRepositoryPort
from drd.ceph import rbd_snapshots
from drd.ceph.cluster import CephError
from drd.domain.image_backups import (
    backup_snapshot_name,
    image_file_name,
    is_backup_snapshot,
    snapshot_spec,
)
from drd.domain.replication_plan import ImageRef
from drd.state import ImageBackupRecord, StateStore, StateStoreError

__all__ = ["CephAccess", "ImageBackup", "back_up_rbd_source", "backup_rbd_image",
           "export_command", "image_file_name", "remove_leftover_backup_snapshots"]

log = structlog.get_logger()


@dataclass(frozen=True)
class ImageBackup:
    """One image backed up: the restic snapshot, what it added to the repository, and
    the image's size at the snapshot, which is the size of the file restic stored."""

    snapshot_id: str
    bytes_added: int
    total_bytes: int
    duration: timedelta


def export_command(ceph: CephAccess, ref: ImageRef, snapshot: str) -> list[str]:
    """The command restic reads the image from: `rbd export` of the snapshot to stdout."""
    return ceph.rbd("export", "--no-progress", snapshot_spec(ref, snapshot), "-")


async def remove_leftover_backup_snapshots(ceph: CephAccess,
                                           refs: Iterable[ImageRef]) -> list[str]:
    """Remove the `drd-backup-<token>` snapshots of these images; the specs removed.

    Only one backup of an image runs at a time (one job per source, and an image is in
    one source only), so at the start of a backup any such snapshot is a leftover of a
    drd that was killed mid-backup, and holds space for as long as it stays.
    """
    def sweep(cluster: object) -> list[str]:
        removed = []
        for ref in refs:
            for name in rbd_snapshots.user_snapshots(cluster, ref):
                if is_backup_snapshot(name) and rbd_snapshots.remove_snapshot(cluster, ref,
                                                                              name):
                    removed.append(snapshot_spec(ref, name))
        return removed

    removed = await ceph.call(sweep)
    for spec in removed:
        log.warning("removed a backup snapshot a stopped drd left behind", snapshot=spec)
    return removed


async def backup_rbd_image(restic: ResticRepositoryPort, ceph: CephAccess, ref: ImageRef, *,
                           host: str, tags: Sequence[str],
                           limit_upload_kib: int | None = None,
                           progress: ProgressCallback | None = None,
                           deadline: float | None = None,
                           read_from: RemoteCopy | None = None) -> ImageBackup:
    """Back the image up from a fresh snapshot of it; JobFailed with the reason if not.
    With `read_from`, the snapshot is read from that site's mirrored copy.

    Cancelling stops restic and the export, removes the snapshot, then re-raises.
    """
    began = time.monotonic()
    await _sweep_or_fail(ceph, ref)
    snapshot = backup_snapshot_name(secrets.token_hex(8))
    try:
        size = await _take_snapshot(ceph, ref, snapshot)
        reader = ceph
        if read_from is not None:
            await carry_to_remote(ceph, read_from, ref, snapshot)
            reader = read_from.ceph
        result = await restic.backup_from_command(
            export_command(reader, ref, snapshot),
            stdin_filename=image_file_name(ref), host=host, tags=tags,
            limit_upload_kib=limit_upload_kib, deadline=deadline,
            progress=None if progress is None else partial(_with_total, progress, size))
    finally:
        await finish_despite_cancel(_remove_snapshot(ceph, ref, snapshot))
    backup = _judge(ref, result, size, timedelta(seconds=time.monotonic() - began))
    log.info("image backed up", image=str(ref), snapshot_id=backup.snapshot_id,
             bytes_added=backup.bytes_added, total_bytes=backup.total_bytes,
             seconds=round(backup.duration.total_seconds(), 2))
    return backup


async def back_up_rbd_source(restic: ResticRepositoryPort, ceph: CephAccess,
                             store: StateStore, *, tenant: str, source: str,
                             images: Sequence[ImageRef], host: str, tags: Sequence[str],
                             clock: Clock,
                             limit_upload_kib: int | None = None,
                             progress: ProgressCallback | None = None,
                             read_from: RemoteCopy | None = None) -> JobOutcome:
    """Back up `images` (the source's selection, resolved by the caller) and record
    each image backup; JobOutcome with the bytes added, or JobFailed."""
    if not images:
        raise JobFailed(f"source {source} of {tenant} selects no image; nothing was backed up")
    added = 0
    saved: list[str] = []
    failures: list[str] = []
    for ref in images:
        taken_at = clock()
        try:
            backup = await backup_rbd_image(restic, ceph, ref, host=host, tags=tags,
                                            limit_upload_kib=limit_upload_kib,
                                            progress=progress, read_from=read_from)
        except JobFailed as failure:
            added += failure.bytes_added or 0
            failures.append(failure.reason)
            continue
        added += backup.bytes_added
        record = _record(tenant, source, ref, backup, taken_at)
        try:
            # A backup drd has no record of is never restore-tested: finish the write.
            await finish_despite_cancel(asyncio.to_thread(store.record_image_backup, record))
        except StateStoreError as error:
            failures.append(f"backup of {ref} saved snapshot {backup.snapshot_id}, but it "
                            f"could not be recorded for restore tests: {error}")
            continue
        saved.append(backup.snapshot_id)
    only = saved[0] if len(saved) == 1 and len(images) == 1 else None
    if failures:
        raise JobFailed(f"{len(failures)} of {len(images)} images failed: "
                        + "; ".join(failures), bytes_added=added, snapshot_id=only)
    return JobOutcome(bytes_added=added, snapshot_id=only)


def _record(tenant: str, source: str, ref: ImageRef, backup: ImageBackup,
            taken_at: datetime) -> ImageBackupRecord:
    return ImageBackupRecord(snapshot_id=backup.snapshot_id, tenant=tenant, source=source,
                             image=ref, file_name=image_file_name(ref),
                             image_bytes=backup.total_bytes, taken_at=taken_at)


async def _sweep_or_fail(ceph: CephAccess, ref: ImageRef) -> None:
    try:
        await remove_leftover_backup_snapshots(ceph, [ref])
    except CephError as error:
        raise JobFailed(f"backup of {ref} failed: {error}") from error


async def _take_snapshot(ceph: CephAccess, ref: ImageRef, snapshot: str) -> int:
    """The snapshot's size; JobFailed, clearly, for a copy that cannot have one."""
    def take(cluster: object) -> int | None:
        if rbd_snapshots.is_non_primary(cluster, ref):
            return None
        return rbd_snapshots.create_snapshot(cluster, ref, snapshot)

    try:
        size = await ceph.call(take)
    except CephError as error:
        raise JobFailed(f"backup of {ref} failed: {error}") from error
    if size is None:
        # librbd would refuse it (EROFS): another site writes this image.
        raise JobFailed(f"backup of {ref} failed: it is a non-primary mirrored copy, on "
                        f"which RBD allows no user snapshot; back it up where it is primary")
    return size


def _with_total(progress: ProgressCallback, size: int, status: BackupStatus) -> None:
    # restic cannot know the size of a command's output; drd knows the snapshot's.
    percent = min(status.bytes_done / size, 1.0) if size else 1.0
    progress(replace(status, total_bytes=size, percent_done=percent))


async def _remove_snapshot(ceph: CephAccess, ref: ImageRef, snapshot: str) -> None:
    """Remove the backup's snapshot; log, never raise: the next backup of the image
    sweeps a snapshot that could not be removed now."""
    try:
        await ceph.call(partial(rbd_snapshots.remove_snapshot, ref=ref, name=snapshot))
    except CephError as error:
        log.error("could not remove a backup snapshot; the next backup of the image "
                  "removes it", snapshot=snapshot_spec(ref, snapshot), error=str(error))


def _judge(ref: ImageRef, result: BackupResult, size: int,
           duration: timedelta) -> ImageBackup:
    outcome, summary = result.outcome, result.summary
    added = summary.data_added if summary else None
    if not outcome.ok:
        reason = outcome.reason
        if "command failed" in reason:
            reason = f"rbd export of the snapshot failed ({reason})"
        if outcome.kind is OutcomeKind.INCOMPLETE and result.snapshot_id:
            # Forgetting it takes the repository's exclusive lock, which a backup job
            # does not hold; the failed run's record names it for the forget job.
            reason += (f"; restic saved the incomplete snapshot {result.snapshot_id}, "
                       f"which must be forgotten")
        raise JobFailed(f"backup of {ref} failed: {reason}", bytes_added=added,
                        snapshot_id=result.snapshot_id)
    assert summary is not None and summary.snapshot_id  # judge_backup made sure of both
    if summary.total_bytes_processed != size:
        raise JobFailed(f"backup of {ref} failed: restic read "
                        f"{summary.total_bytes_processed} bytes of a {size}-byte snapshot",
                        bytes_added=added, snapshot_id=summary.snapshot_id)
    return ImageBackup(summary.snapshot_id, summary.data_added, size, duration)
