"""Rules a tenant policy must meet on one platform: the site config's tenants, grants and
limits, and the backup password file's mode. Pure: the file's status comes from a `stat`
function the caller passes in; the loader attaches line numbers to what these return."""

import stat as stat_bits
from collections.abc import Iterator
from datetime import timedelta
from pathlib import PurePosixPath

from drd.domain.backup_policy import BackupJob, BackupPolicy
from drd.domain.backup_schedule import runs_per_day
from drd.domain.durations import format_duration
from drd.domain.policy_names import image_spec
from drd.domain.rules import FieldPath, RuleViolation, StatFile, private_file_issues
from drd.domain.site_config import SiteConfig
from drd.domain.tenant_grants import EVERY_NAMESPACE, PoolGrant, TenantGrants
from drd.domain.tenant_policy import BlockSelection, TenantPolicy

# Where each job's schedule sits in a policy, and the limit on its runs a day.
_JOB_PLACES: dict[BackupJob, tuple[FieldPath, str, str]] = {
    BackupJob.BACKUP: (("backup", "schedule"), "max_backups_per_day", "backups"),
    BackupJob.PRUNE: (("backup", "prune", "schedule"), "max_prunes_per_day", "prunes"),
    BackupJob.CHECK: (("backup", "check", "schedule"), "max_checks_per_day", "checks"),
    BackupJob.RESTORE_TEST: (("backup", "restore_test", "schedule"),
                             "max_restore_tests_per_day", "restore tests"),
}


def policy_platform_issues(policy: TenantPolicy, config: SiteConfig) -> list[RuleViolation]:
    """Every way `policy` oversteps what the site config grants its tenant or allows."""
    issues: list[RuleViolation] = []
    tenants = config.tenants
    known = policy.tenant in tenants
    if not known:
        listed = ", ".join(sorted(tenants)) or "none"
        issues.append(RuleViolation(
            ("tenant",),
            f"tenant {policy.tenant!r} is not known to site {config.site.name!r} (tenants: "
            f"{listed}); the platform operator adds it under tenants: in the site config"))
    for index, selection in enumerate(policy.protection.block):
        path: FieldPath = ("protection", "block", index)
        if known:
            issues += _grant_issues(policy.tenant, selection.pool, selection.namespace,
                                    tenants[policy.tenant].grants, path)
        issues += _limit_issues(selection, config, path)
    minimum = config.limits.min_sync_lag_target
    for index, objects in enumerate(policy.protection.object):
        for name, destination in (("same_city", objects.same_city),
                                  ("remote", objects.remote)):
            if destination is not None and destination.lag_target < minimum:
                issues.append(RuleViolation(
                    ("protection", "object", index, name, "lag_target"),
                    _too_short(destination.lag_target, "sync-lag target", minimum,
                               "min_sync_lag_target", config)))
    if policy.backup is not None:
        grants = tenants[policy.tenant] if known else None
        issues += _backup_issues(policy.tenant, policy.backup, grants, config)
    return issues


def password_file_issues(policy: TenantPolicy, stat: StatFile) -> list[RuleViolation]:
    """The backup password file must be a regular file only its owner may read or write
    (0600, or stricter), since it unlocks every snapshot of the tenant."""
    if policy.backup is None:
        return []
    path = policy.backup.password_file
    issues, mode = private_file_issues(
        path, ("backup", "password_file"), stat,
        missing="the platform operator puts it on every site that runs this tenant's "
                "backups, mode 0600", guards="the repository password")
    if not issues and mode is not None and not mode & stat_bits.S_IRUSR:
        issues.append(RuleViolation(("backup", "password_file"),
                                    f"{path} is mode {mode:04o}, so not even its owner "
                                    f"may read it; make it 0600: chmod 600 {path}"))
    return issues


def _backup_issues(tenant: str, backup: BackupPolicy, grants: TenantGrants | None,
                   config: SiteConfig) -> Iterator[RuleViolation]:
    for index, source in enumerate(backup.sources):
        path: FieldPath = ("backup", "sources", index)
        if grants is not None and source.pool is not None:
            yield from _grant_issues(tenant, source.pool, source.namespace, grants.grants,
                                     path)
        for path_index, source_path in enumerate(source.paths or ()):
            if grants is not None and not any(
                    PurePosixPath(source_path).is_relative_to(allowed)
                    for allowed in grants.backup_paths):
                granted = ", ".join(str(p) for p in grants.backup_paths) or "none"
                yield RuleViolation((*path, "paths", path_index),
                                    f"tenant {tenant!r} may not back up {source_path}; the "
                                    f"site config grants it these directories: {granted} "
                                    f"(tenants.{tenant}.backup_paths)")
    if backup.repository is None and config.default_repository(tenant) is None:
        yield RuleViolation(("backup", "repository"),
                            f"required on site {config.site.name!r}: its site config names "
                            f"no place for tenants' repositories (backup.repositories), "
                            f"so give this policy its own")
    for job, schedule in backup.schedules().items():
        place, key, what = _JOB_PLACES[job]
        most: int = getattr(config.limits, key)
        runs = runs_per_day(schedule.cron)
        if runs > most:
            yield RuleViolation((*place, "cron"),
                                f"'{schedule.cron}' runs {runs} {what} a day; site "
                                f"{config.site.name!r} allows at most {most} "
                                f"(limits.{key} in its site config)")


def _grant_issues(tenant: str, pool: str, namespace: str, grants: tuple[PoolGrant, ...],
                  path: FieldPath) -> list[RuleViolation]:
    if any(grant.allows(pool, namespace) for grant in grants):
        return []
    pool_granted = any(grant.pool == pool for grant in grants)
    where = (*path, "namespace") if pool_granted else (*path, "pool")
    granted = ", ".join(_place(grant.pool, grant.namespace) for grant in grants) or "nothing"
    return [RuleViolation(where, f"tenant {tenant!r} may not select images in "
                                 f"{_place(pool, namespace)}; the site config grants it: "
                                 f"{granted}")]


def _place(pool: str, namespace: str) -> str:
    if namespace == EVERY_NAMESPACE:
        return f"{pool}/* (every namespace)"
    if not namespace:
        return f"{pool} (default namespace)"
    return image_spec(pool, namespace)


def _limit_issues(selection: BlockSelection, config: SiteConfig,
                  path: FieldPath) -> Iterator[RuleViolation]:
    limits = config.limits
    for name, destination in (("same_city", selection.same_city),
                              ("remote", selection.remote)):
        if destination is None:
            continue
        interval = destination.interval
        if interval is not None and interval < limits.min_snapshot_interval:
            yield RuleViolation((*path, name, "interval"), _too_short(
                interval, "snapshot interval", limits.min_snapshot_interval,
                "min_snapshot_interval", config))
        if destination.rpo_target < limits.min_rpo_target:
            yield RuleViolation((*path, name, "rpo_target"), _too_short(
                destination.rpo_target, "RPO target", limits.min_rpo_target,
                "min_rpo_target", config))


def _too_short(value: timedelta, what: str, minimum: timedelta, key: str,
               config: SiteConfig) -> str:
    return (f"{format_duration(value)} is shorter than the shortest {what} site "
            f"{config.site.name!r} allows, {format_duration(minimum)} "
            f"(limits.{key} in its site config)")
