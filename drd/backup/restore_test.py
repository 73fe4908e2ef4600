"""Restore tests: a backup is proven restorable only by restoring it.

`restic check` proves a repository agrees with itself. A restore test restores one
snapshot of an RBD image into a scratch image on this site's cluster, reads it back
from RBD, and compares it with what restic itself recorded at backup time, so that a
backup hashes nothing of its own:
- the snapshot's file node gives the file's size and its data blobs in order, each
  blob's ID the sha256 of one consecutive piece of the file (its plaintext);
- the repository index gives each blob's plaintext length.
The image passes when its size is the image's size drd recorded when it took the RBD
snapshot, the file's size and the sum of the chunks, and each piece hashes to its
chunk's ID; a mismatch names the first differing chunk and its byte offset. The same
read computes the whole image's sha256, which is logged and kept with the snapshot's
record (records from before schema 5 carry the sha256 the export relay noted, which
must then agree). The scratch image is deleted whatever happens.

"Last verified restorable" for a source is its latest succeeded restore-test job. The
job must be keyed by the same source name as the source's backups and records (the
policy's source name); `restore_test(job=...)` refuses a key that is not.
"""

import asyncio
import secrets
from datetime import datetime
from functools import partial

import structlog

from drd.backup.ceph_access import CephAccess, finish_despite_cancel
from drd.backup.job_run import JobFailed, JobOutcome
from drd.backup.rbd_restore import RestoreRefused, restore_rbd_image
from drd.backup.restic import ResticError
from drd.backup.restic_messages import ResticOutputError
from drd.backup.restic_port import ResticRepositoryPort
from drd.ceph import rbd_snapshots
from drd.ceph.cluster import CephError
from drd.domain.backup_jobs import JobKey, JobKind
from drd.domain.chunk_check import ChunkLayout, layout_problem, readback_problem
from drd.domain.image_backups import scratch_image
from drd.domain.replication_plan import ImageRef
from drd.state import ImageBackupRecord, RunState, StateStore, StateStoreError

log = structlog.get_logger()


class RecordUnreadable(Exception):
    """restic's record of a snapshot's file could not be read whole."""


async def recorded_chunks(restic: ResticRepositoryPort, snapshot_id: str,
                          file_name: str) -> ChunkLayout:
    """What restic recorded of `/<file_name>` in the snapshot: its size, its chunks and
    their plaintext lengths, reading index files only until every chunk is found.
    RecordUnreadable with restic's reason, or naming a chunk no index lists."""
    try:
        snapshot = await restic.snapshot_object(snapshot_id)
        node = await restic.file_node(snapshot.tree, file_name)
        missing = set(node.content)
        lengths: dict[str, int] = {}
        for index_id in await restic.index_ids():
            if not missing:
                break
            listed = await restic.index_lengths(index_id)
            lengths.update((blob, listed[blob]) for blob in missing & listed.keys())
            missing.difference_update(listed.keys())
    except (ResticError, ResticOutputError) as error:
        raise RecordUnreadable(f"reading restic's record of it failed: {error}") from error
    if missing:
        raise RecordUnreadable(
            f"{len(missing)} of the {len(set(node.content))} data blobs of /{file_name} "
            f"are in no index file of the repository (one is {min(missing)}); the "
            f"repository is damaged, `restic check` says more")
    return ChunkLayout.of(node.size, [(blob, lengths[blob]) for blob in node.content])


async def restore_test(restic: ResticRepositoryPort, ceph: CephAccess, store: StateStore, *,
                       snapshot_id: str, scratch: tuple[str, str], job: JobKey | None = None,
                       deadline: float | None = None) -> JobOutcome:
    """Restore snapshot `snapshot_id` into a scratch image in `scratch` (pool,
    namespace), compare it chunk by chunk with restic's record, and delete it.

    JobFailed naming the snapshot and the reason: drd recorded no backup of it, restic
    or rbd failed (a damaged pack fails restic dump), the sizes differ (all are named),
    or a chunk differs (its index and byte offset are named).
    """
    record = await asyncio.to_thread(store.image_backup, snapshot_id)
    if record is None:
        raise JobFailed(f"restore test of snapshot {snapshot_id} cannot verify it: drd "
                        f"recorded no image backup with that ID (not an RBD image backup "
                        f"drd took)", snapshot_id=snapshot_id)
    _check_job(job, record)
    what = f"restore test of snapshot {snapshot_id[:8]} of {record.image}"
    try:
        chunks = await recorded_chunks(restic, snapshot_id, record.file_name)
    except RecordUnreadable as error:
        raise JobFailed(f"{what} failed: {error}", snapshot_id=snapshot_id) from error
    problem = layout_problem(record.image_bytes, chunks)
    if problem is not None:
        raise JobFailed(f"{what} failed: {problem}", snapshot_id=snapshot_id)
    pool, namespace = scratch
    target = scratch_image(pool, namespace, secrets.token_hex(8))
    try:
        restored = await restore_rbd_image(restic, ceph, snapshot=snapshot_id,
                                           file_name=record.file_name, target=target,
                                           force=False, deadline=deadline, chunks=chunks)
    except (JobFailed, RestoreRefused) as error:
        raise JobFailed(f"{what} failed: {error}", snapshot_id=snapshot_id) from error
    finally:
        removal = await finish_despite_cancel(_remove_scratch(ceph, target))
    problem = readback_problem(chunks, restored.read_back)
    if problem is None and record.sha256 not in (None, restored.sha256):
        problem = (f"its chunks match, but its sha256 is {restored.sha256}, not the "
                   f"{record.sha256} noted when it was backed up")
    if problem is not None:
        raise JobFailed(f"{what} failed: {problem}", snapshot_id=snapshot_id)
    if removal is not None:
        raise JobFailed(f"{what}: restored and verified, but its scratch image {target} "
                        f"could not be deleted ({removal}); delete it by hand",
                        snapshot_id=snapshot_id)
    if record.sha256 is None:
        await finish_despite_cancel(_keep_sha256(store, snapshot_id, restored.sha256))
    log.info("snapshot verified restorable", snapshot_id=snapshot_id, image=str(record.image),
             tenant=record.tenant, source=record.source, bytes=restored.bytes,
             chunks=chunks.count, sha256=restored.sha256)
    return JobOutcome(snapshot_id=snapshot_id)


def _check_job(job: JobKey | None, record: ImageBackupRecord) -> None:
    if job is None:
        return
    if job.kind is not JobKind.RESTORE_TEST or (job.tenant, job.source) != (record.tenant,
                                                                           record.source):
        raise JobFailed(f"restore test of snapshot {record.snapshot_id} refused: it is a "
                        f"backup of {record.tenant}/{record.source}, not of the job {job}",
                        snapshot_id=record.snapshot_id)


async def _keep_sha256(store: StateStore, snapshot_id: str, sha256: str) -> None:
    """Note the verified image's sha256 with its record; only log if that fails, since
    the snapshot is verified either way."""
    try:
        await asyncio.to_thread(store.record_image_sha256, snapshot_id, sha256)
    except StateStoreError as error:
        log.error("a verified snapshot's sha256 could not be recorded",
                  snapshot_id=snapshot_id, sha256=sha256, error=str(error))


async def _remove_scratch(ceph: CephAccess, target: ImageRef) -> str | None:
    """Delete the scratch image (if the restore got as far as making it); why not, if not."""
    try:
        await ceph.call(partial(rbd_snapshots.remove_image, ref=target))
    except CephError as error:
        log.error("could not delete a restore test's scratch image", image=str(target),
                  error=str(error))
        return str(error)
    return None


def last_verified_restorable(store: StateStore, tenant: str, source: str) -> datetime | None:
    """When a restore test of one of the source's snapshots last succeeded. Blocking."""
    record = store.last_backup_job(tenant, JobKind.RESTORE_TEST, source,
                                   state=RunState.SUCCEEDED)
    return None if record is None else record.finished_at
