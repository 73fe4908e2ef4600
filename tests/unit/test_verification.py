"""Verification alerts: raised by a failure, cleared by a pass, restored from history."""

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from prometheus_client import generate_latest
from structlog.testing import capture_logs

from drd.api.metrics import DaemonMetrics
from drd.backup.restic_messages import CheckSummary, ItemError, parse_message
from drd.backup.restic_outcome import CheckResult, Outcome, OutcomeKind
from drd.backup.verification import VerificationAlerts, check_failure_reason
from drd.domain.backup_jobs import JobKey, JobKind
from drd.state import RunState, StateStore

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
REPO = "/srv/restic/water"
CHECK = JobKey("water", JobKind.CHECK, None, REPO)
TEST_DB = JobKey("water", JobKind.RESTORE_TEST, "db", REPO)
TEST_WEB = JobKey("water", JobKind.RESTORE_TEST, "web", REPO)


def value(metrics: DaemonMetrics, name: str, kind: str, tenant: str = "water") -> float | None:
    wanted = f'{name}{{kind="{kind}",tenant="{tenant}"}} '
    for line in generate_latest(metrics.registry).decode().splitlines():
        if line.startswith(wanted):
            return float(line.split(" ")[1])
    return None


def failed_gauge(metrics: DaemonMetrics, kind: str = "check") -> float | None:
    return value(metrics, "drd_backup_verification_failed", kind)


def test_the_reason_of_a_damaged_repository_names_its_packs() -> None:
    # Lines as real restic 0.18 printed them for one damaged pack (check --json).
    summary = parse_message(
        '{"message_type":"summary","num_errors":1,"broken_packs":["a1b837f222f0c0aeb4f4ff7d'
        '7e0ad3b4b3d229293ed32bd7d5a31c3964491b72"],"suggest_repair_index":false,'
        '"suggest_prune":false}')
    error = parse_message(
        '{"message_type":"error","message":"pack a1b837f222f0c0aeb4f4ff7d7e0ad3b4b3d229293ed3'
        '2bd7d5a31c3964491b72 contains 2 errors: [blob 1b52441481a639786dbeb6021424599f95966'
        'f1e68c1bb1ecf8f6e1516a08902: decrypting blob \\u003cdata/1b524414\\u003e from '
        'a1b837f2 failed: ciphertext verification failed]\\n"}')
    assert isinstance(summary, CheckSummary) and isinstance(error, ItemError)
    result = CheckResult(Outcome(OutcomeKind.FAILED, 1, "restic check failed: Fatal: "
                                                        "repository contains errors"),
                         summary, (error,))
    assert check_failure_reason(result) == (
        "restic check failed: Fatal: repository contains errors; 1 damaged pack file: "
        "a1b837f2; first error: pack a1b837f222f0c0aeb4f4ff7d7e0ad3b4b3d229293ed32bd7d5a31c3"
        "964491b72 contains 2 errors: [blob 1b52441481a639786dbeb6021424599f95966f1e68c1bb1e"
        "cf8f6e1516a08902: decrypting blob <data/1b524414> from a1b837f2 failed: ciphertext "
        "verification failed]")
    many = CheckResult(result.outcome, CheckSummary(5, tuple(f"{n}" * 64 for n in range(5)),
                                                    True, False), ())
    assert check_failure_reason(many) == (
        "restic check failed: Fatal: repository contains errors; 5 damaged pack files: "
        "00000000, 11111111, 22222222 and 2 more; restic suggests `restic repair index`")


def test_one_source_passing_never_hides_another_failing() -> None:
    metrics = DaemonMetrics("c", "remote", "test")
    alerts = VerificationAlerts(metrics)
    alerts.failed("water", JobKind.RESTORE_TEST, "sha256 differs", source="db")
    alerts.failed("water", JobKind.RESTORE_TEST, "restic dump failed", source="web")
    alerts.passed("water", JobKind.RESTORE_TEST, NOW, source="db")
    assert failed_gauge(metrics, "restore_test") == 1
    assert alerts.failing("water") == {JobKind.RESTORE_TEST: {"web": "restic dump failed"}}
    alerts.passed("water", JobKind.RESTORE_TEST, NOW, source="web")
    assert failed_gauge(metrics, "restore_test") == 0
    assert alerts.failing("water") == {}
    with pytest.raises(ValueError, match="not a verification"):
        alerts.failed("water", JobKind.PRUNE, "no")


def ran(store: StateStore, job: JobKey, at: datetime, state: RunState,
        reason: str | None = None) -> None:
    record = store.start_backup_job(job, at)
    store.finish_backup_job(record.id, state, at + timedelta(minutes=5), reason=reason)


async def test_a_restart_raises_again_what_failed_last(tmp_path: Path) -> None:
    store = StateStore.initialise(tmp_path, "c")
    ran(store, CHECK, NOW, RunState.SUCCEEDED)
    ran(store, CHECK, NOW + timedelta(days=1), RunState.FAILED, "restic check failed")
    # The daemon died during the next one: not evidence either way.
    store.start_backup_job(CHECK, NOW + timedelta(days=2))
    store.mark_interrupted_backup_jobs(NOW + timedelta(days=3), "daemon stopped during the run")
    ran(store, TEST_DB, NOW, RunState.FAILED, "sha256 differs")
    ran(store, TEST_DB, NOW + timedelta(hours=1), RunState.SUCCEEDED)
    ran(store, TEST_WEB, NOW + timedelta(hours=2), RunState.SUCCEEDED)
    ran(store, JobKey("water", JobKind.PRUNE, None, REPO), NOW, RunState.FAILED, "locked")

    metrics = DaemonMetrics("c", "remote", "test")
    alerts = VerificationAlerts(metrics)
    with capture_logs() as logs:
        await alerts.restore_from(store)
    assert failed_gauge(metrics) == 1
    assert failed_gauge(metrics, "restore_test") == 0
    assert alerts.failing("water") == {JobKind.CHECK: {None: "restic check failed"}}
    assert [e["event"] for e in logs] == ["backup verification failed before the daemon "
                                          "started"]
    passed = NOW + timedelta(minutes=5)
    assert value(metrics, "drd_backup_last_verified_timestamp_seconds", "check") \
        == passed.timestamp()
    assert value(metrics, "drd_backup_last_verified_timestamp_seconds", "restore_test") \
        == (passed + timedelta(hours=2)).timestamp()
    assert value(metrics, "drd_backup_verification_failed", "prune") is None

    alerts.remove("water")
    assert failed_gauge(metrics) is None and alerts.failing("water") == {}
    store.close()
