"""Which restic locks are provably stale, and whether `restic unlock` may run. Pure.

A lock is stale when restic says so (restic/internal/restic/lock.go): its time, which
the holder refreshes every 5 minutes, is more than 30 minutes old; or it was taken on
this host and its holder no longer runs. drd adds that a PID it is itself running is
never dead.

restic has no command to remove one chosen lock; `restic unlock` removes every lock
it judges stale by the same two rules. To judge a same-host lock that is not yet
30 minutes old, restic 0.18 sends SIGHUP to its PID (pidfd_send_signal, measured
with strace) and calls the lock stale only if that fails. A live restic ignores
SIGHUP, but a PID reused by another process would receive the signal (drd's own
daemon reloads on it) and the lock would stay. So unlock runs only when restic
would remove exactly the locks drd judges stale, and would signal only restic
processes.
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from drd.backup.restic_messages import LockInfo
from drd.backup.restic_outcome import Outcome

STALE_LOCK_AGE = timedelta(minutes=30)


@dataclass(frozen=True)
class RepositoryLock:
    id: str
    info: LockInfo


@dataclass(frozen=True)
class HolderProcess:
    """What this host says of a same-host lock's PID now."""

    exists: bool  # a process with this PID exists (restic's signal would reach it)
    harmless_to_signal: bool  # a restic, which ignores SIGHUP, or a zombie
    alive_holder: bool  # the caller, or drd's own children, say the holder still runs


@dataclass(frozen=True)
class LockJudgement:
    lock: RepositoryLock
    stale: bool
    reason: str


@dataclass(frozen=True)
class UnlockPlan:
    run: bool
    reason: str
    judgements: tuple[LockJudgement, ...]
    removes: tuple[str, ...] = ()  # the lock IDs restic unlock is expected to remove


@dataclass(frozen=True)
class StaleLockReport:
    plan: UnlockPlan
    removed: tuple[str, ...]  # lock IDs gone after `restic unlock`
    outcome: Outcome | None  # restic unlock's, when it ran


def judge_lock(lock: RepositoryLock, *, now: datetime, hostname: str,
               holder: HolderProcess | None) -> LockJudgement:
    """Whether `lock` is provably stale; `holder` is None for another host's lock."""
    info = lock.info
    age = now - info.time
    kind = "exclusive" if info.exclusive else "shared"
    who = f"{kind} lock {lock.id[:8]} of PID {info.pid} on {info.hostname}"
    if age > STALE_LOCK_AGE:
        return LockJudgement(lock, True, f"{who} is stale: not refreshed for "
                                         f"{_minutes(age)} (restic's limit is 30 min)")
    if info.hostname != hostname:
        return LockJudgement(lock, False, f"{who} is live: another host's, refreshed "
                                          f"{_minutes(age)} ago")
    if holder is None:
        raise ValueError(f"lock {lock.id[:8]} is this host's; its holder must be looked up")
    if holder.alive_holder:
        return LockJudgement(lock, False, f"{who} is live: its holder still runs")
    return LockJudgement(lock, True, f"{who} is stale: taken on this host by a process "
                                     f"that no longer runs")


def plan_unlock(locks: Sequence[RepositoryLock], *, now: datetime, hostname: str,
                holders: Mapping[int, HolderProcess]) -> UnlockPlan:
    """Whether `restic unlock` may run now, given each same-host lock's holder by PID."""
    judgements = tuple(
        judge_lock(lock, now=now, hostname=hostname,
                   holder=holders.get(lock.info.pid) if lock.info.hostname == hostname
                   else None)
        for lock in locks)
    removable = []
    for judgement in judgements:
        info, short = judgement.lock.info, judgement.lock.id[:8]
        if now - info.time > STALE_LOCK_AGE:
            removable.append(judgement)  # restic judges by age alone, as drd did
            continue
        if info.hostname != hostname:
            continue  # restic leaves another host's young lock alone
        holder = holders[info.pid]
        if holder.exists and not holder.harmless_to_signal:
            return UnlockPlan(False, f"not unlocking: restic unlock would send SIGHUP to "
                                     f"PID {info.pid}, which now belongs to a process that "
                                     f"is not restic (lock {short}); the lock becomes "
                                     f"removable when it is 30 min old", judgements)
        if not holder.exists and not judgement.stale:
            return UnlockPlan(False, f"not unlocking: restic would remove lock {short}, "
                                     f"whose PID {info.pid} is gone from this host but whose "
                                     f"holder is said to run", judgements)
        if not holder.exists:
            removable.append(judgement)
    if not removable:
        stale = [j.reason for j in judgements if j.stale]
        reason = ("no locks" if not locks else "no lock is provably stale" if not stale
                  else "restic would remove none of the stale locks yet: " + "; ".join(stale))
        return UnlockPlan(False, reason, judgements)
    return UnlockPlan(True, "; ".join(j.reason for j in removable), judgements,
                      tuple(j.lock.id for j in removable))


def _minutes(age: timedelta) -> str:
    seconds = max(0, int(age.total_seconds()))
    return f"{seconds // 60} min {seconds % 60} s"
