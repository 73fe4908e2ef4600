"""Which repair drd advises for a stuck bucket, and when it may run it itself."""

import pytest

from drd.domain.bucket_repair import parse_ceph_release, repair_advice, sync_run_hazard

PACIFIC = "ceph version 16.2.15 (618f440892089921c3e944a991122ddc44e60516) pacific (stable)"
COMMAND = "radosgw-admin -c /etc/ceph/b.conf bucket sync run --bucket=docs --source-zone=a"

def test_the_release_is_read_from_radosgw_admin_version() -> None:
    assert parse_ceph_release(PACIFIC) == (16, 2, 15)
    assert parse_ceph_release("ceph version 19.2.1 (abc) squid (stable)") == (19, 2, 1)
    assert parse_ceph_release("radosgw-admin: command not found") is None

def test_without_a_running_gateway_the_fix_is_to_start_one_and_drd_never_does() -> None:
    found = repair_advice(zone="b", site="b", gateways_running=False, hazard=None,
                          sync_run_command=COMMAND)
    assert found.text.startswith("start a radosgw of zone b on site b")
    assert not found.automatic
    assert found.refusal is not None and "service manager" in found.refusal

def test_on_pacific_bucket_sync_run_is_neither_advised_nor_run() -> None:
    found = repair_advice(zone="b", site="b", gateways_running=True,
                          hazard=sync_run_hazard(parse_ceph_release(PACIFIC)),
                          sync_run_command=COMMAND)
    assert found.text.startswith("restart the radosgw of zone b on site b")
    assert "16.2.15" in found.text and "do not use `bucket sync run`" in found.text
    assert not found.automatic
    assert found.refusal is not None and "skips every incremental entry" in found.refusal

@pytest.mark.parametrize("text", ["", "ceph version unknown"])
def test_an_unknown_release_is_never_trusted_with_an_automatic_repair(text: str) -> None:
    found = repair_advice(zone="b", site="b", gateways_running=True,
                          hazard=sync_run_hazard(parse_ceph_release(text)),
                          sync_run_command=COMMAND)
    assert not found.automatic
    assert found.refusal == "the destination's Ceph release is unknown"

def test_a_release_not_known_to_skip_entries_gets_bucket_sync_run_automatically() -> None:
    found = repair_advice(zone="b", site="b", gateways_running=True,
                          hazard=sync_run_hazard(parse_ceph_release(
                              "ceph version 18.2.4 (e7ad) reef (stable)")),
                          sync_run_command=COMMAND)
    assert found.text == COMMAND
    assert found.automatic
    assert found.refusal is None
