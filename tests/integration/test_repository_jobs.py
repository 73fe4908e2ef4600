"""Repository jobs and metering against the real restic (0.18 here), on repositories in
tmp_path; no Ceph. Snapshots are made with the adapter's backup_from_command, dated with
its `time=` to fabricate a history. Jobs run through run_recorded into a real state store,
as the scheduler runs them.
"""

import asyncio
import os
import time
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import generate_latest
from structlog.testing import capture_logs

from drd.api.metrics import DaemonMetrics
from drd.backup.job_run import JobFailed, JobOutcome, ScheduledJob, run_recorded
from drd.backup.metering import Metering, usage_body
from drd.backup.repository_jobs import RepositoryJobs
from drd.backup.restic import Restic, ResticRepository
from drd.backup.restic_outcome import OutcomeKind, RepositoryState
from drd.backup.retention import tenant_tag
from drd.backup.scheduler import utc_now
from drd.backup.verification import VerificationAlerts
from drd.domain.backup_jobs import JobKey, JobKind
from drd.domain.backup_policy import BackupPolicy
from drd.state import BackupJobRecord, RunState, StateStore
from tests.integration.restic_repos import (
    disk_bytes,
    exclusive_lock,
    kill_group,
    largest_pack,
    lock_ids,
    make_repository,
    raw_json,
    start_exclusive_holder,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

MiB = 1 << 20
PASSWORD = "tenant-water-Kq3v9-not-on-argv"  # noqa: S105  (a test repository's)
RETRY = timedelta(seconds=2)
TIMEOUT = timedelta(minutes=3)
DB, CFG = "rbd.water.db.raw", "files.water.cfg.tar"


def backup_policy(**extra: Any) -> BackupPolicy:
    return BackupPolicy.model_validate({
        "sources": [{"name": "cfg", "paths": ["/srv/water"]}],
        "schedule": {"cron": "0 18 * * *"}, "password_file": "/etc/drd/water.password",
        "prune": {"schedule": {"cron": "0 20 * * 0"}}, **extra})


@pytest.fixture
async def restic(tmp_path: Path) -> Restic:
    adapter = Restic(make_repository(tmp_path, PASSWORD), retry_lock=RETRY)
    assert await adapter.ensure_repository(initialise=True) is RepositoryState.INITIALISED
    return adapter


@pytest.fixture
def metrics() -> DaemonMetrics:
    return DaemonMetrics("c", "remote", "test")


@pytest.fixture
def store(tmp_path: Path) -> StateStore:
    return StateStore.initialise(tmp_path / "state", "c")


def repository_jobs(restic: Restic, metrics: DaemonMetrics, policy: BackupPolicy,
                    tenant: str = "water") -> RepositoryJobs:
    return RepositoryJobs(tenant, restic.repository.url, policy, restic,
                          alerts=VerificationAlerts(metrics), metrics=metrics)


async def run_job(jobs: RepositoryJobs, kind: JobKind, store: StateStore) -> BackupJobRecord:
    return await run_recorded(jobs.scheduled(kind, TIMEOUT), store, utc_now)


def metric(metrics: DaemonMetrics, sample: str) -> float | None:
    for line in generate_latest(metrics.registry).decode().splitlines():
        if line.startswith(sample + " "):
            return float(line.rsplit(" ", 1)[1])
    return None


async def snapshot(restic: Restic, command: Sequence[str], name: str, at: datetime | None,
                   *, tenant: str = "water", tags: Sequence[str] = ()) -> str:
    done = await restic.backup_from_command(command, stdin_filename=name, host=tenant,
                                            tags=[tenant_tag(tenant), *tags], time=at)
    assert done.outcome.ok and done.snapshot_id, done.outcome.reason
    return done.snapshot_id


def restic_survivors(times: list[datetime], daily: int, weekly: int) -> set[datetime]:
    """What --keep-daily/--keep-weekly keep of one group, computed here, not by restic:
    per rule, the newest snapshot of each of the newest `count` days (ISO weeks); and
    while a rule has count left after every bucket, also the group's oldest snapshot
    (restic >= 0.15; `forget` calls it "oldest daily snapshot")."""
    newest_first = sorted(times, reverse=True)
    kept: set[datetime] = set()
    def day(moment: datetime) -> object:
        return moment.date()

    def iso_week(moment: datetime) -> object:
        return moment.isocalendar()[:2]

    for count, bucket in ((daily, day), (weekly, iso_week)):
        newest_of: dict[object, datetime] = {}
        for moment in newest_first:
            newest_of.setdefault(bucket(moment), moment)
        kept |= set(sorted(newest_of.values(), reverse=True)[:count])
        if len(newest_of) < count:
            kept.add(newest_first[-1])
    return kept


async def test_retention_keeps_exactly_what_the_keep_rules_say(restic: Restic,
                                                               metrics: DaemonMetrics,
                                                               store: StateStore) -> None:
    # 30 days of the database source, twice on every third day, the tenant adding a tag
    # halfway; 4 days of a config source, all in one ISO week; another tenant's snapshots
    # in the same repository.
    start = datetime(2026, 2, 1, 3, 0, tzinfo=UTC)
    db_times = [start + timedelta(days=d) for d in range(30)]
    db_times += [start + timedelta(days=d, hours=12) for d in range(0, 30, 3)]
    cfg_times = [datetime(2026, 3, 2, 21, tzinfo=UTC)]
    cfg_times += [datetime(2026, 3, 2, 9, tzinfo=UTC) + timedelta(days=d) for d in range(4)]
    gate = asyncio.Semaphore(4)  # concurrent backups share the repository's lock

    async def make(name: str, at: datetime, tenant: str = "water") -> tuple[datetime, str]:
        tags = ["gold"] if name == DB and at.day < 15 and at.month == 2 else []
        async with gate:
            return at, await snapshot(restic, ["echo", f"{name} {at}"], name, at,
                                      tenant=tenant, tags=tags)

    db, cfg, theirs = await asyncio.gather(
        asyncio.gather(*(make(DB, at) for at in db_times)),
        asyncio.gather(*(make(CFG, at) for at in cfg_times)),
        asyncio.gather(*(make(DB, at, "transport") for at in db_times[:3])))
    expected = ({dict(db)[t] for t in restic_survivors(db_times, daily=3, weekly=2)}
                | {dict(cfg)[t] for t in restic_survivors(cfg_times, daily=3, weekly=2)})
    # Written out for the reader: db keeps Mar 2, Mar 1 and Feb 28 15:00 daily, and the
    # newest of ISO week 10 (Mar 2) and week 9 (Mar 1). cfg keeps Mar 5, 4 and 3 daily,
    # the newest of week 10 (Mar 5), and, weekly having a count left, its oldest (Mar 2
    # 09:00); only its Mar 2 21:00 goes.
    assert sorted(t for t, i in db + cfg if i in expected) == [
        datetime(2026, 2, 28, 15, tzinfo=UTC), datetime(2026, 3, 1, 3, tzinfo=UTC),
        datetime(2026, 3, 2, 3, tzinfo=UTC), datetime(2026, 3, 2, 9, tzinfo=UTC),
        datetime(2026, 3, 3, 9, tzinfo=UTC), datetime(2026, 3, 4, 9, tzinfo=UTC),
        datetime(2026, 3, 5, 9, tzinfo=UTC)]

    jobs = repository_jobs(restic, metrics,
                           backup_policy(retention={"keep_daily": 3, "keep_weekly": 2}))
    with capture_logs() as logs:
        record = await run_job(jobs, JobKind.FORGET, store)
    assert record.state is RunState.SUCCEEDED, record.reason
    remaining = {s.id for s in await restic.snapshots()}
    assert remaining == expected | {i for _, i in theirs}  # the other tenant's untouched
    forgotten = next(e for e in logs if e["event"] == "snapshots forgotten")
    assert (forgotten["groups"], forgotten["kept"]) == (2, len(expected))
    assert forgotten["removed"] == len(db) + len(cfg) - len(expected)


async def test_prune_after_forget_frees_the_data(restic: Restic, metrics: DaemonMetrics,
                                                 store: StateStore, tmp_path: Path) -> None:
    for day in range(1, 7):
        (tmp_path / "image.raw").write_bytes(os.urandom(2 * MiB))  # nothing to deduplicate
        await snapshot(restic, ["cat", str(tmp_path / "image.raw")], DB,
                       datetime(2026, 3, day, 3, tzinfo=UTC))
    data = Path(restic.repository.url) / "data"
    jobs = repository_jobs(restic, metrics, backup_policy(retention={"keep_last": 2}))
    before_stats, before_disk = (await restic.stats_raw_data()).total_size, disk_bytes(data)
    assert before_stats > 12 * MiB and before_disk > 12 * MiB

    assert (await run_job(jobs, JobKind.FORGET, store)).state is RunState.SUCCEEDED
    forgotten_stats, forgotten_disk = (await restic.stats_raw_data()).total_size, disk_bytes(data)
    # Measured: raw-data counts what the snapshots reference, so it drops at forget; the
    # files stay until prune.
    assert 4 * MiB < forgotten_stats < 5 * MiB
    assert forgotten_disk == before_disk

    # Nothing is left to forget, and prune still frees what the earlier forget left
    # (restic forget --prune would have skipped prune here).
    record = await run_job(jobs, JobKind.PRUNE, store)
    assert record.state is RunState.SUCCEEDED, record.reason
    assert len(await restic.snapshots()) == 2
    assert (await restic.stats_raw_data()).total_size == forgotten_stats
    assert disk_bytes(data) < 5 * MiB < before_disk
    assert (await restic.check("100%")).outcome.ok  # what is kept is whole


async def test_a_damaged_pack_fails_check_loudly_until_a_check_passes(
        restic: Restic, metrics: DaemonMetrics, store: StateStore, tmp_path: Path) -> None:
    (tmp_path / "image.raw").write_bytes(os.urandom(24 * MiB))
    await snapshot(restic, ["cat", str(tmp_path / "image.raw")], DB, None)
    jobs = repository_jobs(restic, metrics, backup_policy(
        check={"schedule": {"cron": "0 22 * * 3"}, "read_data_subset": "100%"}))
    alert = 'drd_backup_verification_failed{kind="check",tenant="water"}'
    assert (await run_job(jobs, JobKind.CHECK, store)).state is RunState.SUCCEEDED
    assert metric(metrics, alert) == 0

    pack = largest_pack(Path(restic.repository.url))
    pack.chmod(0o600)
    original = pack.read_bytes()
    with pack.open("r+b") as damaged:
        damaged.seek(len(original) // 2)
        damaged.write(b"\0" * 64)
    with capture_logs() as logs:
        failed = await run_job(jobs, JobKind.CHECK, store)
    assert failed.state is RunState.FAILED
    assert failed.reason is not None and failed.reason.startswith(
        f"restic check failed: Fatal: repository contains errors; 1 damaged pack file: "
        f"{pack.name[:8]}; first error: pack {pack.name} contains")
    assert metric(metrics, alert) == 1
    event = next(e for e in logs if e["event"] == "backup verification failed")
    assert event["log_level"] == "error" and event["reason"] == failed.reason
    # A structure-only check does not read packs: it would not have noticed.
    assert (await restic.check()).outcome.ok

    pack.write_bytes(original)  # the storage was repaired
    assert (await run_job(jobs, JobKind.CHECK, store)).state is RunState.SUCCEEDED
    assert metric(metrics, alert) == 0
    passed = metric(metrics, 'drd_backup_last_verified_timestamp_seconds{kind="check",'
                             'tenant="water"}')
    assert passed is not None and abs(passed - time.time()) < 60


async def test_a_wrong_password_is_recorded_as_a_failed_run_with_a_clear_reason(
        restic: Restic, metrics: DaemonMetrics, store: StateStore, tmp_path: Path) -> None:
    wrong = make_repository(tmp_path / "wrong", "not-the-password")
    intruder = Restic(ResticRepository(restic.repository.url, wrong.password_file,
                                       wrong.cache_dir), retry_lock=RETRY)
    jobs = repository_jobs(intruder, metrics, backup_policy(retention={"keep_last": 1}))
    for kind in (JobKind.PRUNE, JobKind.CHECK):
        record = await run_job(jobs, kind, store)
        assert record.state is RunState.FAILED and not record.interrupted
        assert record.reason == ("the repository cannot be opened: restic cat config could "
                                 "not open the repository: wrong password or no key in the "
                                 "password file: Fatal: wrong password or no key found")
    assert store.get_backup_job(record.id) == record
    assert metric(metrics, 'drd_backup_verification_failed{kind="check",tenant="water"}') == 1


async def test_a_live_exclusive_lock_gets_a_retry_then_a_clear_lock_error(
        restic: Restic, metrics: DaemonMetrics, store: StateStore, tmp_path: Path) -> None:
    await snapshot(restic, ["echo", "x"], DB, None)
    jobs = repository_jobs(restic, metrics, backup_policy(retention={"keep_last": 1}))
    with exclusive_lock(restic, tmp_path / "fifo") as holder:
        for kind in (JobKind.PRUNE, JobKind.CHECK):
            started = time.monotonic()
            with capture_logs() as logs:
                record = await run_job(jobs, kind, store)
            assert time.monotonic() - started >= RETRY.total_seconds()  # restic retried
            assert record.state is RunState.FAILED
            assert record.reason is not None
            assert f"repository is already locked exclusively by PID {holder.pid}" \
                in record.reason
            action = "forget" if kind is JobKind.PRUNE else "check"  # prune forgets first
            assert record.reason.startswith(f"restic {action} could not lock the repository")
            assert "so this one's holder may still run" in record.reason
            left = next(e for e in logs if e["event"] == "restic locks left in place")
            assert left["reason"] == "no lock is provably stale"
            assert left["locks"] == [f"exclusive lock {lock_ids(restic)[0][:8]} of PID "
                                     f"{holder.pid} on {restic.hostname} is live: its holder "
                                     f"still runs"]
        assert holder.poll() is None  # never signalled away
        assert len(lock_ids(restic)) == 1
    assert (await run_job(jobs, JobKind.PRUNE, store)).state is RunState.SUCCEEDED


async def test_a_stale_lock_of_a_killed_restic_is_removed_and_the_job_succeeds(
        restic: Restic, metrics: DaemonMetrics, store: StateStore, tmp_path: Path) -> None:
    await snapshot(restic, ["echo", "x"], DB, None)
    holder = start_exclusive_holder(restic, tmp_path / "fifo")
    kill_group(holder)  # kill -9: restic leaves its exclusive lock behind
    (stale,) = lock_ids(restic)
    blocked = await restic.check()
    assert blocked.outcome.kind is OutcomeKind.LOCKED  # restic itself waits on it

    jobs = repository_jobs(restic, metrics, backup_policy(
        check={"schedule": {"cron": "0 22 * * 3"}}))
    with capture_logs() as logs:
        record = await run_job(jobs, JobKind.CHECK, store)
    assert record.state is RunState.SUCCEEDED, record.reason
    removed = next(e for e in logs if e["event"] == "stale restic locks removed")
    assert removed["locks"] == [stale[:8]]
    assert f"of PID {holder.pid} on " in removed["reason"]
    assert removed["reason"].endswith("is stale: taken on this host by a process that no "
                                      "longer runs")
    assert lock_ids(restic) == []
    assert metric(metrics, 'drd_backup_stale_locks_removed_total{tenant="water"}') == 1


async def test_metering_matches_restic_stats_and_the_recorded_history(
        restic: Restic, metrics: DaemonMetrics, store: StateStore, tmp_path: Path) -> None:
    image = tmp_path / "image.raw"
    image.write_bytes(os.urandom(8 * MiB))
    added: list[int] = []

    async def back_up(command: list[str]) -> JobOutcome:
        done = await restic.backup_from_command(command, stdin_filename=DB, host="water",
                                                tags=[tenant_tag("water")])
        if done.summary is not None:
            added.append(done.summary.data_added)
        if not done.outcome.ok:
            raise JobFailed(done.outcome.reason, snapshot_id=done.snapshot_id)
        assert done.summary is not None
        return JobOutcome(done.summary.data_added, done.snapshot_id)

    key = JobKey("water", JobKind.BACKUP, "db", restic.repository.url)
    for command in (["cat", str(image)], ["cat", str(image)],
                    ["sh", "-c", "echo partial; exit 5"],
                    ["sh", "-c", f"cat {image}; head -c {MiB} /dev/urandom"]):
        job = ScheduledJob(key, partial(back_up, command), TIMEOUT)
        await run_recorded(job, store, utc_now)
    # A transport snapshot in the same repository is not water's.
    await snapshot(restic, ["head", "-c", str(MiB), "/dev/urandom"], DB, None,
                   tenant="transport")

    metering = Metering(store, metrics)
    measured = await metering.measure("water", restic.repository.url, restic)
    by_hand = raw_json(restic, "stats", "--mode", "raw-data", "--tag", tenant_tag("water"))
    assert measured is not None
    assert (measured.stored_bytes, measured.uncompressed_bytes, measured.snapshots) == (
        by_hand["total_size"], by_hand["total_uncompressed_size"], by_hand["snapshots_count"])
    # Random data does not compress, and each run added only what no snapshot held yet.
    assert measured.snapshots == 3
    assert abs(measured.stored_bytes - sum(added)) < 0.01 * sum(added)
    await metering.runs_changed("water")
    assert metric(metrics, 'drd_backup_stored_bytes{tenant="water"}') == measured.stored_bytes
    assert metric(metrics, 'drd_backup_added_bytes_total{tenant="water"}') == sum(added)
    for result, count in (("succeeded", 3), ("failed", 1), ("cancelled", 0)):
        assert metric(metrics, f'drd_backup_runs_total{{result="{result}",tenant="water"}}') \
            == count

    body = usage_body(await metering.usage("water")).model_dump(mode="json")
    assert body["stored"]["stored_bytes"] == by_hand["total_size"]
    assert body["backups"] == {"since": None, "runs": 4, "succeeded": 3, "failed": 1,
                               "cancelled": 0, "bytes_added": sum(added)}
    assert [run["bytes_added"] for run in body["recent_runs"]] == [added[-1], None,
                                                                   added[1], added[0]]
    # The appended MiB also re-chunks the image's last chunk: restic's are 0.5-8 MiB, so
    # that may be the whole of this 8 MiB image again (a run saw 4.0 MiB added).
    assert added[0] > 8 * MiB and added[1] < 64 * 1024 and MiB < added[2] < added[0] + 2 * MiB
    assert date.fromisoformat(body["stored"]["measured_at"][:10]) == datetime.now(UTC).date()
