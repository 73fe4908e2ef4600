"""Reading a run's journal back: step states, what is proven about a demoted site, and
the report's windows."""

from datetime import UTC, datetime, timedelta
from pathlib import Path

from drd.config.runbook_loader import builtin_runbooks_dir, parse_runbook
from drd.domain import runbook_journal as journal
from drd.domain.runbook import RunTarget

SWITCHOVER = parse_runbook((builtin_runbooks_dir() / "switchover.yaml").read_text(),
                           Path("switchover.yaml"), {"a", "b", "c"})
T0 = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)
A_TO_B = RunTarget("a", "b", ("water",))


def done(step: str, at: float, seconds: float = 1.0, state: str = "succeeded",
         **facts: str) -> journal.Attempt:
    start = T0 + timedelta(seconds=at)
    return journal.Attempt(step, state, start, start + timedelta(seconds=seconds),
                           {"facts": facts})


def test_a_site_demoted_then_waited_out_is_clean_and_one_only_demoted_is_not() -> None:
    demoted = [done("demote-source", 0)]
    steps = journal.progress(SWITCHOVER, demoted)
    assert journal.cleanly_demoted(steps, A_TO_B) == frozenset()
    steps = journal.progress(SWITCHOVER, [*demoted, done("target-in-sync", 2)])
    assert journal.cleanly_demoted(steps, A_TO_B) == {"a"}


def test_a_wait_that_failed_or_came_before_the_demotion_proves_nothing() -> None:
    failed = [done("demote-source", 0), done("target-in-sync", 2, state="failed")]
    assert journal.cleanly_demoted(journal.progress(SWITCHOVER, failed), A_TO_B) == set()
    early = [done("target-in-sync", 0), done("demote-source", 5)]
    assert journal.cleanly_demoted(journal.progress(SWITCHOVER, early), A_TO_B) == set()


def test_a_started_step_nobody_finished_is_interrupted_and_runs_again() -> None:
    running = journal.Attempt("promote-target", "running", T0, None, {})
    steps = journal.progress(SWITCHOVER, [done("demote-source", 0), running])
    assert [s.step.name for s in journal.interrupted(steps)] == ["promote-target"]
    assert not next(s for s in steps if s.step.name == "promote-target").done


def test_the_report_measures_blocked_writes_and_the_unprotected_window() -> None:
    attempts = [done("demote-source", 10),
                done("promote-target", 14, writable_at=(T0 + timedelta(seconds=15))
                     .isoformat()),
                done("replication-to-source", 16,
                     protected_at=(T0 + timedelta(seconds=21)).isoformat())]
    steps = journal.progress(SWITCHOVER, attempts)
    report = journal.report(steps, T0, T0 + timedelta(seconds=30))
    assert report["writes_blocked_seconds"] == 5.0  # demote began at 10, writable at 15
    assert report["unprotected_seconds"] == 6.0
    assert report["rto_seconds"] == 15.0
    assert report["total_seconds"] == 30.0
    assert report["step_seconds"]["demote-source"] == 1.0
