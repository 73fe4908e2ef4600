"""The restic adapter against the real restic (0.18 here), on repositories in tmp_path.

Needs no Ceph. Other restic processes that hold locks are real restic too:
`restic key passwd --new-password-file FIFO` takes an exclusive lock and then waits
to read the FIFO; `restic backup --stdin-from-command -- sleep N` holds a shared one.
"""

import asyncio
import hashlib
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psutil
import pytest

from drd.backup import restic_argv as argv
from drd.backup.restic import (
    Restic,
    ResticError,
    ResticRepository,
    holder_running,
    probe_version,
)
from drd.backup.restic_argv import KeepRules, SnapshotFilter
from drd.backup.restic_env import restic_environment
from drd.backup.restic_messages import BackupStatus, ResticOutputError
from drd.backup.restic_outcome import OutcomeKind, RepositoryState
from drd.backup.restic_process import Children, run
from drd.backup.restore_test import recorded_chunks
from drd.domain.chunk_check import ChunkHasher, readback_problem
from tests.integration import restic_repos
from tests.integration.descendants import our_descendants
from tests.integration.restic_repos import damage_largest_pack, lock_ids, wait_for_locks

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

MiB = 1 << 20
PASSWORD = "tenant-water-Zq8v1-not-on-argv"  # noqa: S105  (a test repository's)
RETRY = timedelta(seconds=2)


def make_repository(root: Path, password: str = PASSWORD) -> ResticRepository:
    return restic_repos.make_repository(root, password)


@pytest.fixture
async def restic(tmp_path: Path) -> Restic:
    adapter = Restic(make_repository(tmp_path), retry_lock=RETRY)
    assert await adapter.ensure_repository(initialise=True) is RepositoryState.INITIALISED
    return adapter


def random_file(path: Path, size: int) -> str:
    data = os.urandom(size)
    path.write_bytes(data)
    return hashlib.sha256(data).hexdigest()


@contextmanager
def exclusive_lock(restic: Restic, fifo: Path) -> Iterator[subprocess.Popen[bytes]]:
    """A real restic holding an exclusive lock until the FIFO is closed."""
    os.mkfifo(fifo)
    repository = restic.repository
    holder = subprocess.Popen(
        ["restic", "key", "passwd", "--repo", repository.url, "--new-password-file",
         str(fifo)], env=restic_environment(os.environ, password_file=repository.password_file,
                                            cache_dir=repository.cache_dir),
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        wait_for_locks(restic, 1)
        yield holder
    finally:
        with suppress(OSError):  # no reader any more: the holder is gone
            os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))  # EOF: an empty password
        try:
            holder.wait(timeout=20)
        finally:
            with suppress(ProcessLookupError):
                os.killpg(holder.pid, signal.SIGKILL)
            holder.wait()


def shared_lock_holder(restic: Restic, name: str,
                       other_host: str | None = None) -> subprocess.Popen[bytes]:
    """A real restic holding a shared lock; with `other_host`, from a UTS namespace that
    has that hostname, as restic on another site would."""
    repository = restic.repository
    backup = ["restic", *argv.backup_from_command(repository.url, ["sleep", "120"],
                                                  stdin_filename=name, host="holder")]
    if other_host is not None:
        backup = ["unshare", "--uts", "sh", "-c", f'hostname {other_host} && exec "$@"',
                  "holder", *backup]
    return subprocess.Popen(
        backup,
        env=restic_environment(os.environ, password_file=repository.password_file,
                               cache_dir=repository.cache_dir),
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)


def kill_group(process: subprocess.Popen[bytes]) -> None:
    with suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


async def until(condition: Callable[[], bool], seconds: float = 30) -> None:
    for _ in range(int(seconds / 0.05)):
        if condition():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"not true within {seconds} s")


def scan_cmdlines(secret: bytes) -> int:
    """Fail if any process shows `secret` in its argv; how many restic backups ran."""
    seen = 0
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        with suppress(OSError):
            text = cmdline.read_bytes()
            assert secret not in text, f"{cmdline} shows the password"
            if b"--stdin-from-command" in text and text.startswith(b"restic"):
                seen += 1
                environ = cmdline.with_name("environ").read_bytes()
                assert secret not in environ
                assert b"RESTIC_PASSWORD_FILE=" in environ
    return seen


async def test_version_probe_accepts_the_installed_restic() -> None:
    assert await probe_version() >= (0, 17, 0)


async def test_a_repository_is_created_only_when_the_policy_allows(tmp_path: Path) -> None:
    adapter = Restic(make_repository(tmp_path))
    with pytest.raises(ResticError) as refused:
        await adapter.ensure_repository(initialise=False)
    assert refused.value.outcome.kind is OutcomeKind.NO_REPOSITORY
    assert refused.value.outcome.exit_code == 10
    assert str(refused.value).endswith("the policy does not let drd create it")
    assert not (tmp_path / "repo").exists()
    assert await adapter.ensure_repository(initialise=True) is RepositoryState.INITIALISED
    assert await adapter.ensure_repository(initialise=False) is RepositoryState.EXISTED
    assert await adapter.ensure_repository(initialise=True) is RepositoryState.EXISTED


async def test_backup_restore_and_an_unchanged_rerun(restic: Restic, tmp_path: Path) -> None:
    digest = random_file(tmp_path / "image.raw", 64 * MiB)
    statuses: list[BackupStatus] = []
    first = await restic.backup_from_command(
        ["cat", str(tmp_path / "image.raw")], stdin_filename="rbd.water.vm1.raw",
        host="water", tags=["drd:tenant=water"], progress=statuses.append)
    assert first.outcome.ok, first.outcome.reason
    assert first.summary is not None and first.snapshot_id
    assert first.summary.total_bytes_processed == 64 * MiB
    assert first.summary.data_added >= 64 * MiB  # random data: nothing to deduplicate
    assert statuses and statuses[-1].bytes_done == 64 * MiB

    second = await restic.backup_from_command(
        ["cat", str(tmp_path / "image.raw")], stdin_filename="rbd.water.vm1.raw",
        host="water", tags=["drd:tenant=water"])
    assert second.outcome.ok and second.summary is not None
    assert second.snapshot_id != first.snapshot_id
    assert second.summary.data_added < 64 * 1024  # measured: about 1 KB of metadata

    snapshots = await restic.snapshots(SnapshotFilter(hosts=("water",),
                                                      tags=("drd:tenant=water",)))
    assert [s.id for s in snapshots] == [first.snapshot_id, second.snapshot_id]
    stats = await restic.stats_raw_data()
    assert 64 * MiB <= stats.total_size < 65 * MiB and stats.snapshots_count == 2

    restored = await restic.dump_to(str(first.snapshot_id), "/rbd.water.vm1.raw",
                                    ["sha256sum"])
    assert restored.outcome.ok, restored.outcome.reason
    assert restored.consumer_output == (f"{digest}  -",)
    target = tmp_path / "restored.raw"
    latest = await restic.dump_to("latest", "/rbd.water.vm1.raw",
                                  ["dd", f"of={target}", "bs=4M", "status=none"],
                                  selection=SnapshotFilter(paths=("/rbd.water.vm1.raw",)))
    assert latest.outcome.ok, latest.outcome.reason
    assert hashlib.sha256(target.read_bytes()).hexdigest() == digest


async def test_the_chunks_restic_records_are_read_back_as_the_file(restic: Restic,
                                                                  tmp_path: Path) -> None:
    """What a restore test verifies against: the file node and the index, read through
    the adapter, cut the backed-up bytes into pieces that hash to their blob IDs."""
    data = os.urandom(24 * MiB) + bytes(4 * MiB) + os.urandom(MiB + 17)
    (tmp_path / "image.raw").write_bytes(data)
    done = await restic.backup_from_command(
        ["cat", str(tmp_path / "image.raw")], stdin_filename="rbd+vm1.raw", host="water")
    assert done.outcome.ok and done.snapshot_id, done.outcome.reason
    snapshot = await restic.snapshot_object(done.snapshot_id)
    assert snapshot.paths == ("/rbd+vm1.raw",) and snapshot.hostname == "water"
    chunks = await recorded_chunks(restic, done.snapshot_id, "rbd+vm1.raw")
    assert chunks.size == chunks.total == len(data) and chunks.count > 10
    hasher = ChunkHasher(chunks)
    for offset in range(0, len(data), 4 * MiB):
        hasher.update(data[offset:offset + 4 * MiB])
    found = hasher.result()
    assert readback_problem(chunks, found) is None
    assert found.sha256 == hashlib.sha256(data).hexdigest()

    with pytest.raises(ResticError, match="restic cat snapshot failed"):
        await restic.snapshot_object("0" * 64)
    with pytest.raises(ResticOutputError, match=r"holds no file 'vm2\.raw'"):
        await restic.file_node(snapshot.tree, "vm2.raw")
    assert lock_ids(restic) == []  # each read released its shared lock


async def test_files_are_backed_up_as_restic_reads_them(restic: Restic,
                                                       tmp_path: Path) -> None:
    """A policy's file paths: restic reads the tree itself; each file comes back whole."""
    tree = tmp_path / "scada"
    (tree / "history").mkdir(parents=True)
    digests = {name: random_file(tree / name, size) for name, size in
               (("config.xml", 20_000), ("history/2026-11.db", 3 * MiB))}
    done = await restic.backup_paths([str(tree)], host="water",
                                     tags=["drd:tenant=water", "drd:source=scada"])
    assert done.outcome.ok, done.outcome.reason
    assert done.summary is not None and done.summary.files_new == 2
    for name, digest in digests.items():
        restored = await restic.dump_to(str(done.snapshot_id), f"{tree}/{name}", ["sha256sum"])
        assert restored.outcome.ok, restored.outcome.reason
        assert restored.consumer_output == (f"{digest}  -",)
    missing = await restic.backup_paths([str(tmp_path / "gone")], host="water")
    assert not missing.outcome.ok  # nothing readable: never a green run


async def test_a_failed_restore_consumer_fails_the_restore(restic: Restic,
                                                           tmp_path: Path) -> None:
    random_file(tmp_path / "image.raw", 16 * MiB)
    done = await restic.backup_from_command(["cat", str(tmp_path / "image.raw")],
                                            stdin_filename="vm1.raw", host="water")
    assert done.outcome.ok
    refused = await restic.dump_to("latest", "/vm1.raw",
                                   ["sh", "-c", "head -c 1 >/dev/null; echo no space >&2; exit 3"])
    assert not refused.outcome.ok
    assert refused.consumer.exit_code == 3
    # restic dump dies of SIGPIPE (Go does on stdout); its lock is cleared right away.
    assert refused.restic.exit_code == -signal.SIGPIPE
    assert refused.outcome.reason == ("sh exited 3: no space; restic dump lost its reader "
                                      "and died of SIGPIPE")
    assert lock_ids(restic) == []
    missing = await restic.dump_to("latest", "/not-there.raw", ["sha256sum"])
    assert not missing.outcome.ok and missing.restic.exit_code == 1
    assert "not found in snapshot" in missing.outcome.reason
    assert missing.outcome.reason.endswith("what the consumer received is incomplete")
    with pytest.raises(FileNotFoundError):
        await restic.dump_to("latest", "/vm1.raw", ["/nonexistent/rbd", "import", "-"])
    assert our_descendants() == [] and lock_ids(restic) == []


async def test_empty_and_failing_sources_are_failed_backups(restic: Restic) -> None:
    empty = await restic.backup_from_command(["true"], stdin_filename="empty.raw",
                                             host="water")
    assert empty.outcome.kind is OutcomeKind.INCOMPLETE and empty.outcome.exit_code == 3
    assert empty.snapshot_id  # restic saved it anyway: retention must not count it
    assert empty.errors[0].message == "failed to save /empty.raw: read /empty.raw: no data read"
    assert (await restic.forget_snapshots([str(empty.snapshot_id)])).ok
    failing = await restic.backup_from_command(["sh", "-c", "echo partial; exit 5"],
                                               stdin_filename="bad.raw", host="water")
    assert failing.outcome.kind is OutcomeKind.FAILED and failing.snapshot_id is None
    assert failing.outcome.reason == ("restic backup failed: Fatal: unable to save snapshot: "
                                      "failed to save /bad.raw: Fatal: command failed: exit "
                                      "status 5")
    assert await restic.snapshots() == []


async def test_wrong_password_is_exit_12_with_a_clear_reason(restic: Restic,
                                                             tmp_path: Path) -> None:
    wrong = make_repository(tmp_path / "wrong", password="not-the-password")  # noqa: S106
    intruder = Restic(ResticRepository(restic.repository.url, wrong.password_file,
                                       wrong.cache_dir), retry_lock=RETRY)
    result = await intruder.backup_from_command(["echo", "x"], stdin_filename="x.raw",
                                                host="water")
    assert result.outcome.kind is OutcomeKind.WRONG_PASSWORD
    assert result.outcome.exit_code == 12 and not result.outcome.ok
    assert result.outcome.reason == ("restic backup could not open the repository: wrong "
                                     "password or no key in the password file: Fatal: wrong "
                                     "password or no key found")
    with pytest.raises(ResticError) as error:
        await intruder.snapshots()
    assert error.value.outcome.exit_code == 12
    with pytest.raises(ResticError) as probing:
        await intruder.ensure_repository(initialise=True)  # never "creates" over it
    assert probing.value.outcome.kind is OutcomeKind.WRONG_PASSWORD


async def test_an_exclusive_lock_gives_exit_11_after_the_retry(restic: Restic,
                                                               tmp_path: Path) -> None:
    with exclusive_lock(restic, tmp_path / "fifo") as holder:
        started = time.monotonic()
        result = await restic.backup_from_command(["echo", "x"], stdin_filename="x.raw",
                                                  host="water")
        waited = time.monotonic() - started
        assert result.outcome.kind is OutcomeKind.LOCKED and result.outcome.exit_code == 11
        assert not result.outcome.ok and result.snapshot_id is None
        assert waited >= RETRY.total_seconds()  # restic retried before it gave up
        assert (f"repository is already locked exclusively by PID {holder.pid}"
                in result.outcome.reason)
        for outcome in [(await restic.check()).outcome, await restic.prune(),
                        (await restic.forget(KeepRules(last=1))).outcome]:
            assert outcome.kind is OutcomeKind.LOCKED, outcome.reason
    assert (await restic.backup_from_command(["echo", "x"], stdin_filename="x.raw",
                                             host="water")).outcome.ok


async def test_a_shared_lock_blocks_prune_but_not_another_backup(restic: Restic) -> None:
    holder = shared_lock_holder(restic, "hold.raw")
    try:
        wait_for_locks(restic, 1)
        assert (await restic.backup_from_command(["echo", "x"], stdin_filename="x.raw",
                                                 host="water")).outcome.ok
        pruned = await restic.prune()
        assert pruned.kind is OutcomeKind.LOCKED
        assert f"repository is already locked by PID {holder.pid}" in pruned.reason
    finally:
        kill_group(holder)


async def test_only_provably_stale_locks_are_removed(restic: Restic) -> None:
    dead, live = shared_lock_holder(restic, "dead.raw"), shared_lock_holder(restic, "live.raw")
    try:
        wait_for_locks(restic, 2)
        kill_group(dead)  # SIGKILL: restic leaves its lock behind
        locks = {lock.info.pid: lock.id for lock in await restic.locks()}
        assert set(locks) == {dead.pid, live.pid}
        blocked = await restic.prune()
        assert blocked.kind is OutcomeKind.LOCKED  # restic itself does not skip stale locks

        report = await restic.remove_stale_locks(holder_running)
        assert report.plan.run, report.plan.reason
        assert report.removed == (locks[dead.pid],)
        assert report.outcome is not None and report.outcome.ok
        assert lock_ids(restic) == [locks[live.pid]]
        assert live.poll() is None  # restic's SIGHUP probe left the live holder running

        again = await restic.remove_stale_locks(holder_running)
        assert not again.plan.run and again.plan.reason == "no lock is provably stale"
    finally:
        kill_group(dead)
        kill_group(live)


async def test_another_hosts_young_lock_is_kept_though_its_pid_is_dead_here(
        restic: Restic) -> None:
    foreign = shared_lock_holder(restic, "foreign.raw", other_host="site-a-drd-test")
    dead = shared_lock_holder(restic, "dead.raw")
    try:
        wait_for_locks(restic, 2)
        kill_group(foreign)
        kill_group(dead)
        locks = {lock.info.hostname: lock.id for lock in await restic.locks()}
        assert set(locks) == {"site-a-drd-test", restic.hostname}
        report = await restic.remove_stale_locks(holder_running)
        assert report.removed == (locks[restic.hostname],)
        foreign_judgement = next(j for j in report.plan.judgements
                                 if j.lock.id == locks["site-a-drd-test"])
        assert not foreign_judgement.stale
        assert "is live: another host's, refreshed 0 min" in foreign_judgement.reason
        assert lock_ids(restic) == [locks["site-a-drd-test"]]  # restic kept it too
    finally:
        kill_group(foreign)
        kill_group(dead)


async def test_a_lock_of_our_own_restic_is_never_stale(restic: Restic) -> None:
    task = asyncio.create_task(restic.backup_from_command(
        ["sleep", "60"], stdin_filename="ours.raw", host="water"))
    try:
        await until(lambda: bool(lock_ids(restic)))
        report = await restic.remove_stale_locks(lambda pid: False)  # "everyone is dead"
        assert not report.plan.run and report.removed == ()
        assert report.plan.judgements[0].reason.endswith("is live: its holder still runs")
        assert len(lock_ids(restic)) == 1
    finally:
        task.cancel()
        with suppress(asyncio.CancelledError):
            await task


async def test_the_password_never_appears_in_any_process_argv(restic: Restic,
                                                              tmp_path: Path) -> None:
    random_file(tmp_path / "image.raw", 16 * MiB)
    backup = asyncio.create_task(restic.backup_from_command(
        ["sh", "-c", f"sleep 1; cat {tmp_path / 'image.raw'}"], stdin_filename="vm1.raw",
        host="water"))
    seen_restic = 0
    while not backup.done():
        seen_restic += scan_cmdlines(PASSWORD.encode())
        await asyncio.sleep(0.02)
    assert (await backup).outcome.ok
    assert seen_restic > 10  # the scan ran while restic did


async def test_cancelling_a_backup_stops_restic_and_leaves_no_child(restic: Restic) -> None:
    task = asyncio.create_task(restic.backup_from_command(
        ["sleep", "300"], stdin_filename="slow.raw", host="water"))
    await until(lambda: len(our_descendants()) >= 2)  # restic and its sleep
    children = our_descendants()
    assert {p.name() for p in children} == {"restic", "sleep"}
    started = time.monotonic()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert time.monotonic() - started < 5  # restic stops on SIGINT; no SIGKILL needed
    assert not any(p.is_running() and p.status() != psutil.STATUS_ZOMBIE for p in children)
    assert our_descendants() == []
    assert lock_ids(restic) == []  # restic released its lock on the way out
    assert restic.children.pids == set()


async def test_a_backup_past_its_deadline_is_stopped_and_failed(restic: Restic) -> None:
    result = await restic.backup_from_command(["sleep", "300"], stdin_filename="slow.raw",
                                              host="water", deadline=1.5)
    assert result.outcome.kind is OutcomeKind.TIMED_OUT and not result.outcome.ok
    assert result.outcome.reason == ("restic backup was stopped at its deadline; restic "
                                     "said: Fatal: unable to save snapshot: context canceled")
    assert our_descendants() == [] and lock_ids(restic) == []


async def test_a_failing_progress_callback_stops_restic(restic: Restic,
                                                        tmp_path: Path) -> None:
    random_file(tmp_path / "image.raw", 32 * MiB)

    def broken(status: BackupStatus) -> None:
        raise RuntimeError("progress display failed")

    with pytest.raises(RuntimeError, match="progress display failed"):
        await restic.backup_from_command(["cat", str(tmp_path / "image.raw")],
                                         stdin_filename="vm1.raw", host="water",
                                         progress=broken)
    assert our_descendants() == [] and lock_ids(restic) == []
    assert await restic.snapshots() == []


async def test_forget_keeps_exactly_what_the_rules_say(restic: Restic) -> None:
    history = ["2026-01-05T03:00", "2026-01-20T03:00", "2026-02-03T03:00",
               "2026-02-10T03:00", "2026-02-10T15:00", "2026-02-11T03:00",
               "2026-02-11T09:00", "2026-02-12T03:00"]
    ids: dict[str, str] = {}
    for n, moment in enumerate(history):
        # The tenant added the tag "gold" halfway: retention must not split the history.
        tags = ["drd:tenant=water", *(["gold"] if n < 4 else [])]
        done = await restic.backup_from_command(
            ["echo", moment], stdin_filename="rbd.water.vm1.raw", host="water", tags=tags,
            time=datetime.fromisoformat(moment).replace(tzinfo=UTC))
        assert done.outcome.ok and done.snapshot_id, done.outcome.reason
        ids[moment] = done.snapshot_id
    other = await restic.backup_from_command(
        ["echo", "other"], stdin_filename="rbd.transport.db.raw", host="transport",
        tags=["drd:tenant=transport"], time=datetime(2025, 1, 1, tzinfo=UTC))
    assert other.outcome.ok

    rules = KeepRules(last=2, daily=3, monthly=2)
    result = await restic.forget(rules, SnapshotFilter(tags=("drd:tenant=water",)))
    assert result.outcome.ok, result.outcome.reason
    # Newest first: last 2 keeps 02-12 03:00 and 02-11 09:00; daily 3 keeps the newest
    # of 02-12, 02-11 and 02-10 (15:00); monthly 2 keeps the newest of Feb and Jan.
    kept = {"2026-02-12T03:00", "2026-02-11T09:00", "2026-02-10T15:00", "2026-01-20T03:00"}
    assert sorted(result.removed) == sorted(ids[m] for m in history if m not in kept)
    remaining = {s.id for s in await restic.snapshots()}
    assert remaining == {ids[m] for m in kept} | {other.snapshot_id}
    assert len(result.groups) == 1  # one source, whatever its tags


async def test_check_finds_a_damaged_pack_only_by_reading_data(restic: Restic,
                                                               tmp_path: Path) -> None:
    random_file(tmp_path / "image.raw", 24 * MiB)
    done = await restic.backup_from_command(["cat", str(tmp_path / "image.raw")],
                                            stdin_filename="vm1.raw", host="water")
    assert done.outcome.ok
    healthy = await restic.check("100%")
    assert healthy.outcome.ok and healthy.summary is not None
    assert healthy.summary.num_errors == 0

    largest = damage_largest_pack(Path(restic.repository.url))

    structure = await restic.check()
    assert structure.outcome.ok  # measured: only reading the data finds this damage
    damaged = await restic.check("100%")
    assert damaged.outcome.kind is OutcomeKind.FAILED and damaged.outcome.exit_code == 1
    assert damaged.outcome.reason == "restic check failed: Fatal: repository contains errors"
    assert damaged.summary is not None and damaged.summary.broken_packs == (largest.name,)
    assert any(largest.name in error.message for error in damaged.errors)
    restore = await restic.dump_to("latest", "/vm1.raw", ["sha256sum"])
    assert not restore.outcome.ok and restore.restic.exit_code == 1


async def test_a_stalled_restore_pipeline_is_stopped_whole(restic: Restic,
                                                           tmp_path: Path) -> None:
    random_file(tmp_path / "image.raw", 16 * MiB)
    assert (await restic.backup_from_command(["cat", str(tmp_path / "image.raw")],
                                             stdin_filename="vm1.raw",
                                             host="water")).outcome.ok
    started = time.monotonic()
    stalled = await restic.dump_to("latest", "/vm1.raw", ["sleep", "300"], deadline=2)
    print(f"stopped after {time.monotonic() - started:.1f} s")
    assert stalled.outcome.kind is OutcomeKind.TIMED_OUT and not stalled.outcome.ok
    assert stalled.consumer.kind is OutcomeKind.TIMED_OUT
    assert our_descendants() == [] and lock_ids(restic) == []


async def test_a_child_that_ignores_sigint_is_killed_with_its_group() -> None:
    # Process mechanics alone, with real processes: sh and sleep ignore SIGINT here.
    children = Children()
    started = time.monotonic()
    done = await run(["sh", "-c", "trap '' INT; sleep 300 & wait"], env=dict(os.environ),
                     deadline=0.5, children=children, grace=0.5)
    assert done.timed_out and done.exit_code == -signal.SIGKILL
    assert time.monotonic() - started < 5
    assert our_descendants() == [] and children.pids == set()
