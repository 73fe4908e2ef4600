"""The jobs on one tenant's restic repository as a whole: prepare, forget, prune, check.

Each job is an action for drd.backup.job_run: it returns a JobOutcome on success and
raises JobFailed, with restic's reason, on any failure it understands. Nothing here
reports a failure as a success: a lock restic could not get after --retry-lock, a
wrong password, a missing repository and a check that found damage all fail the job.

Every job starts with `prepare`: the repository must exist (created only when the
policy allows it), and locks that are provably stale (restic_locks) are removed, so a
restic that died holding a lock does not fail every job for 30 minutes. Backups call
`prepare` too. A lock whose holder still runs is left alone; the job then waits for it
through restic's --retry-lock, and fails with restic's words on who holds it.

Prune is `forget` with the retention, then a separate `restic prune`, not `forget
--prune`: restic 0.18 prunes after `forget --prune` only when that forget removed a
snapshot, so data left unreferenced by an earlier prune that failed or was cancelled,
by a failed backup's snapshot that was forgotten, or by another tenant's forget in a
shared repository would never be reclaimed. A separate prune always runs, and the
history says which of the two steps failed.
"""

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

import structlog

from drd.api.metrics import DaemonMetrics
from drd.backup.job_run import Clock, JobFailed, JobOutcome, ScheduledJob
from drd.backup.restic import JOB_TIMEOUT, ResticError, holder_running
from drd.backup.restic_argv import DEFAULT_GROUP_BY
from drd.backup.restic_outcome import Outcome, OutcomeKind, RepositoryState
from drd.backup.restic_port import ResticRepositoryPort
from drd.backup.retention import describe_rules, keep_rules, tenant_selection
from drd.backup.scheduler import utc_now
from drd.backup.verification import VerificationAlerts, check_failure_reason
from drd.domain.backup_jobs import JobKey, JobKind
from drd.domain.backup_policy import BackupPolicy

log = structlog.get_logger()

# restic's own deadline inside a job is this share of the job's timeout, so that restic
# is stopped, and the failure judged here (a check's alert raised), before run_recorded's
# timeout cancels the action and only "timed out" is known.
RESTIC_SHARE_OF_TIMEOUT = 0.9
_SHORTEST_DEADLINE = 1.0  # seconds; restic is given at least this, however late
LOCK_ADVICE = ("; drd removes a restic lock only once it is provably stale (its holder on "
               "this host is gone, or it is 30 min old), so this one's holder may still run")


@dataclass(frozen=True, slots=True)
class Preparation:
    """What `prepare` found: whether the repository had to be created, which stale locks
    it removed, and why it removed or kept locks."""

    repository: RepositoryState
    removed_locks: tuple[str, ...]
    locks: str


class RepositoryJobs:
    """The repository-wide jobs of one tenant's policy, on its repository."""

    def __init__(self, tenant: str, repository: str, policy: BackupPolicy,
                 restic: ResticRepositoryPort, *, alerts: VerificationAlerts,
                 metrics: DaemonMetrics,
                 is_holder_alive: Callable[[int], bool] = holder_running,
                 clock: Clock = utc_now) -> None:
        """`repository` is the repository's key in JobKey (its normalised URL); `alerts`
        and `metrics` are the daemon's, shared by every tenant."""
        self.tenant = tenant
        self.repository = repository
        self._policy = policy
        self._restic = restic
        self._alerts = alerts
        self._metrics = metrics
        self._is_holder_alive = is_holder_alive
        self._clock = clock
        self._selection = tenant_selection(tenant)

    def scheduled(self, kind: JobKind, timeout: timedelta) -> ScheduledJob:
        """The job of `kind` for the scheduler, restic stopped within its timeout."""
        actions = {JobKind.FORGET: self.forget, JobKind.PRUNE: self.prune,
                   JobKind.CHECK: self.check}
        if kind not in actions:
            raise ValueError(f"{kind.value} is not a job on a whole repository")
        action = actions[kind]
        seconds = timeout.total_seconds() * RESTIC_SHARE_OF_TIMEOUT

        async def run() -> JobOutcome:
            return await action(deadline=seconds)

        return ScheduledJob(JobKey(self.tenant, kind, None, self.repository), run, timeout)

    async def prepare(self) -> Preparation:
        """Make sure the repository exists and remove its provably stale locks; JobFailed
        if it cannot be opened."""
        try:
            state = await self._restic.ensure_repository(self._policy.initialise_repository)
        except ResticError as error:
            raise JobFailed(f"the repository cannot be opened: {error.outcome.reason}") \
                from None
        if state is RepositoryState.INITIALISED:
            log.info("restic repository initialised", **self._fields())
        try:
            report = await self._restic.remove_stale_locks(self._is_holder_alive)
        except ResticError as error:
            # Nothing was removed; the job meets any lock itself and says whose it is.
            log.warning("restic locks could not be listed", **self._fields(),
                        reason=error.outcome.reason)
            return Preparation(state, (), f"locks could not be listed: {error.outcome.reason}")
        plan = report.plan
        if report.removed:
            log.warning("stale restic locks removed", **self._fields(),
                        locks=[lock[:8] for lock in report.removed], reason=plan.reason)
            self._metrics.backup_stale_locks_removed.labels(tenant=self.tenant).inc(
                len(report.removed))
        left = [lock[:8] for lock in plan.removes if lock not in report.removed]
        if plan.run and (report.outcome is None or not report.outcome.ok or left):
            # The job goes on: restic waits on what is left and then names it.
            log.warning("restic unlock failed", **self._fields(), locks_left=left,
                        reason=report.outcome.reason if report.outcome else plan.reason)
        elif not plan.run and plan.judgements:
            log.info("restic locks left in place", **self._fields(), reason=plan.reason,
                     locks=[judgement.reason for judgement in plan.judgements])
        return Preparation(state, report.removed, plan.reason)

    async def forget(self, *, deadline: float | None = None) -> JobOutcome:
        """Apply the policy's retention to the tenant's snapshots; prune is separate."""
        end = _end(deadline)
        await self.prepare()
        await self._forget(end)
        return JobOutcome()

    async def prune(self, *, deadline: float | None = None) -> JobOutcome:
        """The policy's prune job: forget with the retention, then prune the repository."""
        end = _end(deadline)
        await self.prepare()
        removed = await self._forget(end)
        outcome = await self._restic.prune(deadline=_remaining(end))
        if not outcome.ok:
            after = (f" (after forgetting {removed} snapshot{'s' if removed != 1 else ''})"
                     if removed else "")
            raise JobFailed(_reason(outcome) + after)
        log.info("repository pruned", **self._fields(), forgotten=removed)
        return JobOutcome()

    async def check(self, *, deadline: float | None = None) -> JobOutcome:
        """Verify the repository, reading the policy's read-data subset; a failure raises
        the tenant's verification alert until a later check passes."""
        end = _end(deadline)
        subset = self._policy.check.read_data_subset if self._policy.check else None
        try:
            await self.prepare()
            result = await self._restic.check(subset, deadline=_remaining(end))
            if not result.outcome.ok:
                reason = check_failure_reason(result)
                raise JobFailed(reason + LOCK_ADVICE if result.outcome.kind
                                is OutcomeKind.LOCKED else reason)
        except JobFailed as failure:
            self._alerts.failed(self.tenant, JobKind.CHECK, failure.reason,
                                repository=self.repository)
            raise
        except Exception as error:
            # Not understood here (run_recorded logs its traceback), but still no proof
            # that the repository is sound.
            self._alerts.failed(self.tenant, JobKind.CHECK,
                                f"{type(error).__name__}: {error}",
                                repository=self.repository)
            raise
        self._alerts.passed(self.tenant, JobKind.CHECK, self._clock())
        log.info("repository verified", **self._fields(), read_data_subset=subset)
        return JobOutcome()

    async def _forget(self, end: float | None) -> int:
        """Forget by the retention; how many snapshots went. No retention keeps all."""
        retention = self._policy.retention
        if retention is None:
            log.info("no retention: every snapshot is kept", **self._fields())
            return 0
        rules = keep_rules(retention)
        result = await self._restic.forget(rules, self._selection, group_by=DEFAULT_GROUP_BY,
                                           deadline=_remaining(end))
        if not result.outcome.ok:
            raise JobFailed(_reason(result.outcome))
        kept = sum(len(group.keep) for group in result.groups)
        log.info("snapshots forgotten", **self._fields(), removed=len(result.removed),
                 kept=kept, groups=len(result.groups), rules=describe_rules(rules))
        return len(result.removed)

    def _fields(self) -> dict[str, str]:
        return {"tenant": self.tenant, "repository": self.repository}


def _reason(outcome: Outcome) -> str:
    return outcome.reason + LOCK_ADVICE if outcome.kind is OutcomeKind.LOCKED \
        else outcome.reason


def _end(deadline: float | None) -> float | None:
    return None if deadline is None else time.monotonic() + deadline


def _remaining(end: float | None) -> float:
    """restic's deadline for the next step: what is left of the job's, or its default."""
    if end is None:
        return JOB_TIMEOUT
    return max(end - time.monotonic(), _SHORTEST_DEADLINE)
