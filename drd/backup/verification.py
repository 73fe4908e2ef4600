"""Verification of tenants' backups as alerts: a failed check or restore test is raised
where an operator's alerting sees it, and stays raised until a later one passes.

The alert is the gauge `drd_backup_verification_failed{tenant,kind}` (kind `check` or
`restore_test`), 1 while the tenant's latest verification of that kind failed, with an
error-level log event `backup verification failed` carrying the reason each time one
fails. `drd_backup_last_verified_timestamp_seconds` says when one last passed, so a
verification that never runs (or never finishes) can be alerted on by its age.

Restore tests run per source; the alert of a kind stays up while any of the tenant's
sources failed its latest test, so one source passing never hides another failing.
After a restart, `restore` raises again whatever the state store's history says failed
last, so the alert does not vanish just because the daemon restarted.
"""

import asyncio
import contextlib
from collections.abc import Iterable
from datetime import datetime
from functools import partial

import structlog

from drd.api.metrics import DaemonMetrics
from drd.backup.restic_outcome import CheckResult
from drd.domain.backup_jobs import JobKind
from drd.state import BackupJobRecord, RunState, StateStore

log = structlog.get_logger()

VERIFICATIONS = (JobKind.CHECK, JobKind.RESTORE_TEST)
_ERROR_LIMIT = 300  # characters of restic's first error kept in a reason
_PACKS_NAMED = 3


def check_failure_reason(result: CheckResult) -> str:
    """Why a check failed, for the job history: restic's reason, the damaged packs it
    named, and its first error. Pure."""
    parts = [result.outcome.reason]
    summary = result.summary
    if summary is not None and summary.broken_packs:
        packs = summary.broken_packs
        named = ", ".join(pack[:8] for pack in packs[:_PACKS_NAMED])
        more = f" and {len(packs) - _PACKS_NAMED} more" if len(packs) > _PACKS_NAMED else ""
        parts.append(f"{len(packs)} damaged pack file{'s' if len(packs) != 1 else ''}: "
                     f"{named}{more}")
    if summary is not None and summary.suggest_repair_index:
        parts.append("restic suggests `restic repair index`")
    if result.errors:
        first = " ".join(result.errors[0].message.split())
        if len(first) > _ERROR_LIMIT:
            first = first[:_ERROR_LIMIT] + "..."
        parts.append(f"first error: {first}")
    return "; ".join(parts)


class VerificationAlerts:
    """The verification alert of every tenant of this daemon, in its metrics and log."""

    def __init__(self, metrics: DaemonMetrics) -> None:
        self._metrics = metrics
        # (tenant, kind) -> the sources whose latest verification failed, with the reason;
        # a check is of the whole repository, its source None.
        self._failing: dict[tuple[str, JobKind], dict[str | None, str]] = {}

    def failed(self, tenant: str, kind: JobKind, reason: str, *,
               source: str | None = None, repository: str | None = None) -> None:
        """A verification failed: raise the alert, and say so at error level."""
        _require_verification(kind)
        self._failing.setdefault((tenant, kind), {})[source] = reason
        self._metrics.backup_verification_failed.labels(tenant=tenant, kind=kind.value).set(1)
        log.error("backup verification failed", tenant=tenant, kind=kind.value, source=source,
                  repository=repository, reason=reason)

    def passed(self, tenant: str, kind: JobKind, at: datetime, *,
               source: str | None = None) -> None:
        """A verification passed at `at`: clear its part of the alert."""
        _require_verification(kind)
        failing = self._failing.get((tenant, kind), {})
        was_failing = failing.pop(source, None) is not None
        self._metrics.backup_verification_failed.labels(
            tenant=tenant, kind=kind.value).set(1 if failing else 0)
        self._metrics.backup_last_verified.labels(
            tenant=tenant, kind=kind.value).set(at.timestamp())
        if was_failing:
            log.info("backup verification passed again", tenant=tenant, kind=kind.value,
                     source=source, still_failing=sorted(s or "" for s in failing))

    def failing(self, tenant: str) -> dict[JobKind, dict[str | None, str]]:
        """What is failing for `tenant` now, by kind and source, with the reasons."""
        return {kind: dict(sources) for (name, kind), sources in self._failing.items()
                if name == tenant and sources}

    def restore(self, latest: Iterable[BackupJobRecord],
                last_passed: Iterable[BackupJobRecord]) -> None:
        """Set the alerts from history on start: `latest` is each verification job's latest
        run that the daemon's own stop did not cut short, `last_passed` its latest success
        (StateStore.latest_backup_jobs, with include_interrupted=False and state=SUCCEEDED)."""
        for record in latest:
            if record.kind not in VERIFICATIONS or record.state is RunState.RUNNING:
                continue
            key = (record.tenant, record.kind)
            labels = {"tenant": record.tenant, "kind": record.kind.value}
            if record.state is RunState.SUCCEEDED:
                self._failing.setdefault(key, {}).pop(record.source, None)
            else:
                self._failing.setdefault(key, {})[record.source] = record.reason or ""
                log.error("backup verification failed before the daemon started",
                          tenant=record.tenant, kind=record.kind.value, source=record.source,
                          run=record.id, reason=record.reason)
            self._metrics.backup_verification_failed.labels(**labels).set(
                1 if self._failing[key] else 0)
        newest: dict[tuple[str, JobKind], datetime] = {}
        for record in last_passed:
            key = (record.tenant, record.kind)
            if record.kind in VERIFICATIONS and record.finished_at is not None \
                    and (key not in newest or record.finished_at > newest[key]):
                newest[key] = record.finished_at  # of all its sources, the latest pass
        for (tenant, kind), at in newest.items():
            self._metrics.backup_last_verified.labels(tenant=tenant, kind=kind.value).set(
                at.timestamp())

    async def restore_from(self, store: StateStore) -> None:
        """`restore` from the state store; call it once on start, before jobs run."""
        latest = await asyncio.to_thread(
            partial(store.latest_backup_jobs, include_interrupted=False))
        passed = await asyncio.to_thread(
            partial(store.latest_backup_jobs, state=RunState.SUCCEEDED))
        self.restore(latest, passed)

    def remove(self, tenant: str) -> None:
        """Stop alerting for a tenant whose policy is gone."""
        for kind in VERIFICATIONS:
            self._failing.pop((tenant, kind), None)
            for gauge in (self._metrics.backup_verification_failed,
                          self._metrics.backup_last_verified):
                with contextlib.suppress(KeyError):  # never set
                    gauge.remove(tenant, kind.value)


def _require_verification(kind: JobKind) -> None:
    if kind not in VERIFICATIONS:
        raise ValueError(f"{kind.value} is not a verification; only check and restore_test are")
