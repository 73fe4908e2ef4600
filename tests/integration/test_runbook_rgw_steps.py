"""The RGW steps of the runbook library on the real lab, run as site b's daemon runs
them (ConfiguredSites from b's config, whose rgw section the lab writes): a planned
move of the master zone from a to b and back, a failover to b with a's gateway dead
(forced) and the failback to a, and a tenant-scoped run that leaves the zone alone.

Each proves by data: the new master accepts a new bucket (only a master creates one),
and every object written on either side is on every zone with its ETag. It shares the
session's lab and leaves it as it found it: zone a master, every gateway running.
"""

import asyncio
import secrets
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from drd.ceph.rgw_admin import RgwAdmin
from drd.ceph.rgw_failback import failback_zone
from drd.ceph.rgw_failover import RgwZone, current_period
from drd.ceph.rgw_multisite import ensure_user
from drd.config.site_loader import load_site_config
from drd.domain.rgw_failover import PeriodInfo
from drd.domain.runbook import Runbook, RunbookKind, RunTarget
from drd.domain.runbook_steps import AnyStep
from drd.lab.description import LabDescription, SiteRecord
from drd.lab.rgw_gateways import LabGateways, lab_zones
from drd.lab.rgw_lab import LAB_CITY, read_system_keys
from drd.runbooks.library import step_executors
from drd.runbooks.sites import ConfiguredSites
from drd.runbooks.step_api import StepContext
from tests.integration.rgw_helpers import wait_metadata
from tests.integration.s3_objects import (
    Written,
    first_write,
    s3_client,
    wait_listed,
    write_objects,
)

pytestmark = pytest.mark.timeout(900)

TENANT_UID = "water"
SYNC_DEADLINE_S = 120.0
WRITABLE_DEADLINE_S = 60.0
EXECUTORS = step_executors()


@pytest.fixture
def zones(lab: LabDescription) -> Iterator[dict[str, RgwZone]]:
    """The lab's zones; afterwards a is master again and every gateway runs."""
    zones = lab_zones(lab)
    yield zones
    gateways = LabGateways(lab.dir)
    keys_file = lab.rgw_system_keys_file
    assert keys_file is not None
    if current_period(zones["b"], LAB_CITY).master_zone != "a":
        failback_zone(zones["a"], [zones["b"], zones["c"]], LAB_CITY,
                      read_system_keys(keys_file), gateways)
    for name in zones:
        if not gateways.running(name):
            gateways.restart(name)


@pytest.fixture
def sites(lab: LabDescription) -> Iterator[ConfiguredSites]:
    config = lab.sites["b"].drd_config
    assert config is not None
    access = ConfiguredSites(load_site_config(config))
    yield access
    access.close()


def _step(step_type: str, site: str) -> AnyStep:
    runbook = Runbook.model_validate({"name": "one", "source": "a", "target": "b", "groups": [
        {"name": "g", "steps": [{"name": "s", "type": step_type,
                                 "params": {"site": site}}]}]})
    return runbook.steps()[0][1]


def _context(sites: ConfiguredSites, kind: RunbookKind, source: str, target: str,
             tenants: tuple[str, ...] | None = None) -> StepContext:
    return StepContext(run_id=1, kind=kind, target=RunTarget(source, target, tenants),
                       policies={}, sites=sites, facts={}, now=lambda: datetime.now(UTC))


def _run(step: AnyStep, context: StepContext) -> tuple[StepContext, float]:
    started = time.monotonic()
    asyncio.run(EXECUTORS[step.type].run(step, context))
    return context, time.monotonic() - started


def _plan(step: AnyStep, context: StepContext) -> list[str]:
    return asyncio.run(EXECUTORS[step.type].plan(step, context))


def _url(site: SiteRecord) -> str:
    assert site.rgw_url is not None
    return site.rgw_url


def _periods(zones: dict[str, RgwZone]) -> dict[str, PeriodInfo]:
    return {name: current_period(zone, LAB_CITY) for name, zone in zones.items()}


def _clients(lab: LabDescription) -> dict[str, Any]:
    tenant = ensure_user(RgwAdmin(lab.sites["a"].conf), TENANT_UID, "Water authority")
    wait_metadata([lab.sites["b"], lab.sites["c"]], "user", "info", "--uid", TENANT_UID)
    return {name: s3_client(_url(site), tenant) for name, site in lab.sites.items()}


def _on_every_zone(clients: dict[str, Any], bucket: str, written: Written) -> None:
    for client in clients.values():
        wait_listed(client, bucket, written, SYNC_DEADLINE_S)


def _fact_period(context: StepContext, which: str) -> dict[str, Any]:
    period = context.output.facts[which]
    assert isinstance(period, dict)
    return period


def test_a_tenant_scoped_run_leaves_the_master_zone_alone(
        lab: LabDescription, zones: dict[str, RgwZone], sites: ConfiguredSites) -> None:
    before = _periods(zones)
    for step_type in ("rgw_zone_promote", "rgw_zone_failback"):
        step = _step(step_type, "target")
        context, _ = _run(step, _context(sites, RunbookKind.SWITCHOVER, "a", "b",
                                         ("water",)))
        assert "only a run of all tenants moves it" in context.output.facts["skipped"]
    assert _periods(zones) == before


def test_a_planned_move_to_b_and_back_keeps_every_object_on_every_zone(
        lab: LabDescription, zones: dict[str, RgwZone], sites: ConfiguredSites) -> None:
    clients = _clients(lab)
    bucket = f"water-steps-{secrets.token_hex(3)}"
    clients["a"].create_bucket(Bucket=bucket)
    wait_metadata([lab.sites["b"], lab.sites["c"]], "bucket", "stats", "--bucket", bucket)
    on_a = write_objects(clients["a"], bucket, "before", 16, seed=21)
    _on_every_zone(clients, bucket, on_a)

    promote = _step("rgw_zone_promote", "target")
    planned = _plan(promote, _context(sites, RunbookKind.SWITCHOVER, "a", "b"))
    print("\n".join(planned))
    assert planned[0].startswith("make zone b (site b) master; master now a")
    assert planned[1].startswith("  master zone a answers at http://")
    assert _periods(zones)["b"].master_zone == "a"  # planning changed nothing

    context, took = _run(promote, _context(sites, RunbookKind.SWITCHOVER, "a", "b"))
    print("\n".join(context.output.lines) + f"\nrgw_zone_promote b: {took:.1f} s")
    facts = context.output.facts
    assert facts["changed"] and not facts["forced"] and not facts["force_allowed"]
    assert (_fact_period(context, "period_before")["master"],
            _fact_period(context, "period_after")["master"]) == ("a", "b")
    new_bucket = f"{bucket}-on-b"
    print(f"b accepted a new bucket {first_write(clients['b'], new_bucket, 60):.1f} s "
          f"after the step")
    on_b = write_objects(clients["b"], bucket, "on-b", 8, seed=22)
    in_new = write_objects(clients["b"], new_bucket, "on-b", 4, seed=23)

    again, _ = _run(promote, _context(sites, RunbookKind.SWITCHOVER, "a", "b"))
    assert not again.output.facts["changed"]
    assert again.output.lines[-1].startswith("zone b is already master of period")

    failback = _step("rgw_zone_failback", "target")
    back_plan = _plan(failback, _context(sites, RunbookKind.FAILBACK, "b", "a"))
    print("\n".join(back_plan))
    assert back_plan[0] == "fail zone a (site a) back from master b"
    context, took = _run(failback, _context(sites, RunbookKind.FAILBACK, "b", "a"))
    print("\n".join(context.output.lines) + f"\nrgw_zone_failback a: {took:.1f} s")
    assert context.output.facts["previous_master"] == "b"
    assert _fact_period(context, "period_after")["master"] == "a"
    assert {p.master_zone for p in _periods(zones).values()} == {"a"}
    first_write(clients["a"], f"{bucket}-back-on-a", WRITABLE_DEADLINE_S)

    _on_every_zone(clients, bucket, {**on_a, **on_b})
    _on_every_zone(clients, new_bucket, in_new)
    repeated, _ = _run(failback, _context(sites, RunbookKind.FAILBACK, "b", "a"))
    assert not repeated.output.facts["changed"]


def test_a_failover_with_as_gateway_dead_is_forced_and_the_failback_keeps_bs_writes(
        lab: LabDescription, zones: dict[str, RgwZone], sites: ConfiguredSites) -> None:
    clients = _clients(lab)
    gateways = LabGateways(lab.dir)
    bucket = f"water-fo-{secrets.token_hex(3)}"
    clients["a"].create_bucket(Bucket=bucket)
    wait_metadata([lab.sites["b"], lab.sites["c"]], "bucket", "stats", "--bucket", bucket)
    on_a = write_objects(clients["a"], bucket, "before-crash", 12, seed=31)
    _on_every_zone(clients, bucket, on_a)

    killed_at = time.monotonic()
    gateways.kill("a")
    promote = _step("rgw_zone_promote", "target")
    planned = _plan(promote, _context(sites, RunbookKind.FAILOVER, "a", "b"))
    assert planned[1].startswith("  master zone a does not answer at http://")
    context, took = _run(promote, _context(sites, RunbookKind.FAILOVER, "a", "b"))
    print("\n".join(context.output.lines) + f"\nforced rgw_zone_promote b: {took:.1f} s")
    assert context.output.facts["force_allowed"] and context.output.facts["forced"]
    new_bucket = f"{bucket}-on-b"
    first_write(clients["b"], new_bucket, WRITABLE_DEADLINE_S)
    print(f"b accepted a new bucket {time.monotonic() - killed_at:.1f} s after a's "
          f"gateway died")
    on_b = write_objects(clients["b"], bucket, "after-failover", 8, seed=32)
    in_new = write_objects(clients["b"], new_bucket, "after-failover", 4, seed=33)

    # Site a is back with its gateway still down: the failback pulls the realm first,
    # then starts it (drd.ceph.rgw_failback says why).
    failback = _step("rgw_zone_failback", "target")
    context, took = _run(failback, _context(sites, RunbookKind.FAILBACK, "b", "a"))
    print("\n".join(context.output.lines) + f"\nrgw_zone_failback a: {took:.1f} s")
    assert context.output.facts["steps"][:2] == ["realm pull", "start gateways"]
    assert all(gateways.running(zone) for zone in ("a", "b", "c"))
    assert {p.master_zone for p in _periods(zones).values()} == {"a"}
    _on_every_zone(clients, bucket, {**on_a, **on_b})
    _on_every_zone(clients, new_bucket, in_new)
