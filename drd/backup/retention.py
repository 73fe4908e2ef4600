"""Which snapshots in a repository are a tenant's, and the keep rules its policy gives them.
Pure.

A repository may hold several tenants' snapshots (the shared default repository at the
remote site), so every job that acts on snapshots selects the tenant's by the tag drd
writes on each of them, `drd:tenant=<tenant>`; a tenant's own tags cannot take that
form (restic_values keeps the `drd:` prefix for drd). Backups must write this tag, or
retention and metering never see their snapshots.

Retention groups by host and path (restic_argv.DEFAULT_GROUP_BY), never by tags: one
source is one stdin filename under one host, and its history must stay one group when
the tenant edits the policy's tags.
"""

from datetime import timedelta

from drd.backup.restic_argv import KeepRules, SnapshotFilter, keep_within
from drd.domain.access import TENANT_NAME
from drd.domain.backup_policy import Retention

TENANT_TAG_PREFIX = "drd:tenant="


def tenant_tag(tenant: str) -> str:
    """The tag drd writes on every snapshot it makes for `tenant`."""
    if not TENANT_NAME.match(tenant):
        raise ValueError(f"tenant name {tenant!r} must match {TENANT_NAME.pattern}")
    return TENANT_TAG_PREFIX + tenant


def tenant_selection(tenant: str) -> SnapshotFilter:
    """The tenant's snapshots in a repository, whoever else keeps snapshots there."""
    return SnapshotFilter(tags=(tenant_tag(tenant),))


def keep_rules(retention: Retention) -> KeepRules:
    """restic's --keep-* rules for a policy's retention. A count of 0 is no rule, as in
    the policy; the policy refuses a retention that keeps nothing, so this never returns
    an empty KeepRules (with which restic forget would keep everything, or refuse)."""
    rules = retention.rules()

    def count(name: str) -> int | None:
        value = rules.get(name)
        return value if isinstance(value, int) else None

    within = rules.get("keep_within")
    return KeepRules(last=count("keep_last"), hourly=count("keep_hourly"),
                     daily=count("keep_daily"), weekly=count("keep_weekly"),
                     monthly=count("keep_monthly"), yearly=count("keep_yearly"),
                     within=within if isinstance(within, timedelta) else None)


def describe_rules(rules: KeepRules) -> str:
    """The rules as an operator reads them in a log: `daily 3, weekly 2, within 2d`."""
    parts = [f"{name} {count}" for name, count in (
        ("last", rules.last), ("hourly", rules.hourly), ("daily", rules.daily),
        ("weekly", rules.weekly), ("monthly", rules.monthly), ("yearly", rules.yearly))
        if count is not None]
    if rules.within is not None:
        parts.append(f"within {keep_within(rules.within)}")
    return ", ".join(parts) or "no rules"
