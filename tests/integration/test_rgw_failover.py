"""RGW failover and failback on the real lab: zone a's gateway dies, b takes over, a
comes back and takes over again, and no object written on either side is lost.

Site a comes back with its gateway still down, and failback starts it after pulling the
realm: a gateway that restarts on its own runs as master of its stale period for a few
seconds and silently drops the objects of buckets created on b meanwhile (measured
here; see drd.ceph.rgw_failback).

It shares the session's lab, and leaves it as it found it: zone a master, every gateway
running. If it fails halfway, its fixture restarts a's gateway and fails back to a
before the next test runs.
"""

import secrets
import time
from collections.abc import Iterator

import pytest

from drd.ceph.rgw_admin import RgwAdmin, S3Keys
from drd.ceph.rgw_failback import failback_zone
from drd.ceph.rgw_failover import PromotionRefused, RgwZone, current_period, promote_zone
from drd.ceph.rgw_multisite import ensure_user
from drd.domain.rgw_failover import CatchUpVerdict
from drd.lab.description import LabDescription, SiteRecord
from drd.lab.rgw_gateways import LabGateways, lab_zones
from drd.lab.rgw_lab import LAB_CITY, read_system_keys
from tests.integration.rgw_helpers import wait_metadata
from tests.integration.s3_objects import (
    first_write,
    listing,
    s3_client,
    sha256_mismatches,
    wait_listed,
    write_objects,
)

pytestmark = pytest.mark.timeout(600)

TENANT_UID = "transport"
SYNC_DEADLINE_S = 120.0
WRITABLE_DEADLINE_S = 60.0


@pytest.fixture
def zones(lab: LabDescription) -> Iterator[dict[str, RgwZone]]:
    """The lab's zones; afterwards a is master again and every gateway runs."""
    zones = lab_zones(lab)
    yield zones
    gateways = LabGateways(lab.dir)
    if current_period(zones["b"], LAB_CITY).master_zone != "a":
        failback_zone(zones["a"], [zones["b"], zones["c"]], LAB_CITY, _system_keys(lab),
                      gateways)
    for name in zones:
        if not gateways.running(name):
            gateways.restart(name)


def _system_keys(lab: LabDescription) -> S3Keys:
    assert lab.rgw_system_keys_file is not None
    return read_system_keys(lab.rgw_system_keys_file)


def _url(site: SiteRecord) -> str:
    assert site.rgw_url is not None
    return site.rgw_url


def test_zone_b_takes_over_when_a_dies_and_a_takes_back_with_every_object(
        lab: LabDescription, zones: dict[str, RgwZone]) -> None:
    a, b, c = lab.sites["a"], lab.sites["b"], lab.sites["c"]
    gateways = LabGateways(lab.dir)
    tenant = ensure_user(RgwAdmin(a.conf), TENANT_UID, "Transport bureau")
    on_a, on_b = s3_client(_url(a), tenant), s3_client(_url(b), tenant)
    bucket = f"transport-fo-{secrets.token_hex(3)}"
    wait_metadata([b, c], "user", "info", "--uid", TENANT_UID)
    on_a.create_bucket(Bucket=bucket)
    wait_metadata([b, c], "bucket", "stats", "--bucket", bucket)
    before_crash = write_objects(on_a, bucket, "before-crash", 24, seed=7, big=6 * 2**20 + 3)
    wait_listed(on_b, bucket, before_crash, SYNC_DEADLINE_S)
    period_a = current_period(zones["b"], LAB_CITY)
    assert period_a.master_zone == "a"

    # Zone a's gateway dies; nothing else of site a does.
    killed_at = time.monotonic()
    gateways.kill("a")

    # Unforced, b refuses: with a's gateway gone, Ceph cannot tell whether b has every
    # metadata change a made, and the refusal changes nothing.
    with pytest.raises(PromotionRefused) as refused:
        promote_zone(zones["b"], LAB_CITY, gateways)
    assert refused.value.catch_up.verdict is CatchUpVerdict.UNKNOWN
    assert "failed to fetch master sync status" in str(refused.value)
    assert current_period(zones["b"], LAB_CITY) == period_a

    promoted = promote_zone(zones["b"], LAB_CITY, gateways, force=True)
    new_bucket = f"{bucket}-on-b"
    first_write(on_b, new_bucket, WRITABLE_DEADLINE_S)
    writable_s = time.monotonic() - killed_at
    print(f"zone b accepted a new bucket and object {writable_s:.1f} s after a's gateway "
          f"died (promote {promoted.elapsed_s:.1f} s)")
    assert promoted.master_after == "b" and promoted.forced
    assert promoted.period_before == period_a
    assert promoted.period_after.realm_epoch == period_a.realm_epoch + 1
    assert [s.name for s in promoted.steps] == [
        "check metadata", "zone modify", "commit period", "gateways reload"]
    again = promote_zone(zones["b"], LAB_CITY, gateways, force=True)
    assert not again.changed and again.period_after == promoted.period_after
    assert str(again.steps[0]).startswith("check master on zone b: already master of period")

    # What a synced before it died is whole on b, and b takes writes of its own.
    assert sha256_mismatches(on_b, bucket, before_crash) == []
    on_b_only = write_objects(on_b, bucket, "after-failover", 12, seed=8)
    in_new_bucket = write_objects(on_b, new_bucket, "after-failover", 6, seed=9)

    # Site a is back, its gateway not yet: failback pulls the realm, then starts it, so
    # that it never runs as master of its stale period (see drd.ceph.rgw_failback).
    failback = failback_zone(zones["a"], [zones["b"], zones["c"]], LAB_CITY,
                             _system_keys(lab), gateways)
    print(f"failback to a in {failback.elapsed_s:.1f} s: "
          + "; ".join(f"{s} [{s.elapsed_s:.1f} s]" for s in failback.steps))
    assert failback.master_after == "a" and failback.previous_master == "b"
    assert failback.period_before == promoted.period_after
    assert failback.period_after.realm_epoch == promoted.period_after.realm_epoch + 1
    names = [s.name for s in failback.steps]
    assert names[:3] == ["realm pull", "start gateways", "catch up"]
    assert names[-2:] == ["zone follows", "zone follows"]
    for zone in ("a", "b", "c"):
        assert current_period(zones[zone], LAB_CITY) == failback.period_after, zone

    # Everything written on b while it was master is on a, byte for byte.
    wait_listed(on_a, bucket, {**before_crash, **on_b_only}, SYNC_DEADLINE_S)
    wait_listed(on_a, new_bucket, in_new_bucket, SYNC_DEADLINE_S)
    assert sha256_mismatches(on_a, bucket, {**before_crash, **on_b_only}) == []
    assert sha256_mismatches(on_a, new_bucket, in_new_bucket) == []
    assert "first" in listing(on_a, new_bucket)

    repeated = failback_zone(zones["a"], [zones["b"], zones["c"]], LAB_CITY,
                             _system_keys(lab), gateways)
    assert not repeated.changed and repeated.period_after == failback.period_after
    assert all(gateways.running(zone) for zone in ("a", "b", "c"))
