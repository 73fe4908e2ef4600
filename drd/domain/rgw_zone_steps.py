"""The RGW zone steps' decisions and records: whether a run may move the master zone at
all, whether a promotion is forced, what a plan says, and the facts a run journals. Pure.

The master zone serves every tenant's buckets (bucket and user changes go through it),
so only a run of all tenants moves it. A promotion is forced only when the current
master's gateways do not answer: then Ceph cannot prove the zone caught up ("failed to
fetch master sync status"), as in a failover. While they answer, the zone is promoted
only once it has caught up, and a refusal fails the step (a retry may then succeed).
"""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from drd.domain.rgw_failover import (
    FailbackResult,
    FailoverStep,
    MetadataCatchUp,
    PeriodInfo,
    PromoteAction,
    PromoteResult,
    decide_promotion,
)


def scope_skip(tenants: Sequence[str] | None) -> str | None:
    """Why an RGW zone step does nothing in a run scoped to some tenants; None for all."""
    if tenants is None:
        return None
    return (f"nothing to do: this run is scoped to tenant(s) {', '.join(tenants)}, and the "
            f"RGW master zone serves every tenant's buckets; only a run of all tenants "
            f"moves it")


@dataclass(frozen=True)
class PromoteMode:
    force: bool
    reason: str


def promotion_mode(zone: str, master: str, endpoints: Sequence[str],
                   master_answers: bool) -> PromoteMode:
    """Force the promotion of `zone` only when the master's gateways do not answer."""
    if zone == master:
        return PromoteMode(False, f"zone {zone} is already master")
    if not endpoints:
        return PromoteMode(False, f"the period lists no endpoint of master zone {master}, "
                                  f"so whether it is lost cannot be told: promoted only "
                                  f"once zone {zone} has caught up")
    where = ", ".join(endpoints)
    if master_answers:
        return PromoteMode(False, f"master zone {master} answers at {where}: a planned "
                                  f"promotion, only once zone {zone} has caught up with it")
    return PromoteMode(True, f"master zone {master} does not answer at {where}: its site "
                             f"is lost, so the promotion is forced (metadata changes zone "
                             f"{zone} lacks are lost)")


@dataclass(frozen=True)
class ZoneLook:
    """A zone as a promotion sees it now: the period its cluster holds and, unless it is
    master, how it would be promoted and Ceph's verdict on its metadata sync."""

    period: PeriodInfo
    mode: PromoteMode | None = None
    catch_up: MetadataCatchUp | None = None
    catch_up_error: str | None = None


def promote_plan(site: str, zone: str, look: ZoneLook) -> list[str]:
    """What `rgw_zone_promote` would do now."""
    period, mode = look.period, look.mode
    master = period.master_zone
    if zone == master or mode is None:
        return [f"zone {zone} (site {site}) is already master of {period}: nothing to do"]
    lines = [f"make zone {zone} (site {site}) master; master now {master}, {period}",
             f"  {mode.reason}"]
    if look.catch_up is None:
        lines.append(f"  zone {zone}'s sync cannot be read now ({look.catch_up_error})")
        return lines
    decision = decide_promotion(zone, master, look.catch_up, mode.force)
    verb = "would refuse now" if decision.action is PromoteAction.REFUSE else "would promote"
    lines.append(f"  {verb}: {decision.reason}")
    return lines


def failback_plan(site: str, zone: str, latest: PeriodInfo, *, running: bool,
                  catch_up: MetadataCatchUp | None, others: Sequence[str]) -> list[str]:
    """What `rgw_zone_failback` would do now."""
    following = ", ".join(others)
    if zone == latest.master_zone:
        return [f"zone {zone} (site {site}) is already master of {latest}: would only see "
                f"zones {following} run it"]
    master = latest.master_zone
    first = (f"its gateways run: wait until they take {latest} by push (pull the realm and "
             f"restart them if not within the push backoff)" if running else
             f"its gateways are down: pull the realm from zone {master}, then start them "
             f"as a secondary of {latest}")
    now = catch_up.reason if catch_up is not None else "cannot be read now"
    return [f"fail zone {zone} (site {site}) back from master {master}",
            f"  {first}",
            f"  wait until it has caught up with {master}: metadata, data and every bucket "
            f"(metadata now: {now})",
            f"  then promote it back, and see zones {following} follow"]


def period_fact(period: PeriodInfo) -> dict[str, Any]:
    return {"id": period.id, "epoch": period.epoch, "realm_epoch": period.realm_epoch,
            "master": period.master_zone}


def step_lines(steps: Sequence[FailoverStep]) -> list[str]:
    return [f"{step} [{step.elapsed_s:.1f} s]" for step in steps]


def promote_facts(site: str, result: PromoteResult, mode: PromoteMode,
                  finished: datetime) -> dict[str, Any]:
    """What a promotion journals: the periods, its time, whether it was forced."""
    facts = {"site": site, "zone": result.zone, "changed": result.changed,
             "period_before": period_fact(result.period_before),
             "period_after": period_fact(result.period_after),
             "seconds": round(result.elapsed_s, 3), "forced": result.forced,
             "force_allowed": mode.force, "why": mode.reason,
             "steps": [step.name for step in result.steps if step.changed]}
    if result.changed:
        facts["rgw_writable_at"] = finished.isoformat()
    return facts


def failback_facts(site: str, result: FailbackResult, finished: datetime) -> dict[str, Any]:
    """What a failback journals: the master before, the periods, its time."""
    facts = {"site": site, "zone": result.zone, "changed": result.changed,
             "previous_master": result.previous_master,
             "period_before": period_fact(result.period_before),
             "period_after": period_fact(result.period_after),
             "seconds": round(result.elapsed_s, 3),
             "steps": [step.name for step in result.steps if step.changed]}
    if result.changed:
        facts["rgw_writable_at"] = finished.isoformat()
    return facts


def failed_with(error: object, steps: Sequence[FailoverStep]) -> str:
    """An adapter's failure for the journal, with what it had done before it."""
    done = [str(step) for step in steps if step.changed]
    return f"{error}" + (f"; done before it: {'; '.join(done)}" if done else "")
