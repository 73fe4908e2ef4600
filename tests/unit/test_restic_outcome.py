"""Exit codes as outcomes with reasons; a failure is never a success."""

import json
from pathlib import Path
from typing import Any

import pytest

from drd.backup.restic_messages import BackupSummary, parse_messages
from drd.backup.restic_outcome import (
    Outcome,
    OutcomeKind,
    consumer_outcome,
    interpret,
    judge_backup,
    judge_restore,
    redact,
    restic_said,
    stopped,
)

RUNS: dict[str, Any] = json.loads(
    (Path(__file__).parent / "data" / "restic_0.18.0.json").read_text())["runs"]


def captured(run: str) -> Outcome:
    return interpret(run, RUNS[run]["exit_code"], RUNS[run]["stderr"].splitlines())


def test_success() -> None:
    outcome = captured("check")
    assert outcome == Outcome(OutcomeKind.SUCCEEDED, 0, "restic check succeeded")
    assert outcome.ok


@pytest.mark.parametrize(("run", "kind", "reason"), [
    ("cat_config_missing", OutcomeKind.NO_REPOSITORY,
     "restic cat_config_missing found no repository at that location: Fatal: repository "
     "does not exist: unable to open config file: stat <tmp>/repo/config: no such file or "
     "directory Is there a repository at the following location? <tmp>/repo"),
    ("snapshots_wrong_password", OutcomeKind.WRONG_PASSWORD,
     "restic snapshots_wrong_password could not open the repository: wrong password or no "
     "key in the password file: Fatal: wrong password or no key found"),
    ("backup_empty", OutcomeKind.INCOMPLETE,
     "restic backup_empty could not read all of its source data, so the snapshot is "
     "incomplete: Warning: at least one source file could not be read"),
    ("check_interrupted", OutcomeKind.INTERRUPTED,
     "restic check_interrupted was interrupted: context canceled"),
    ("check_damaged", OutcomeKind.FAILED,
     "restic check_damaged failed: Fatal: repository contains errors"),
])
def test_captured_failures_read_as_people_would(run: str, kind: OutcomeKind,
                                                reason: str) -> None:
    outcome = captured(run)
    assert (outcome.kind, outcome.reason) == (kind, reason)
    assert not outcome.ok


def test_a_lock_error_names_the_holder() -> None:
    outcome = captured("backup_locked")
    assert outcome.kind is OutcomeKind.LOCKED and not outcome.ok
    assert outcome.reason.startswith("restic backup_locked could not lock the repository: "
                                     "another restic holds a conflicting lock: unable to "
                                     "create lock in backend: repository is already locked "
                                     "exclusively by PID ")


@pytest.mark.parametrize("code", [2, 4, 9, 13, 255])
def test_unknown_codes_are_failures(code: int) -> None:
    outcome = interpret("backup", code, [])
    assert outcome.kind is OutcomeKind.FAILED and not outcome.ok
    assert outcome.reason == f"restic backup exited with unknown code {code}, taken as a failure"


def test_a_signal_is_a_kill() -> None:
    outcome = interpret("backup", -9, ["plain last words"])
    assert outcome.kind is OutcomeKind.KILLED
    assert outcome.reason == "restic backup was killed by signal 9: plain last words"


def test_stopped_by_drd() -> None:
    outcome = stopped("backup", OutcomeKind.TIMED_OUT, "was stopped at its deadline",
                      ['{"message_type":"exit_error","code":1,"message":"context canceled"}'])
    assert not outcome.ok and outcome.exit_code is None
    assert outcome.reason == ("restic backup was stopped at its deadline; restic said: "
                              "context canceled")


def test_a_backup_needs_a_summary_with_a_snapshot() -> None:
    ok = interpret("backup", 0, [])
    [summary] = [m for m in parse_messages(RUNS["backup_first"]["stdout"].splitlines())
                 if isinstance(m, BackupSummary)]
    assert judge_backup(ok, summary) is ok
    no_summary = judge_backup(ok, None)
    assert no_summary.kind is OutcomeKind.FAILED and "no summary" in no_summary.reason
    without_id = BackupSummary(None, 0, 0, 0, 0, 0, 0, 0.0, None, None)
    assert judge_backup(ok, without_id).reason == ("restic backup exited 0 but its summary "
                                                   "names no snapshot")


def test_exit_3_is_a_failure_even_with_a_snapshot() -> None:
    [summary] = [m for m in parse_messages(RUNS["backup_empty"]["stdout"].splitlines())
                 if isinstance(m, BackupSummary)]
    assert summary.snapshot_id
    judged = judge_backup(captured("backup_empty"), summary)
    assert judged.kind is OutcomeKind.INCOMPLETE and not judged.ok


def test_a_restore_fails_when_either_side_fails() -> None:
    restic_ok = interpret("dump", 0, [])
    consumer_ok = consumer_outcome("rbd", 0, [])
    assert judge_restore(restic_ok, consumer_ok).ok
    consumer_bad = consumer_outcome("rbd", 2, ["rbd: image exists"])
    assert judge_restore(restic_ok, consumer_bad).reason == "rbd exited 2: rbd: image exists"
    restic_bad = interpret("dump", 12, [])
    judged = judge_restore(restic_bad, consumer_ok)
    assert judged.kind is OutcomeKind.WRONG_PASSWORD
    assert judged.reason.endswith("what the consumer received is incomplete")
    assert consumer_outcome("rbd", -13, []).kind is OutcomeKind.KILLED


def test_secrets_are_masked_in_reasons() -> None:
    tail = ["Fatal: unable to open config file: Stat: The AWS Access Key Id AKIAWATER you "
            "provided does not exist; secret water-secret-key",
            "rest:https://drd:hunter2@backup:8000/water token=abc123 password: 'x y'"]
    said = restic_said(tail, secrets=["AKIAWATER", "water-secret-key"])
    for secret in ("AKIAWATER", "water-secret-key", "hunter2", "abc123", "'x y'"):
        assert secret not in said
    assert "rest:https://drd:***@backup:8000/water" in said
    assert "token=***" in said and "password: ***" in said


def test_redaction_leaves_restics_own_words() -> None:
    text = "Fatal: wrong password or no key found"
    assert redact(text) == text
    assert redact("key a", secrets=["a"]) == "key a"  # too short to mask safely


def test_reasons_are_bounded() -> None:
    said = restic_said(["x" * 5000])
    assert len(said) == 603 and said.startswith("...")
