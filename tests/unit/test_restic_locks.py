"""Stale restic locks: removed only when provably stale, and never by signalling strangers."""

from datetime import UTC, datetime, timedelta

from drd.backup.restic_locks import (
    HolderProcess,
    RepositoryLock,
    judge_lock,
    plan_unlock,
)
from drd.backup.restic_messages import LockInfo

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
HERE = "site-c"
DEAD = HolderProcess(exists=False, harmless_to_signal=False, alive_holder=False)
LIVE_RESTIC = HolderProcess(exists=True, harmless_to_signal=True, alive_holder=True)
REUSED_BY_OTHER = HolderProcess(exists=True, harmless_to_signal=False, alive_holder=False)


def lock(name: str, *, minutes: float, host: str = HERE, pid: int = 100,
         exclusive: bool = True) -> RepositoryLock:
    info = LockInfo(NOW - timedelta(minutes=minutes), exclusive, host, "drd", pid)
    return RepositoryLock(name * 64, info)


def test_a_lock_older_than_30_minutes_is_stale_wherever_it_was_taken() -> None:
    judged = judge_lock(lock("a", minutes=31, host="site-a"), now=NOW, hostname=HERE,
                        holder=None)
    assert judged.stale
    assert judged.reason == ("exclusive lock aaaaaaaa of PID 100 on site-a is stale: not "
                             "refreshed for 31 min 0 s (restic's limit is 30 min)")


def test_another_hosts_young_lock_is_live() -> None:
    judged = judge_lock(lock("a", minutes=29, host="site-a"), now=NOW, hostname=HERE,
                        holder=None)
    assert not judged.stale
    assert judged.reason == ("exclusive lock aaaaaaaa of PID 100 on site-a is live: another "
                             "host's, refreshed 29 min 0 s ago")


def test_a_lock_from_the_future_is_live() -> None:
    assert not judge_lock(lock("a", minutes=-5, host="site-a"), now=NOW, hostname=HERE,
                          holder=None).stale


def test_this_hosts_lock_is_stale_only_when_its_holder_is_dead() -> None:
    young = lock("a", minutes=1, exclusive=False)
    dead = judge_lock(young, now=NOW, hostname=HERE, holder=DEAD)
    assert dead.stale and dead.reason == ("shared lock aaaaaaaa of PID 100 on site-c is "
                                          "stale: taken on this host by a process that no "
                                          "longer runs")
    live = judge_lock(young, now=NOW, hostname=HERE, holder=LIVE_RESTIC)
    assert not live.stale and live.reason.endswith("is live: its holder still runs")


def test_unlock_runs_for_a_dead_holder_beside_a_live_one() -> None:
    stale, live = lock("a", minutes=1, pid=100), lock("b", minutes=1, pid=200)
    plan = plan_unlock([stale, live], now=NOW, hostname=HERE,
                       holders={100: DEAD, 200: LIVE_RESTIC})
    assert plan.run and plan.removes == (stale.id,)
    assert [j.stale for j in plan.judgements] == [True, False]


def test_no_unlock_without_a_stale_lock() -> None:
    plan = plan_unlock([lock("b", minutes=1, pid=200), lock("c", minutes=10, host="site-a")],
                       now=NOW, hostname=HERE, holders={200: LIVE_RESTIC})
    assert not plan.run and plan.reason == "no lock is provably stale"
    assert plan_unlock([], now=NOW, hostname=HERE, holders={}).reason == "no locks"


def test_no_unlock_when_restic_would_signal_a_process_that_is_not_restic() -> None:
    stale, reused = lock("a", minutes=1, pid=100), lock("b", minutes=1, pid=300)
    plan = plan_unlock([stale, reused], now=NOW, hostname=HERE,
                       holders={100: DEAD, 300: REUSED_BY_OTHER})
    assert not plan.run
    assert plan.reason == ("not unlocking: restic unlock would send SIGHUP to PID 300, which "
                           "now belongs to a process that is not restic (lock bbbbbbbb); the "
                           "lock becomes removable when it is 30 min old")


def test_no_unlock_when_restic_would_remove_a_lock_drd_holds_live() -> None:
    # The PID is gone from the process table, yet the caller says the holder runs
    # (another PID namespace, say): restic would remove a lock drd calls live.
    said_alive = HolderProcess(exists=False, harmless_to_signal=False, alive_holder=True)
    plan = plan_unlock([lock("a", minutes=40), lock("b", minutes=1, pid=400)], now=NOW,
                       hostname=HERE, holders={400: said_alive})
    assert not plan.run and "whose PID 400 is gone from this host" in plan.reason


def test_a_stale_lock_whose_pid_a_new_restic_reused_waits_for_its_age() -> None:
    reused_by_restic = HolderProcess(exists=True, harmless_to_signal=True, alive_holder=False)
    plan = plan_unlock([lock("a", minutes=5)], now=NOW, hostname=HERE,
                       holders={100: reused_by_restic})
    assert not plan.run
    assert plan.reason.startswith("restic would remove none of the stale locks yet: ")


def test_old_locks_are_removed_by_age_whoever_holds_the_pid() -> None:
    plan = plan_unlock([lock("a", minutes=45, pid=300)], now=NOW, hostname=HERE,
                       holders={300: REUSED_BY_OTHER})
    assert plan.run and plan.removes == ("a" * 64,)
