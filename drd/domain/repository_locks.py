"""Which queued backup jobs may start now, given what runs, under restic's repository locks. Pure.

The rules, per repository:
- shared jobs (backup, restore test) run side by side, up to the repository's limit;
- exclusive jobs (check, forget, prune) run alone: one at a time, and only once every job
  already running on the repository has finished;
- a waiting exclusive job holds back every job queued after it on its repository, so a
  steady stream of new backups can never starve a prune;
and across all repositories, at most `max_jobs` run at once.

The queue is in arrival order and is served first come, first served, except that a job
blocked on its own repository never holds up jobs on other repositories. Together with
"an exclusive job holds back those behind it", every queued job starts once the jobs ahead
of it on its repository have run, whatever keeps arriving.

`admit` decides once for the whole queue and gives every queued job a reason, for the log
and for an operator asking why a backup has not started.
"""

from collections import Counter
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType

from drd.domain.backup_jobs import JobKey, LockMode


@dataclass(frozen=True, slots=True)
class AdmissionLimits:
    """How many jobs may run at once: in all, and shared jobs per repository."""

    max_jobs: int
    max_shared_per_repository: int
    # Repositories that allow more (or fewer) concurrent backups than the default.
    shared_per_repository: Mapping[str, int] = field(
        default_factory=lambda: MappingProxyType({})
    )

    def __post_init__(self) -> None:
        if self.max_jobs < 1:
            raise ValueError(f"max_jobs must be at least 1, not {self.max_jobs}")
        limits = {"max_shared_per_repository": self.max_shared_per_repository}
        for repository, limit in self.shared_per_repository.items():
            limits[f"shared_per_repository[{repository!r}]"] = limit
        for name, limit in limits.items():
            if limit < 1:
                raise ValueError(f"{name} must be at least 1, not {limit}")

    def shared_limit(self, repository: str) -> int:
        """How many shared jobs may run on `repository` at once."""
        return self.shared_per_repository.get(repository, self.max_shared_per_repository)


@dataclass(frozen=True, slots=True)
class Verdict:
    """Whether one queued job starts now, and why (or why not), in an operator's words."""

    job: JobKey
    starts: bool
    reason: str


@dataclass(frozen=True, slots=True)
class Admission:
    """The verdict on every queued job, in queue order."""

    verdicts: tuple[Verdict, ...]

    @property
    def starting(self) -> tuple[JobKey, ...]:
        return tuple(v.job for v in self.verdicts if v.starts)

    @property
    def waiting(self) -> tuple[Verdict, ...]:
        return tuple(v for v in self.verdicts if not v.starts)


@dataclass(slots=True)
class _Repository:
    """What holds one repository during a decision: running jobs, and the first exclusive
    job queued on it that could not start."""

    shared: int = 0
    exclusive: JobKey | None = None
    exclusive_waiting: JobKey | None = None


def admit(
    running: Collection[JobKey], queue: Sequence[JobKey], limits: AdmissionLimits
) -> Admission:
    """Decide which queued jobs start now, beside the jobs already `running`.

    `running` must itself obey the rules (the scheduler only ever starts what this admits);
    a queue may name a job that is running, and that entry waits for it.
    """
    repositories: dict[str, _Repository] = {}
    for job in running:
        _take(repositories.setdefault(job.repository, _Repository()), job)
    active = Counter(running)
    total = len(running)
    verdicts: list[Verdict] = []
    for job in queue:
        repository = repositories.setdefault(job.repository, _Repository())
        blocker = _blocker(job, repository, active, total, limits)
        if blocker is None:
            verdicts.append(Verdict(job, True, _start_reason(job, repository, limits)))
            _take(repository, job)
            active[job] += 1
            total += 1
        else:
            verdicts.append(Verdict(job, False, blocker))
            if job.lock_mode is LockMode.EXCLUSIVE and repository.exclusive_waiting is None:
                repository.exclusive_waiting = job
    return Admission(tuple(verdicts))


def _take(repository: _Repository, job: JobKey) -> None:
    if job.lock_mode is LockMode.EXCLUSIVE:
        repository.exclusive = job
    else:
        repository.shared += 1


def _blocker(
    job: JobKey,
    repository: _Repository,
    active: Counter[JobKey],
    total: int,
    limits: AdmissionLimits,
) -> str | None:
    """Why `job` cannot start now, or None if it can; the first reason that applies wins,
    most specific first."""
    name = job.repository
    if active[job]:
        return f"waits: {job} is already running; a job never runs beside itself"
    if repository.exclusive is not None:
        return f"waits: {repository.exclusive} holds repository {name} exclusively"
    if repository.exclusive_waiting is not None:
        return (
            f"waits behind {repository.exclusive_waiting}, queued earlier on repository "
            f"{name}, so that it is not starved"
        )
    if job.lock_mode is LockMode.EXCLUSIVE and repository.shared:
        return (
            f"waits: needs repository {name} to itself; {repository.shared} job"
            f"{'s' if repository.shared != 1 else ''} still running on it"
        )
    limit = limits.shared_limit(name)
    if job.lock_mode is LockMode.SHARED and repository.shared >= limit:
        return f"waits: repository {name} runs {repository.shared} of {limit} concurrent backups"
    if total >= limits.max_jobs:
        return (
            f"waits: {total} of {limits.max_jobs} jobs are running, the limit across all "
            "repositories"
        )
    return None


def _start_reason(job: JobKey, repository: _Repository, limits: AdmissionLimits) -> str:
    if job.lock_mode is LockMode.EXCLUSIVE:
        return f"starts: holds repository {job.repository} exclusively"
    return (
        f"starts: slot {repository.shared + 1} of {limits.shared_limit(job.repository)} "
        f"on repository {job.repository}"
    )
