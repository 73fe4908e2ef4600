"""Rules a tenant policy must meet on one platform: the site config's tenants, grants and
limits. Pure; the loader attaches line numbers to what `policy_platform_issues` returns."""

from collections.abc import Iterator
from datetime import timedelta

from drd.domain.durations import format_duration
from drd.domain.policy_names import image_spec
from drd.domain.rules import FieldPath, RuleViolation
from drd.domain.site_config import SiteConfig
from drd.domain.tenant_grants import EVERY_NAMESPACE, PoolGrant
from drd.domain.tenant_policy import BlockSelection, TenantPolicy


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
            issues += _grant_issues(policy.tenant, selection, tenants[policy.tenant].grants,
                                    path)
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
    return issues


def _grant_issues(tenant: str, selection: BlockSelection, grants: tuple[PoolGrant, ...],
                  path: FieldPath) -> list[RuleViolation]:
    if any(grant.allows(selection.pool, selection.namespace) for grant in grants):
        return []
    pool_granted = any(grant.pool == selection.pool for grant in grants)
    where = (*path, "namespace") if pool_granted else (*path, "pool")
    granted = ", ".join(_place(grant.pool, grant.namespace) for grant in grants) or "nothing"
    return [RuleViolation(where, f"tenant {tenant!r} may not select images in "
                                 f"{_place(selection.pool, selection.namespace)}; the site "
                                 f"config grants it: {granted}")]


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
