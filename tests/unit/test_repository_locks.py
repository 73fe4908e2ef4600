"""The repository lock model: which queued backup jobs start, and why the others wait."""

import itertools
import random
from collections import Counter
from collections.abc import Sequence

import pytest

from drd.domain.backup_jobs import JobKey, JobKind, LockMode
from drd.domain.repository_locks import Admission, AdmissionLimits, admit


def backup(source: str, repository: str = "r1", tenant: str = "water") -> JobKey:
    return JobKey(tenant, JobKind.BACKUP, source, repository)


def restore_test(source: str, repository: str = "r1") -> JobKey:
    return JobKey("water", JobKind.RESTORE_TEST, source, repository)


def repository_job(kind: JobKind, repository: str = "r1", tenant: str = "water") -> JobKey:
    return JobKey(tenant, kind, None, repository)


PRUNE = repository_job(JobKind.PRUNE)
CHECK = repository_job(JobKind.CHECK)
LIMITS = AdmissionLimits(max_jobs=10, max_shared_per_repository=2)


def reasons(admission: Admission) -> list[str]:
    return [v.reason for v in admission.verdicts]


# -- the rules, one at a time ---------------------------------------------------------------


def test_backups_to_one_repository_run_side_by_side_up_to_its_limit() -> None:
    queue = [backup("db"), backup("web"), backup("mail")]
    admission = admit([], queue, LIMITS)
    assert admission.starting == (backup("db"), backup("web"))
    assert reasons(admission) == [
        "starts: slot 1 of 2 on repository r1",
        "starts: slot 2 of 2 on repository r1",
        "waits: repository r1 runs 2 of 2 concurrent backups",
    ]


def test_restore_tests_share_the_repository_like_backups_and_count_against_its_limit() -> None:
    admission = admit([backup("db")], [restore_test("db"), backup("web")], LIMITS)
    assert admission.starting == (restore_test("db"),)
    assert admission.waiting[0].reason == "waits: repository r1 runs 2 of 2 concurrent backups"


def test_a_repository_can_allow_more_concurrent_backups_than_the_default() -> None:
    limits = AdmissionLimits(max_jobs=10, max_shared_per_repository=1,
                             shared_per_repository={"shared": 3})
    queue = [backup(s, "shared") for s in ("a", "b", "c", "d")] + [backup("x"), backup("y")]
    assert admit([], queue, limits).starting == (
        backup("a", "shared"), backup("b", "shared"), backup("c", "shared"), backup("x"),
    )


def test_other_repositories_run_regardless_of_a_full_one() -> None:
    admission = admit([backup("db"), backup("web")], [backup("mail"), backup("mail", "r2")],
                      LIMITS)
    assert admission.starting == (backup("mail", "r2"),)


@pytest.mark.parametrize("kind", [JobKind.PRUNE, JobKind.FORGET, JobKind.CHECK])
def test_check_forget_and_prune_wait_for_running_backups_to_finish(kind: JobKind) -> None:
    job = repository_job(kind)
    admission = admit([backup("db")], [job], LIMITS)
    assert admission.starting == ()
    assert admission.waiting[0].reason == (
        "waits: needs repository r1 to itself; 1 job still running on it"
    )
    assert admit([], [job], LIMITS).starting == (job,)


def test_an_exclusive_job_runs_alone_on_its_repository() -> None:
    admission = admit([PRUNE], [backup("db"), CHECK, backup("db", "r2")], LIMITS)
    assert admission.starting == (backup("db", "r2"),)
    assert reasons(admission)[:2] == [
        "waits: prune of water holds repository r1 exclusively",
        "waits: prune of water holds repository r1 exclusively",
    ]


def test_two_exclusive_jobs_queued_together_run_one_after_the_other() -> None:
    admission = admit([], [PRUNE, CHECK], LIMITS)
    assert admission.starting == (PRUNE,)


def test_an_exclusive_job_of_another_tenant_holds_a_shared_repository_too() -> None:
    their_prune = repository_job(JobKind.PRUNE, tenant="transport")
    admission = admit([their_prune], [backup("db")], LIMITS)
    assert admission.waiting[0].reason == (
        "waits: prune of transport holds repository r1 exclusively"
    )


def test_backups_queued_behind_a_waiting_prune_wait_so_it_is_not_starved() -> None:
    queue = [backup("early"), PRUNE, backup("late"), backup("late", "r2")]
    admission = admit([backup("db")], queue, LIMITS)
    # "early" was queued before the prune and keeps its place; "late" on r1 may not overtake.
    assert admission.starting == (backup("early"), backup("late", "r2"))
    assert reasons(admission)[1:3] == [
        "waits: needs repository r1 to itself; 2 jobs still running on it",
        "waits behind prune of water, queued earlier on repository r1, so that it is not starved",
    ]


def test_a_job_never_runs_beside_itself() -> None:
    admission = admit([backup("db")], [backup("db"), backup("web")], LIMITS)
    assert admission.starting == (backup("web"),)
    assert admission.waiting[0].reason == (
        "waits: backup of water/db is already running; a job never runs beside itself"
    )
    # The same source of another tenant is another job.
    assert admit([backup("db")], [backup("db", tenant="transport")], LIMITS).starting


def test_the_global_limit_holds_across_repositories_in_queue_order() -> None:
    limits = AdmissionLimits(max_jobs=3, max_shared_per_repository=2)
    queue = [backup("a", "r2"), backup("b", "r3"), backup("c", "r4")]
    admission = admit([backup("db")], queue, limits)
    assert admission.starting == (backup("a", "r2"), backup("b", "r3"))
    assert admission.waiting[0].reason == (
        "waits: 3 of 3 jobs are running, the limit across all repositories"
    )


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"max_jobs": 0, "max_shared_per_repository": 1}, "max_jobs must be at least 1"),
        ({"max_jobs": 1, "max_shared_per_repository": 0},
         "max_shared_per_repository must be at least 1"),
        ({"max_jobs": 1, "max_shared_per_repository": 1, "shared_per_repository": {"r": 0}},
         r"shared_per_repository\['r'\] must be at least 1"),
    ],
)
def test_limits_below_one_are_refused(arguments: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        AdmissionLimits(**arguments)  # type: ignore[arg-type]


def test_job_keys_name_the_lock_they_take() -> None:
    assert backup("db").lock_mode is LockMode.SHARED
    assert restore_test("db").lock_mode is LockMode.SHARED
    assert {repository_job(k).lock_mode for k in (JobKind.CHECK, JobKind.FORGET,
                                                  JobKind.PRUNE)} == {LockMode.EXCLUSIVE}
    with pytest.raises(ValueError, match="needs a repository"):
        JobKey("water", JobKind.BACKUP, "db", "")


# -- every small situation ------------------------------------------------------------------

UNIVERSE = (
    backup("db"), backup("web"), restore_test("db"), PRUNE,
    backup("db", "r2"), repository_job(JobKind.CHECK, "r2"),
)
ALL_LIMITS = [AdmissionLimits(max_jobs=m, max_shared_per_repository=s)
              for m in (1, 2, 3) for s in (1, 2)]


def is_safe(jobs: Sequence[JobKey], limits: AdmissionLimits) -> bool:
    """The rules stated plainly, as a set of running jobs that may coexist."""
    if len(jobs) > limits.max_jobs or len(set(jobs)) != len(jobs):
        return False
    by_repository = Counter((j.repository, j.lock_mode) for j in jobs)
    for repository in {j.repository for j in jobs}:
        exclusive = by_repository[(repository, LockMode.EXCLUSIVE)]
        shared = by_repository[(repository, LockMode.SHARED)]
        if exclusive > 1 or (exclusive and shared) or shared > limits.shared_limit(repository):
            return False
    return True


def situations() -> list[tuple[tuple[JobKey, ...], tuple[JobKey, ...], AdmissionLimits]]:
    found = []
    for limits in ALL_LIMITS:
        for size in range(4):
            for running in itertools.combinations(UNIVERSE, size):
                if not is_safe(running, limits):
                    continue
                for length in range(4):
                    for queue in itertools.permutations(UNIVERSE, length):
                        found.append((running, queue, limits))
    return found


def test_every_small_situation_obeys_the_rules() -> None:
    checked = 0
    for running, queue, limits in situations():
        admission = admit(running, queue, limits)
        assert tuple(v.job for v in admission.verdicts) == queue
        started = list(running)
        exclusive_waiting: set[str] = set()
        for verdict in admission.verdicts:
            job = verdict.job
            behind_exclusive = job.repository in exclusive_waiting
            could_start = is_safe([*started, job], limits) and not behind_exclusive
            # Safe to start and not overtaking a waiting exclusive job: it must start.
            # Otherwise it must wait. Both ways, its reason says which.
            assert verdict.starts == could_start, (running, queue, limits, verdict)
            assert verdict.reason.startswith("starts" if could_start else "waits")
            if verdict.starts:
                started.append(job)
            elif job.lock_mode is LockMode.EXCLUSIVE:
                exclusive_waiting.add(job.repository)
        assert is_safe(started, limits)
        if not running and queue:
            assert admission.verdicts[0].starts, "an idle scheduler always starts the first job"
        checked += 1
    assert checked > 10_000


# -- over time: nobody starves --------------------------------------------------------------


def test_a_prune_is_not_starved_by_a_steady_stream_of_backups() -> None:
    limits = AdmissionLimits(max_jobs=4, max_shared_per_repository=2)
    running: dict[JobKey, int] = {}  # job -> the round it finishes in
    queue: list[JobKey] = []
    prune_started = None
    started_while_prune_waited: list[JobKey] = []
    for round_number in range(40):
        running = {job: end for job, end in running.items() if end > round_number}
        queue.append(backup(f"vm{round_number}"))  # a new backup every round, forever
        if round_number == 3:
            queue.append(PRUNE)
        admission = admit(list(running), queue, limits)
        for job in admission.starting:
            running[job] = round_number + (5 if job == PRUNE else 2)
            queue.remove(job)
            if job == PRUNE:
                prune_started = round_number
            elif round_number >= 3 and prune_started is None:
                started_while_prune_waited.append(job)
        if PRUNE in running:
            assert list(running) == [PRUNE]
    # Queued in round 3 behind vm2 (running) and vm3 (queued just before it): it starts as
    # soon as vm3 is done, and no backup queued after it got in first.
    assert started_while_prune_waited == [backup("vm3")]
    assert prune_started == 5


def test_random_arrivals_all_start_and_the_rules_hold_throughout() -> None:
    generator = random.Random(6)  # noqa: S311 (a reproducible workload, not secrets)
    limits = AdmissionLimits(max_jobs=3, max_shared_per_repository=2)
    kinds = [JobKind.BACKUP] * 6 + [JobKind.RESTORE_TEST, JobKind.PRUNE, JobKind.CHECK]
    running: dict[JobKey, int] = {}
    queue: list[JobKey] = []
    queued_at: dict[JobKey, int] = {}
    waits: list[int] = []
    serial = itertools.count()
    for round_number in range(600):
        running = {job: end for job, end in running.items() if end > round_number}
        if round_number < 500:  # then no more arrivals: everything queued must drain
            for _ in range(generator.randint(0, 2)):
                kind = generator.choice(kinds)
                repository = generator.choice(["r1", "r2", "r3"])
                source = f"vm{next(serial)}" if lock_mode_is_shared(kind) else None
                job = JobKey(generator.choice(["water", "transport"]), kind, source, repository)
                if job not in queue and job not in running:
                    queue.append(job)
                    queued_at[job] = round_number
        admission = admit(list(running), queue, limits)
        for job in admission.starting:
            running[job] = round_number + generator.randint(1, 3)
            queue.remove(job)
            waits.append(round_number - queued_at.pop(job))
        assert is_safe(list(running), limits)
    assert queue == [] and running == {}
    # First come, first served per repository keeps every wait short, even for prunes.
    assert max(waits) <= 10
    assert len(waits) > 300


def lock_mode_is_shared(kind: JobKind) -> bool:
    return JobKey("t", kind, None, "r").lock_mode is LockMode.SHARED
