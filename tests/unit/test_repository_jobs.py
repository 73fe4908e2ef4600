"""The jobs on a tenant's whole repository, against a fake at the restic Protocol boundary.

What restic itself does with these calls is proven against real restic in
tests/integration/test_repository_jobs.py; here: which calls, in which order, and how
their outcomes become job outcomes, reasons, alerts and log events.
"""

from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from prometheus_client import generate_latest
from structlog.testing import capture_logs

from drd.api.metrics import DaemonMetrics
from drd.backup.job_run import JobFailed, JobOutcome
from drd.backup.repository_jobs import RepositoryJobs
from drd.backup.restic import ResticError
from drd.backup.restic_argv import ALL_SNAPSHOTS, KeepRules, SnapshotFilter
from drd.backup.restic_locks import StaleLockReport, UnlockPlan
from drd.backup.restic_messages import CheckSummary, ForgetGroup, ItemError
from drd.backup.restic_outcome import (
    CheckResult,
    ForgetResult,
    Outcome,
    OutcomeKind,
    RepositoryState,
)
from drd.backup.verification import VerificationAlerts
from drd.domain.backup_jobs import JobKind
from drd.domain.backup_policy import BackupPolicy

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
OK = Outcome(OutcomeKind.SUCCEEDED, 0, "restic succeeded")
LOCKED = Outcome(OutcomeKind.LOCKED, 11, "restic prune could not lock the repository: another "
                 "restic holds a conflicting lock: unable to create lock in backend: "
                 "repository is already locked exclusively by PID 4242 on site-c by root")
NO_LOCKS = StaleLockReport(UnlockPlan(False, "no locks", ()), (), None)


def policy(**backup: Any) -> BackupPolicy:
    return BackupPolicy.model_validate({
        "sources": [{"name": "cfg", "paths": ["/srv/water"]}],
        "schedule": {"cron": "0 18 * * *"}, "password_file": "/etc/drd/water.password",
        **backup})


RETAINED = policy(retention={"keep_daily": 3, "keep_weekly": 2},
                  prune={"schedule": {"cron": "0 20 * * 0"}},
                  check={"schedule": {"cron": "0 22 * * 3"}, "read_data_subset": "5%"})


class FakeRestic:
    """ResticRepositoryPort for the calls repository jobs make; records them in order."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []
        self.ensure: RepositoryState | ResticError = RepositoryState.EXISTED
        self.stale_locks: StaleLockReport | ResticError = NO_LOCKS
        self.forgotten = ForgetResult(OK, (ForgetGroup("water", ("/cfg",), (), ("k1",),
                                                       ("r1", "r2")),))
        self.pruned = OK
        self.checked = CheckResult(OK, CheckSummary(0, (), False, False))

    async def ensure_repository(self, initialise: bool) -> RepositoryState:
        self.calls.append(("ensure_repository", initialise))
        if isinstance(self.ensure, ResticError):
            raise self.ensure
        return self.ensure

    async def remove_stale_locks(self, is_holder_alive: Callable[[int], bool]
                                 ) -> StaleLockReport:
        self.calls.append(("remove_stale_locks", is_holder_alive))
        if isinstance(self.stale_locks, ResticError):
            raise self.stale_locks
        return self.stale_locks

    async def forget(self, rules: KeepRules, selection: SnapshotFilter = ALL_SNAPSHOTS,
                     *, group_by: Sequence[str] = ("host", "paths"), dry_run: bool = False,
                     deadline: float = 0) -> ForgetResult:
        self.calls.append(("forget", (rules, selection, tuple(group_by), dry_run, deadline)))
        return self.forgotten

    async def prune(self, *, deadline: float = 0) -> Outcome:
        self.calls.append(("prune", deadline))
        return self.pruned

    async def check(self, read_data_subset: str | None = None, *,
                    deadline: float = 0) -> CheckResult:
        self.calls.append(("check", (read_data_subset, deadline)))
        return self.checked

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"repository jobs must not call restic's {name}")


def alive(pid: int) -> bool:
    return True


@pytest.fixture
def metrics() -> DaemonMetrics:
    return DaemonMetrics("c", "remote", "test")


def jobs_for(restic: FakeRestic, metrics: DaemonMetrics,
             backup: BackupPolicy = RETAINED) -> RepositoryJobs:
    return RepositoryJobs("water", "/srv/restic/water", backup, restic,
                          alerts=VerificationAlerts(metrics), metrics=metrics,
                          is_holder_alive=alive, clock=lambda: NOW)


def sample(metrics: DaemonMetrics, line: str) -> float | None:
    for text in generate_latest(metrics.registry).decode().splitlines():
        if text.startswith(line + " "):
            return float(text.split(" ")[1])
    return None


async def test_prune_forgets_the_tenants_snapshots_by_the_retention_then_prunes(
        metrics: DaemonMetrics) -> None:
    restic = FakeRestic()
    with capture_logs() as logs:
        assert await jobs_for(restic, metrics).prune() == JobOutcome()
    names = [name for name, _ in restic.calls]
    assert names == ["ensure_repository", "remove_stale_locks", "forget", "prune"]
    assert restic.calls[0] == ("ensure_repository", True)  # the policy's default
    assert restic.calls[1][1] is alive
    rules, selection, group_by, dry_run, _ = restic.calls[2][1]
    assert rules == KeepRules(daily=3, weekly=2)
    assert selection == SnapshotFilter(tags=("drd:tenant=water",))
    assert group_by == ("host", "paths") and not dry_run
    forgotten = next(e for e in logs if e["event"] == "snapshots forgotten")
    assert (forgotten["removed"], forgotten["kept"], forgotten["rules"]) == (2, 1,
                                                                             "daily 3, weekly 2")


async def test_without_retention_prune_keeps_every_snapshot_but_still_prunes(
        metrics: DaemonMetrics) -> None:
    restic = FakeRestic()
    assert await jobs_for(restic, metrics, policy()).prune() == JobOutcome()
    assert [name for name, _ in restic.calls] == ["ensure_repository", "remove_stale_locks",
                                                  "prune"]
    assert await jobs_for(restic, metrics, policy()).forget() == JobOutcome()


async def test_a_lock_fails_forget_with_restics_words_and_prune_never_runs(
        metrics: DaemonMetrics) -> None:
    restic = FakeRestic()
    restic.forgotten = ForgetResult(LOCKED)
    with pytest.raises(JobFailed) as failed:
        await jobs_for(restic, metrics).prune()
    assert failed.value.reason.startswith(LOCKED.reason + "; drd removes a restic lock only "
                                                          "once it is provably stale")
    assert "prune" not in [name for name, _ in restic.calls]


async def test_a_failed_prune_says_what_forget_had_done(metrics: DaemonMetrics) -> None:
    restic = FakeRestic()
    restic.pruned = Outcome(OutcomeKind.FAILED, 1, "restic prune failed: Fatal: disk full")
    with pytest.raises(JobFailed) as failed:
        await jobs_for(restic, metrics).prune()
    assert failed.value.reason == ("restic prune failed: Fatal: disk full (after forgetting "
                                   "2 snapshots)")


async def test_a_repository_that_may_not_be_created_fails_the_job(
        metrics: DaemonMetrics) -> None:
    restic = FakeRestic()
    restic.ensure = ResticError(Outcome(
        OutcomeKind.NO_REPOSITORY, 10, "restic cat config found no repository at that "
        "location; the policy does not let drd create it"))
    with pytest.raises(JobFailed) as failed:
        await jobs_for(restic, metrics, policy(initialise_repository=False)).forget()
    assert restic.calls == [("ensure_repository", False)]
    assert failed.value.reason == ("the repository cannot be opened: restic cat config found "
                                   "no repository at that location; the policy does not let "
                                   "drd create it")


async def test_removed_stale_locks_are_logged_and_counted(metrics: DaemonMetrics) -> None:
    restic = FakeRestic()
    restic.stale_locks = StaleLockReport(
        UnlockPlan(True, "exclusive lock aaaaaaaa of PID 7 on site-c is stale: taken on this "
                         "host by a process that no longer runs", (), ("a" * 64,)),
        ("a" * 64,), OK)
    with capture_logs() as logs:
        preparation = await jobs_for(restic, metrics).prepare()
    assert preparation.removed_locks == ("a" * 64,)
    removed = next(e for e in logs if e["event"] == "stale restic locks removed")
    assert removed["locks"] == ["aaaaaaaa"] and removed["log_level"] == "warning"
    assert "no longer runs" in removed["reason"]
    assert sample(metrics, 'drd_backup_stale_locks_removed_total{tenant="water"}') == 1


async def test_a_stale_lock_unlock_did_not_remove_is_a_warning(metrics: DaemonMetrics) -> None:
    restic = FakeRestic()
    restic.stale_locks = StaleLockReport(UnlockPlan(True, "stale", (), ("a" * 64, "b" * 64)),
                                         ("a" * 64,), OK)
    with capture_logs() as logs:
        await jobs_for(restic, metrics).prepare()
    failed = next(e for e in logs if e["event"] == "restic unlock failed")
    assert failed["locks_left"] == ["bbbbbbbb"] and failed["log_level"] == "warning"


async def test_locks_that_cannot_be_listed_leave_the_job_to_meet_them(
        metrics: DaemonMetrics) -> None:
    restic = FakeRestic()
    restic.stale_locks = ResticError(Outcome(OutcomeKind.FAILED, 1, "restic list locks failed"))
    with capture_logs() as logs:
        assert await jobs_for(restic, metrics).check() == JobOutcome()
    assert any(e["event"] == "restic locks could not be listed" for e in logs)


async def test_a_failed_check_raises_the_alert_until_a_check_passes(
        metrics: DaemonMetrics) -> None:
    restic = FakeRestic()
    restic.checked = CheckResult(
        Outcome(OutcomeKind.FAILED, 1, "restic check failed: Fatal: repository contains "
                                       "errors"),
        CheckSummary(1, ("a1b837f2" + "0" * 56,), False, False),
        (ItemError("pack a1b837f2 contains 2 errors: [blob 1b524414: ciphertext "
                   "verification failed]", None, None),))
    jobs = jobs_for(restic, metrics)
    failed_gauge = 'drd_backup_verification_failed{kind="check",tenant="water"}'
    with capture_logs() as logs, pytest.raises(JobFailed) as failed:
        await jobs.check()
    assert failed.value.reason == (
        "restic check failed: Fatal: repository contains errors; 1 damaged pack file: "
        "a1b837f2; first error: pack a1b837f2 contains 2 errors: [blob 1b524414: "
        "ciphertext verification failed]")
    assert restic.calls[-1] == ("check", ("5%", restic.calls[-1][1][1]))
    alert = next(e for e in logs if e["event"] == "backup verification failed")
    assert alert["log_level"] == "error" and alert["reason"] == failed.value.reason
    assert (alert["tenant"], alert["kind"]) == ("water", "check")
    assert sample(metrics, failed_gauge) == 1

    restic.checked = CheckResult(OK, CheckSummary(0, (), False, False))
    with capture_logs() as logs:
        assert await jobs.check() == JobOutcome()
    assert sample(metrics, failed_gauge) == 0
    assert sample(metrics, 'drd_backup_last_verified_timestamp_seconds{kind="check",'
                           'tenant="water"}') == NOW.timestamp()
    assert any(e["event"] == "backup verification passed again" for e in logs)


async def test_a_check_that_cannot_open_the_repository_is_a_failed_verification(
        metrics: DaemonMetrics) -> None:
    restic = FakeRestic()
    restic.ensure = ResticError(Outcome(
        OutcomeKind.WRONG_PASSWORD, 12, "restic cat config could not open the repository: "
        "wrong password or no key in the password file: Fatal: wrong password or no key "
        "found"))
    with pytest.raises(JobFailed) as failed:
        await jobs_for(restic, metrics).check()
    assert "wrong password or no key in the password file" in failed.value.reason
    assert sample(metrics, 'drd_backup_verification_failed{kind="check",tenant="water"}') \
        == 1


async def test_a_locked_check_fails_with_the_holder_named(metrics: DaemonMetrics) -> None:
    restic = FakeRestic()
    restic.checked = CheckResult(Outcome(LOCKED.kind, 11, LOCKED.reason.replace(
        "prune", "check")), CheckSummary(1, (), False, False))
    with pytest.raises(JobFailed) as failed:
        await jobs_for(restic, metrics, policy()).check()
    assert "locked exclusively by PID 4242 on site-c" in failed.value.reason
    assert restic.calls[-1][1][0] is None  # no check section: structure only


async def test_a_scheduled_job_gives_restic_most_of_its_timeout(
        metrics: DaemonMetrics) -> None:
    restic = FakeRestic()
    job = jobs_for(restic, metrics).scheduled(JobKind.CHECK, timedelta(hours=1))
    assert (job.key.tenant, job.key.kind, job.key.source, job.key.repository) == (
        "water", JobKind.CHECK, None, "/srv/restic/water")
    assert job.timeout == timedelta(hours=1)
    assert await job.action() == JobOutcome()
    deadline = restic.calls[-1][1][1]
    assert 3230 < deadline <= 3240  # 90 % of the hour, less what prepare took
    with pytest.raises(ValueError, match="not a job on a whole repository"):
        jobs_for(restic, metrics).scheduled(JobKind.BACKUP, timedelta(hours=1))
