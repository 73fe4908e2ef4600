"""What a tenant's backup job is: its kind, and the key that names it everywhere. Pure.

The scheduler queues jobs by this key, the repository lock model admits them by it, and the
state store records their history under it, so all three agree on what "the same job" is.
"""

from dataclasses import dataclass
from enum import StrEnum


class JobKind(StrEnum):
    """The restic operations a tenant's policy schedules."""

    BACKUP = "backup"
    FORGET = "forget"
    PRUNE = "prune"
    CHECK = "check"
    RESTORE_TEST = "restore_test"


class LockMode(StrEnum):
    """How a job holds its repository, mirroring the lock restic itself takes."""

    SHARED = "shared"
    EXCLUSIVE = "exclusive"


# restic takes a non-exclusive lock for backup and restore, and an exclusive one for check,
# forget and prune; asking restic for a lock it cannot get only ends in a lock error.
_LOCK_MODES = {
    JobKind.BACKUP: LockMode.SHARED,
    JobKind.RESTORE_TEST: LockMode.SHARED,
    JobKind.FORGET: LockMode.EXCLUSIVE,
    JobKind.PRUNE: LockMode.EXCLUSIVE,
    JobKind.CHECK: LockMode.EXCLUSIVE,
}


def lock_mode(kind: JobKind) -> LockMode:
    """The lock a job of this kind holds on its repository while it runs."""
    return _LOCK_MODES[kind]


@dataclass(frozen=True, slots=True)
class JobKey:
    """One schedulable job: what it does, for whom, on which source, in which repository.

    `source` is None for jobs on a whole repository (forget, prune, check). `repository` is
    a stable key of the restic repository (its normalised URL), so that tenants sharing one
    repository share its locks.
    """

    tenant: str
    kind: JobKind
    source: str | None
    repository: str

    def __post_init__(self) -> None:
        if not self.tenant:
            raise ValueError("a backup job needs a tenant")
        if not self.repository:
            raise ValueError("a backup job needs a repository")
        if self.source == "":
            raise ValueError("a job's source is a name or None, never empty")

    @property
    def lock_mode(self) -> LockMode:
        return lock_mode(self.kind)

    def __str__(self) -> str:
        what = f"{self.tenant}/{self.source}" if self.source else self.tenant
        return f"{self.kind.value} of {what}"
