"""RBD image backups, restores and restore tests on the real lab (site a) and real restic.

Repositories and password files live in tmp_path. Images live in rbd/water on site a,
named `bkp-<run>-...` (no policy selects them), and are deleted by each test; sha256s are
computed by the test itself, through tests.integration.rbd_images, not by drd.
"""

import asyncio
import contextlib
import os
import secrets
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import psutil
import pytest
import rbd

from drd.backup.job_run import JobFailed, ScheduledJob, run_recorded
from drd.backup.rbd_backup import (
    CephAccess,
    back_up_rbd_source,
    backup_rbd_image,
    image_file_name,
)
from drd.backup.rbd_remote_copy import RemoteCopy
from drd.backup.rbd_restore import RestoreRefused, restore_rbd_image
from drd.backup.restic import Restic, ResticRepository
from drd.backup.restic_messages import BackupStatus
from drd.backup.restic_outcome import RepositoryState
from drd.backup.restore_test import last_verified_restorable, recorded_chunks, restore_test
from drd.ceph import rbd_snapshots
from drd.ceph.cluster import connect
from drd.ceph.rbd_images import pool_ioctx
from drd.domain.backup_jobs import JobKey, JobKind
from drd.domain.image_backups import backup_snapshot_name
from drd.domain.replication_plan import ImageRef
from drd.lab.description import LabDescription, SiteRecord
from drd.state import RunState, StateStore
from tests.integration.descendants import our_descendants
from tests.integration.rbd_images import MiB, image_sha256, pool
from tests.integration.restic_repos import damage_largest_pack, make_repository

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

RUN = uuid.uuid4().hex[:6]  # a reused lab keeps what an interrupted run left
NAMESPACE = "water"
TENANT, SOURCE = "water", "databases"
PASSWORD = "water-restic-Jq3x9-never-on-argv"  # noqa: S105  (a test repository's)
RETRY = timedelta(seconds=2)
SCRATCH = ("rbd", "")
T = TypeVar("T")


def now() -> datetime:
    return datetime.now(UTC)


@pytest.fixture
def site(lab: LabDescription) -> SiteRecord:
    return lab.sites["a"]


@pytest.fixture
def ceph(site: SiteRecord) -> CephAccess:
    return CephAccess(site.conf, "admin")


def repository(root: Path, password: str = PASSWORD) -> ResticRepository:
    return make_repository(root, password)


@pytest.fixture
async def restic(tmp_path: Path) -> Restic:
    adapter = Restic(repository(tmp_path / "restic"), retry_lock=RETRY)
    assert await adapter.ensure_repository(initialise=True) is RepositoryState.INITIALISED
    return adapter


@pytest.fixture
def store(tmp_path: Path) -> Iterator[StateStore]:
    with StateStore.initialise(tmp_path / "state", "a") as store:
        yield store


def ref(name: str, namespace: str = NAMESPACE) -> ImageRef:
    return ImageRef("rbd", namespace, f"bkp-{RUN}-{name}")


def purge(site: SiteRecord, image: ImageRef) -> None:
    """Delete an image whatever it holds: mirroring, snapshots."""
    with pool(site, image.namespace) as ioctx:
        try:
            with rbd.Image(ioctx, image.name) as opened:
                if opened.mirror_image_get_info()["state"] != rbd.RBD_MIRROR_IMAGE_DISABLED:
                    opened.mirror_image_disable(True)
                for snap in list(opened.list_snaps()):
                    if snap["namespace"] == rbd.RBD_SNAP_NAMESPACE_TYPE_USER:
                        opened.remove_snap(snap["name"])
        except rbd.ImageNotFound:
            return
        rbd.RBD().remove(ioctx, image.name)


@contextmanager
def random_image(site: SiteRecord, image: ImageRef, size: int) -> Iterator[ImageRef]:
    """An image of `size` random bytes, deleted afterwards."""
    with pool(site, image.namespace) as ioctx:
        rbd.RBD().create(ioctx, image.name, size, old_format=False)
        try:
            with rbd.Image(ioctx, image.name) as opened:
                for offset in range(0, size, 4 * MiB):
                    opened.write(os.urandom(min(4 * MiB, size - offset)), offset)
            yield image
        finally:
            purge(site, image)


def overwrite(site: SiteRecord, image: ImageRef, offset: int, data: bytes) -> None:
    with pool(site, image.namespace) as ioctx, rbd.Image(ioctx, image.name) as opened:
        opened.write(data, offset)
        opened.flush()


def sha256_of(site: SiteRecord, image: ImageRef) -> str:
    return image_sha256(site, image.name, image.namespace)


def snapshots_of(site: SiteRecord, image: ImageRef) -> list[str]:
    with connect(site.conf) as cluster:
        return rbd_snapshots.user_snapshots(cluster, image)


def images_in(site: SiteRecord, namespace: str, prefix: str) -> list[str]:
    with pool(site, namespace) as ioctx:
        return [name for name in rbd.RBD().list(ioctx) if name.startswith(prefix)]


def processes_mentioning(text: bytes) -> list[str]:
    """Every process on the host whose argv holds `text` (not just our children: a
    process that escaped our tree would be found too)."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        with contextlib.suppress(OSError):
            if text in cmdline.read_bytes():
                found.append(cmdline.parent.name)
    return found


@dataclass(frozen=True)
class FlippingCeph(CephAccess):
    """The lab's cluster, where one byte of a restored image changes just before drd
    reads it back: as if RBD had lost or mangled a write."""

    flip_at: int = 0

    async def call(self, work: Callable[[Any], T], *,
                   stop: threading.Event | None = None) -> T:
        if isinstance(work, partial) and work.func is rbd_snapshots.read_image:
            await super().call(partial(flip_byte, ref=work.keywords["ref"],
                                       offset=self.flip_at))
        return await super().call(work, stop=stop)


def flip_byte(cluster: Any, ref: ImageRef, offset: int) -> None:
    ioctx = pool_ioctx(cluster, ref.pool, ref.namespace)
    try:
        with rbd.Image(ioctx, ref.name) as image:
            image.write(bytes([image.read(offset, 1)[0] ^ 0x01]), offset)
    finally:
        ioctx.close()


async def until(condition: Callable[[], bool], seconds: float = 60) -> None:
    for _ in range(int(seconds / 0.05)):
        if condition():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"not true within {seconds} s")


async def back_up(restic: Restic, ceph: CephAccess, store: StateStore, image: ImageRef,
                  **options: Any) -> tuple[str, int, float]:
    """Run the source's backup job on one image: (snapshot ID, bytes added, seconds)."""
    started = time.monotonic()
    outcome = await back_up_rbd_source(restic, ceph, store, tenant=TENANT, source=SOURCE,
                                       images=[image], host=TENANT,
                                       tags=[f"drd:tenant={TENANT}"], clock=now, **options)
    assert outcome.snapshot_id is not None and outcome.bytes_added is not None
    return outcome.snapshot_id, outcome.bytes_added, time.monotonic() - started


async def test_a_changed_mebibyte_adds_about_that_and_each_snapshot_restores(
        site: SiteRecord, ceph: CephAccess, restic: Restic, store: StateStore) -> None:
    size = 256 * MiB
    with random_image(site, ref("incremental"), size) as image:
        before = sha256_of(site, image)
        first, first_added, first_seconds = await back_up(restic, ceph, store, image)
        print(f"\nfirst backup of {size // MiB} MiB: {first_seconds:.2f} s, "
              f"{size / MiB / first_seconds:.0f} MiB/s, added {first_added / MiB:.1f} MiB")
        assert first_added >= size  # random data: nothing to deduplicate

        overwrite(site, image, 100 * MiB + 123_457, os.urandom(MiB))
        after = sha256_of(site, image)
        assert after != before
        second, second_added, second_seconds = await back_up(restic, ceph, store, image)
        print(f"second backup after 1 MiB changed: {second_seconds:.2f} s, "
              f"added {second_added / MiB:.2f} MiB ({second_added} bytes)")
        assert MiB <= second_added < 16 * MiB
        assert snapshots_of(site, image) == []  # both backups removed their snapshot

        for snapshot_id, expected in ((first, before), (second, after)):
            # What a restore test needs; the sha256 is known only once one has passed.
            recorded = store.image_backup(snapshot_id)
            assert recorded is not None and recorded.sha256 is None
            assert (recorded.tenant, recorded.source, recorded.image, recorded.file_name,
                    recorded.image_bytes) == (TENANT, SOURCE, image, image_file_name(image),
                                              size)
            target = ref(f"restored-{snapshot_id[:8]}")
            try:
                started = time.monotonic()
                restored = await restore_rbd_image(restic, ceph, snapshot=snapshot_id,
                                                   file_name=image_file_name(image),
                                                   target=target, force=False)
                print(f"restore of {snapshot_id[:8]}: {time.monotonic() - started:.2f} s")
                assert (restored.target, restored.bytes, restored.sha256) == (target, size,
                                                                              expected)
                assert not restored.replaced
                assert sha256_of(site, target) == expected  # read again, by the test
            finally:
                purge(site, target)
        latest = ref("restored-latest")
        try:
            restored = await restore_rbd_image(restic, ceph, snapshot="latest",
                                               file_name=image_file_name(image),
                                               target=latest, force=False)
            assert restored.snapshot_id == second and restored.sha256 == after
        finally:
            purge(site, latest)
    assert images_in(site, NAMESPACE, "drd-restore-") == []


async def test_restore_never_replaces_an_image_unless_forced_and_safe(
        site: SiteRecord, ceph: CephAccess, restic: Restic, store: StateStore) -> None:
    with random_image(site, ref("source"), 16 * MiB) as image, \
            random_image(site, ref("existing"), 8 * MiB) as existing:
        snapshot_id, _, _ = await back_up(restic, ceph, store, image)
        backed_up = sha256_of(site, image)
        old = sha256_of(site, existing)

        def restore(target: ImageRef, force: bool) -> Any:
            return restore_rbd_image(restic, ceph, snapshot=snapshot_id[:8],
                                     file_name=image_file_name(image), target=target,
                                     force=force)

        with pytest.raises(RestoreRefused) as refused:
            await restore(existing, force=False)
        assert str(refused.value) == (f"image {existing} already exists; restore into a new "
                                      f"image, or give --force to replace it")
        assert sha256_of(site, existing) == old

        in_use = r"is in use: 1 client\(s\) have it open"
        with pool(site, NAMESPACE) as ioctx, rbd.Image(ioctx, existing.name), \
                pytest.raises(RestoreRefused, match=in_use):
            await restore(existing, force=True)  # this test holds it open

        replaced = await restore(existing, force=True)
        assert replaced.replaced and replaced.sha256 == backed_up
        assert sha256_of(site, existing) == backed_up
        assert images_in(site, NAMESPACE, "drd-re") == []  # no staging or replaced leftovers

        with pool(site, NAMESPACE) as ioctx, rbd.Image(ioctx, existing.name) as opened:
            opened.create_snap("tenant-snap")
        with pytest.raises(RestoreRefused, match=r"has 1 snapshot\(s\) \(tenant-snap\)"):
            await restore(existing, force=True)

    with random_image(site, ref("mirrored"), 4 * MiB) as mirrored:
        with pool(site, NAMESPACE) as ioctx, rbd.Image(ioctx, mirrored.name) as opened:
            opened.mirror_image_enable(rbd.RBD_MIRROR_IMAGE_MODE_SNAPSHOT)
        mirrored_sha = sha256_of(site, mirrored)
        with pytest.raises(RestoreRefused) as refused:
            await restore(mirrored, force=True)
        assert str(refused.value).startswith(
            f"image {mirrored} is mirrored to other sites; replacing it would break its "
            f"replication, even with --force")
        assert sha256_of(site, mirrored) == mirrored_sha
    assert images_in(site, NAMESPACE, "drd-re") == []


async def test_a_cancelled_backup_leaves_no_snapshot_no_process_and_no_success(
        site: SiteRecord, ceph: CephAccess, restic: Restic, store: StateStore) -> None:
    with random_image(site, ref("cancelled"), 128 * MiB) as image:
        streaming = asyncio.Event()

        def progress(status: BackupStatus) -> None:
            assert status.total_bytes == 128 * MiB  # drd knows the snapshot's size
            if status.bytes_done >= 8 * MiB:
                streaming.set()

        key = JobKey(TENANT, JobKind.BACKUP, SOURCE, restic.repository.url)

        async def action() -> Any:
            return await back_up_rbd_source(
                restic, ceph, store, tenant=TENANT, source=SOURCE, images=[image],
                host=TENANT, tags=[], clock=now,
                limit_upload_kib=16 * 1024, progress=progress)  # 16 MiB/s: about 8 s

        task = asyncio.create_task(run_recorded(
            ScheduledJob(key, action, timedelta(minutes=5)), store, now))
        await asyncio.wait_for(streaming.wait(), 60)
        running = {p.name() for p in our_descendants()}
        assert {"restic", "rbd"} <= running, running
        [snapshot] = snapshots_of(site, image)
        started = time.monotonic()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        print(f"\ncancelled mid-stream; everything stopped and cleaned in "
              f"{time.monotonic() - started:.2f} s")

        assert snapshots_of(site, image) == []
        assert our_descendants() == []
        assert processes_mentioning(snapshot.encode()) == []
        [record] = store.backup_history(TENANT, 10)
        assert record.state is RunState.CANCELLED and record.snapshot_id is None
        assert store.image_backups(TENANT) == []
        assert await restic.snapshots() == []  # restic saved nothing

        # A drd killed with -9 mid-backup leaves its snapshot; the next backup sweeps
        # it, and only it: a tenant's snapshot with a similar name stays.
        leftover = backup_snapshot_name(secrets.token_hex(8))
        with pool(site, NAMESPACE) as ioctx, rbd.Image(ioctx, image.name) as opened:
            opened.create_snap(leftover)
            opened.create_snap("drd-backup-monday")
        snapshot_id, _, _ = await back_up(restic, ceph, store, image)
        assert snapshots_of(site, image) == ["drd-backup-monday"]
        assert store.image_backup(snapshot_id) is not None


async def test_a_backup_whose_restic_is_killed_mid_stream_is_recorded_failed(
        site: SiteRecord, ceph: CephAccess, restic: Restic, store: StateStore) -> None:
    """Killed from outside (an OOM kill, an operator's kill -9): a failed run with the
    reason, and no snapshot left behind."""
    with random_image(site, ref("killed"), 128 * MiB) as image:
        streaming = asyncio.Event()

        def progress(status: BackupStatus) -> None:
            if status.bytes_done >= 8 * MiB:
                streaming.set()

        key = JobKey(TENANT, JobKind.BACKUP, SOURCE, restic.repository.url)

        async def action() -> Any:
            return await back_up_rbd_source(
                restic, ceph, store, tenant=TENANT, source=SOURCE, images=[image],
                host=TENANT, tags=[], clock=now,
                limit_upload_kib=16 * 1024, progress=progress)

        task = asyncio.create_task(run_recorded(
            ScheduledJob(key, action, timedelta(minutes=5)), store, now))
        await asyncio.wait_for(streaming.wait(), 60)
        [victim] = [p for p in our_descendants() if p.name() == "restic"]
        victim.kill()
        record = await asyncio.wait_for(task, 60)
        assert record.state is RunState.FAILED, record
        print(f"\nrestic killed mid-stream: {record.reason}")
        assert record.reason and "signal 9" in record.reason, record.reason
        assert snapshots_of(site, image) == []
        assert our_descendants() == []
        assert store.image_backups(TENANT) == []


async def test_failures_carry_restics_reason_and_still_remove_the_snapshot(
        site: SiteRecord, ceph: CephAccess, restic: Restic, tmp_path: Path) -> None:
    wrong = repository(tmp_path / "wrong", password="not-the-password")  # noqa: S106
    intruder = Restic(ResticRepository(restic.repository.url, wrong.password_file,
                                       wrong.cache_dir), retry_lock=RETRY)
    with random_image(site, ref("failing"), 4 * MiB) as image:
        with pytest.raises(JobFailed) as failed:
            await backup_rbd_image(intruder, ceph, image, host=TENANT, tags=[])
        assert failed.value.reason == (
            f"backup of {image} failed: restic backup could not open the repository: wrong "
            f"password or no key in the password file: Fatal: wrong password or no key found")
        assert snapshots_of(site, image) == []

    missing = ref("never-created")
    with pytest.raises(JobFailed, match=f"backup of {missing} failed: .*does not exist"):
        await backup_rbd_image(restic, ceph, missing, host=TENANT, tags=[])


async def test_restore_tests_pass_when_intact_and_fail_loudly_when_damaged(
        site: SiteRecord, ceph: CephAccess, restic: Restic, store: StateStore, *,
        tmp_path: Path) -> None:
    with random_image(site, ref("verified"), 32 * MiB) as image:
        snapshot_id, _, _ = await back_up(restic, ceph, store, image)
        expected = sha256_of(site, image)
    key = JobKey(TENANT, JobKind.RESTORE_TEST, SOURCE, restic.repository.url)

    async def verify() -> Any:
        return await restore_test(restic, ceph, store, snapshot_id=snapshot_id,
                                  scratch=SCRATCH, job=key)

    started = time.monotonic()
    passed = await run_recorded(ScheduledJob(key, verify, timedelta(minutes=5)), store, now)
    print(f"\nrestore test of 32 MiB: {time.monotonic() - started:.2f} s")
    assert passed.state is RunState.SUCCEEDED and passed.snapshot_id == snapshot_id
    assert last_verified_restorable(store, TENANT, SOURCE) == passed.finished_at
    assert images_in(site, "", "drd-restore-") == []
    recorded = store.image_backup(snapshot_id)
    assert recorded is not None and recorded.sha256 == expected  # the one it read back
    again = await run_recorded(ScheduledJob(key, verify, timedelta(minutes=5)), store, now)
    assert again.state is RunState.SUCCEEDED  # and agreeing with the sha256 it noted

    chunks = await recorded_chunks(restic, snapshot_id, recorded.file_name)
    assert chunks.count > 16  # restic's chunks average 1 MiB
    what = f"restore test of snapshot {snapshot_id[:8]} of {recorded.image} failed"
    with StateStore.initialise(tmp_path / "other-state", "a") as other:
        # drd's record of the image's size disagrees with restic's: nothing is restored.
        other.record_image_backup(replace(recorded, image_bytes=32 * MiB + 4096, sha256=None))
        with pytest.raises(JobFailed) as wrong_size:
            await restore_test(restic, ceph, other, snapshot_id=snapshot_id, scratch=SCRATCH)
        assert wrong_size.value.reason == (
            f"{what}: restic recorded the file as {32 * MiB} bytes, but the image was "
            f"{32 * MiB + 4096} bytes at the backup's snapshot")
    with StateStore.initialise(tmp_path / "legacy-state", "a") as legacy:
        # A record from the export relay's days, whose sha256 is not the content's.
        legacy.record_image_backup(replace(recorded, sha256="0" * 64))
        with pytest.raises(JobFailed) as wrong_sha256:
            await restore_test(restic, ceph, legacy, snapshot_id=snapshot_id,
                               scratch=SCRATCH)
        assert wrong_sha256.value.reason == (
            f"{what}: its chunks match, but its sha256 is {expected}, not the {'0' * 64} "
            f"noted when it was backed up")

    # One byte of the scratch image is not what was imported: the chunk holding it is named.
    flipped = 20 * MiB + 12_345
    with pytest.raises(JobFailed) as tampered:
        await restore_test(restic, FlippingCeph(site.conf, "admin", flip_at=flipped), store,
                           snapshot_id=snapshot_id, scratch=SCRATCH)
    print(f"restore test of a scratch image with one byte flipped: {tampered.value.reason}")
    index = next(n for n in range(chunks.count) if sum(chunks.lengths[:n + 1]) > flipped)
    start = sum(chunks.lengths[:index])
    assert tampered.value.reason.startswith(
        f"{what}: chunk {index} of {chunks.count} (bytes {start} to "
        f"{start + chunks.lengths[index] - 1}) differs from the backup: its sha256 is ")
    assert tampered.value.reason.endswith(f"restic's blob is {chunks.blob_id(index)}")
    assert images_in(site, "", "drd-restore-") == []

    damaged = damage_largest_pack(Path(restic.repository.url))
    failed = await run_recorded(ScheduledJob(key, verify, timedelta(minutes=5)), store, now)
    print(f"restore test after damaging pack {damaged.name[:12]}: {failed.reason}")
    assert failed.state is RunState.FAILED and failed.snapshot_id == snapshot_id
    assert failed.reason is not None
    assert failed.reason.startswith(f"restore test of snapshot {snapshot_id[:8]} of {image} "
                                    f"failed: restore of snapshot {snapshot_id[:8]} into ")
    assert "restic dump failed" in failed.reason
    assert last_verified_restorable(store, TENANT, SOURCE) == again.finished_at
    assert images_in(site, "", "drd-restore-") == []  # scratch and staging deleted

    # A forced restore that fails never destroys the image it was to replace.
    with random_image(site, ref("kept"), 4 * MiB) as kept:
        before = sha256_of(site, kept)
        with pytest.raises(JobFailed, match="restic dump failed"):
            await restore_rbd_image(restic, ceph, snapshot=snapshot_id,
                                    file_name=image_file_name(image), target=kept, force=True)
        assert sha256_of(site, kept) == before
        assert images_in(site, NAMESPACE, "drd-re") == []


async def test_the_password_never_appears_in_any_process_argv(
        site: SiteRecord, ceph: CephAccess, restic: Restic, store: StateStore) -> None:
    with random_image(site, ref("secret-scan"), 64 * MiB) as image:
        task = asyncio.create_task(back_up(restic, ceph, store, image,
                                           limit_upload_kib=32 * 1024))
        seen: set[str] = set()
        while not task.done():
            for process in psutil.process_iter(["cmdline", "name"]):
                cmdline = " ".join(process.info["cmdline"] or ())
                assert PASSWORD not in cmdline, f"{process.pid} shows the password"
                if process.info["name"] in ("restic", "rbd") and str(image) in cmdline:
                    seen.add(process.info["name"])
            await asyncio.sleep(0.02)
        await task
        assert seen == {"restic", "rbd"}  # the scan ran while both did


@pytest.mark.parametrize("mode", ["snapshot", "journal"])
async def test_a_backup_from_remote_reads_site_cs_copy_and_matches_the_primary(
        lab: LabDescription, restic: Restic, ceph: CephAccess, mode: str) -> None:
    """`from: remote`: the snapshot is taken on a, mirrored to c, and read there.

    The backup starts as mirroring does, so c's first image sync may still be under way
    when the backup snapshot reaches c (it was, once, in CI)."""
    a, c = lab.sites["a"], lab.sites["c"]
    image = ref(f"remote-{mode}")
    with random_image(a, image, 16 * MiB):
        with pool(a, image.namespace) as ioctx, rbd.Image(ioctx, image.name) as opened:
            if mode == "journal":
                opened.update_features(rbd.RBD_FEATURE_JOURNALING, True)
                opened.mirror_image_enable(rbd.RBD_MIRROR_IMAGE_MODE_JOURNAL)
            else:
                opened.mirror_image_enable(rbd.RBD_MIRROR_IMAGE_MODE_SNAPSHOT)
        expected = image_sha256(a, image.name, image.namespace)
        remote = RemoteCopy("c", CephAccess(c.conf, "admin"), timeout=180)
        backup = await backup_rbd_image(restic, ceph, image, host=TENANT, tags=(),
                                        read_from=remote)
        assert backup.total_bytes == 16 * MiB
        dumped = await restic.dump_to(backup.snapshot_id, "/" + image_file_name(image),
                                      ["sha256sum"])
        assert dumped.consumer_output == (f"{expected}  -",)
        with connect(a.conf) as cluster:  # the backup snapshot is gone from the primary
            assert not [name for name in rbd_snapshots.user_snapshots(cluster, image)
                        if name.startswith("drd-backup-")]
