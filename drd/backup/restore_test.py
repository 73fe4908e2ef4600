"""Restore tests: a backup is proven restorable only by restoring it.

`restic check` proves a repository agrees with itself. A restore test restores one
snapshot of an RBD image into a scratch image on this site's cluster, reads it back,
and compares its sha256 with the one export_stream noted while the backup ran (kept in
the state store by snapshot ID). The scratch image is deleted whatever happens.

"Last verified restorable" for a source is its latest succeeded restore-test job. The
job must be keyed by the same source name as the source's backups and digests (the
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
from drd.backup.restic_port import ResticRepositoryPort
from drd.ceph import rbd_snapshots
from drd.ceph.cluster import CephError
from drd.domain.backup_jobs import JobKey, JobKind
from drd.domain.image_backups import scratch_image
from drd.domain.replication_plan import ImageRef
from drd.state import BackupDigest, RunState, StateStore

log = structlog.get_logger()


async def restore_test(restic: ResticRepositoryPort, ceph: CephAccess, store: StateStore, *,
                       snapshot_id: str, scratch: tuple[str, str], job: JobKey | None = None,
                       deadline: float | None = None) -> JobOutcome:
    """Restore snapshot `snapshot_id` into a scratch image in `scratch` (pool,
    namespace), compare its sha256 with the recorded one, and delete it.

    JobFailed naming the snapshot and the reason: no recorded digest, restic or rbd
    failed (a damaged pack fails restic dump), or the digests differ (both are named).
    """
    digest = await asyncio.to_thread(store.backup_digest, snapshot_id)
    if digest is None:
        raise JobFailed(f"restore test of snapshot {snapshot_id} cannot verify it: drd "
                        f"recorded no sha256 for it (not an RBD image backup drd took, or "
                        f"taken before digests were kept)", snapshot_id=snapshot_id)
    _check_job(job, digest)
    pool, namespace = scratch
    target = scratch_image(pool, namespace, secrets.token_hex(8))
    what = f"restore test of snapshot {snapshot_id[:8]} of {digest.image}"
    try:
        restored = await restore_rbd_image(restic, ceph, snapshot=snapshot_id,
                                           file_name=digest.file_name, target=target,
                                           force=False, deadline=deadline)
    except (JobFailed, RestoreRefused) as error:
        raise JobFailed(f"{what} failed: {error}", snapshot_id=snapshot_id) from error
    finally:
        removal = await finish_despite_cancel(_remove_scratch(ceph, target))
    if (restored.sha256, restored.bytes) != (digest.sha256, digest.total_bytes):
        raise JobFailed(f"{what} failed: the restored image has sha256 {restored.sha256} "
                        f"({restored.bytes} bytes), but the backup recorded "
                        f"{digest.sha256} ({digest.total_bytes} bytes)",
                        snapshot_id=snapshot_id)
    if removal is not None:
        raise JobFailed(f"{what}: restored and verified, but its scratch image {target} "
                        f"could not be deleted ({removal}); delete it by hand",
                        snapshot_id=snapshot_id)
    log.info("snapshot verified restorable", snapshot_id=snapshot_id, image=str(digest.image),
             tenant=digest.tenant, source=digest.source, sha256=digest.sha256)
    return JobOutcome(snapshot_id=snapshot_id)


def _check_job(job: JobKey | None, digest: BackupDigest) -> None:
    if job is None:
        return
    if job.kind is not JobKind.RESTORE_TEST or (job.tenant, job.source) != (digest.tenant,
                                                                           digest.source):
        raise JobFailed(f"restore test of snapshot {digest.snapshot_id} refused: it is a "
                        f"backup of {digest.tenant}/{digest.source}, not of the job {job}",
                        snapshot_id=digest.snapshot_id)


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
