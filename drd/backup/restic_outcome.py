"""What a restic run came to: its exit code read as a typed outcome with a reason. Pure.

restic's documented codes (075_scripting, "Exit codes"): 0 success, 1 failure,
3 backup could not read some source data, 10 no repository, 11 could not lock,
12 wrong password, 130 interrupted. "If an unknown exit code is returned, then it
MUST be treated as a command failure." A backup that exits 3 has written a snapshot,
but an incomplete one (restic 0.18 does so for a command that printed nothing), so
it is never a success.

The reason joins what the code means with restic's own words, taken from the
`exit_error` object `--json` prints on stderr, else from stderr's last lines; anything
that may be a secret is masked first.
"""

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum

from drd.backup.restic_messages import (
    BackupSummary,
    CheckSummary,
    ExitError,
    ForgetGroup,
    ItemError,
    parse_message,
)

MASK = "***"
REASON_LIMIT = 600  # characters of restic's own words kept in a reason


class OutcomeKind(StrEnum):
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    INCOMPLETE = "incomplete"
    NO_REPOSITORY = "no-repository"
    LOCKED = "locked"
    WRONG_PASSWORD = "wrong-password"  # noqa: S105  (an outcome, not a password)
    INTERRUPTED = "interrupted"
    KILLED = "killed"  # ended by a signal, without an exit code of its own
    TIMED_OUT = "timed-out"  # drd stopped it at its deadline
    CANCELLED = "cancelled"  # drd stopped it because the job was cancelled


_MEANING = {
    0: (OutcomeKind.SUCCEEDED, "succeeded"),
    1: (OutcomeKind.FAILED, "failed"),
    3: (OutcomeKind.INCOMPLETE, "could not read all of its source data, so the snapshot is "
                                "incomplete"),
    10: (OutcomeKind.NO_REPOSITORY, "found no repository at that location"),
    11: (OutcomeKind.LOCKED, "could not lock the repository: another restic holds a "
                             "conflicting lock"),
    12: (OutcomeKind.WRONG_PASSWORD, "could not open the repository: wrong password or no "
                                     "key in the password file"),
    130: (OutcomeKind.INTERRUPTED, "was interrupted"),
}


@dataclass(frozen=True)
class Outcome:
    """One restic run: `ok` only for exit 0 (and, for a backup, a snapshot)."""

    kind: OutcomeKind
    exit_code: int | None
    reason: str

    @property
    def ok(self) -> bool:
        return self.kind is OutcomeKind.SUCCEEDED


class RepositoryState(StrEnum):
    EXISTED = "existed"
    INITIALISED = "initialised"


@dataclass(frozen=True)
class BackupResult:
    """A backup run: `outcome.ok` only with a snapshot. `summary` may be present on a
    failure too (exit 3 saves an incomplete snapshot), for the record."""

    outcome: Outcome
    summary: BackupSummary | None
    errors: tuple[ItemError, ...] = ()

    @property
    def snapshot_id(self) -> str | None:
        return self.summary.snapshot_id if self.summary else None


@dataclass(frozen=True)
class CheckResult:
    outcome: Outcome
    summary: CheckSummary | None
    errors: tuple[ItemError, ...] = ()


@dataclass(frozen=True)
class ForgetResult:
    outcome: Outcome
    groups: tuple[ForgetGroup, ...] = ()

    @property
    def removed(self) -> tuple[str, ...]:
        return tuple(snapshot for group in self.groups for snapshot in group.remove)


@dataclass(frozen=True)
class RestoreResult:
    """`restic dump` piped into a consumer; ok only if both succeeded. When restic failed
    the consumer may still exit 0 with a truncated stream, so its target is not a copy."""

    outcome: Outcome
    restic: Outcome
    consumer: Outcome
    consumer_output: tuple[str, ...] = ()  # the consumer's last stdout lines


def interpret(action: str, exit_code: int, stderr_tail: Sequence[str],
              secrets: Iterable[str] = ()) -> Outcome:
    """The outcome of `restic <action>` from its exit code (negative: killed by that
    signal, as asyncio reports it) and the last lines of its stderr."""
    if exit_code < 0:
        kind, meaning = OutcomeKind.KILLED, f"was killed by signal {-exit_code}"
    elif exit_code in _MEANING:
        kind, meaning = _MEANING[exit_code]
    else:
        kind, meaning = OutcomeKind.FAILED, (f"exited with unknown code {exit_code}, "
                                             f"taken as a failure")
    reason = f"restic {action} {meaning}"
    if kind is not OutcomeKind.SUCCEEDED:
        said = restic_said(stderr_tail, secrets)
        if said:
            reason += f": {said}"
    return Outcome(kind, exit_code, reason)


def stopped(action: str, kind: OutcomeKind, why: str, stderr_tail: Sequence[str],
            secrets: Iterable[str] = ()) -> Outcome:
    """drd stopped restic itself (deadline or cancellation): never a success."""
    reason = f"restic {action} {why}"
    said = restic_said(stderr_tail, secrets)
    return Outcome(kind, None, f"{reason}; restic said: {said}" if said else reason)


def consumer_outcome(name: str, exit_code: int, stderr_tail: Sequence[str],
                     secrets: Iterable[str] = ()) -> Outcome:
    """The outcome of a process restic's output is piped into: 0 is success, else failure."""
    if exit_code == 0:
        return Outcome(OutcomeKind.SUCCEEDED, 0, f"{name} succeeded")
    how = f"was killed by signal {-exit_code}" if exit_code < 0 else f"exited {exit_code}"
    kind = OutcomeKind.KILLED if exit_code < 0 else OutcomeKind.FAILED
    said = " | ".join(line.strip() for line in stderr_tail if line.strip())
    said = " ".join(redact(said, secrets).split())[-REASON_LIMIT:]
    return Outcome(kind, exit_code, f"{name} {how}: {said}" if said else f"{name} {how}")


def judge_restore(restic: Outcome, consumer: Outcome) -> Outcome:
    """A restore succeeded only if restic dump and its consumer both did."""
    if not restic.ok:
        return Outcome(restic.kind, restic.exit_code,
                       f"{restic.reason}; what the consumer received is incomplete")
    return consumer


def judge_backup(outcome: Outcome, summary: BackupSummary | None) -> Outcome:
    """A backup succeeded only if restic exited 0 and reported the snapshot it saved."""
    if not outcome.ok:
        return outcome
    if summary is None:
        return Outcome(OutcomeKind.FAILED, outcome.exit_code,
                       "restic backup exited 0 but printed no summary, so no snapshot is "
                       "known to have been saved")
    if not summary.snapshot_id:
        return Outcome(OutcomeKind.FAILED, outcome.exit_code,
                       "restic backup exited 0 but its summary names no snapshot")
    return outcome


def restic_said(stderr_tail: Sequence[str], secrets: Iterable[str] = ()) -> str:
    """restic's own explanation: its `exit_error` message, or else the error lines."""
    exit_errors = [message for message in map(parse_message, stderr_tail)
                   if isinstance(message, ExitError)]
    if exit_errors:
        text = exit_errors[-1].message
    else:
        text = " | ".join(line.strip() for line in stderr_tail if line.strip())
    text = " ".join(redact(text, secrets).split())
    return text if len(text) <= REASON_LIMIT else "..." + text[-REASON_LIMIT:]


# A URL's user:password@, and key=value / key: value pairs whose key names a secret.
_USERINFO = re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*://)(?P<user>[^/@:\s]*):[^/@\s]*@", re.I)
_SECRET_PAIR = re.compile(
    r"(?P<key>\b[\w-]*(?:password|passwd|secret|token|credential|access[_-]?key)[\w-]*)"
    r"(?P<sep>\s*[=:]\s*)(?P<value>\"[^\"]*\"|'[^']*'|\S+)", re.I)


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """`text` with known secret values and secret-looking fields masked."""
    for secret in sorted(set(secrets), key=len, reverse=True):
        if len(secret) >= 4:  # masking "a" would mangle every word and reveal its length
            text = text.replace(secret, MASK)
    text = _USERINFO.sub(lambda m: f"{m['scheme']}{m['user']}:{MASK}@", text)
    return _SECRET_PAIR.sub(lambda m: f"{m['key']}{m['sep']}{MASK}", text)
