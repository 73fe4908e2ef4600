"""A tenant's bucket selection on the real lab: drd measures each bucket's sync lag at
b and c from RGW's own logs, and refuses a policy that names another tenant's bucket."""

import hashlib
import json
import secrets
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from drd.ceph.rgw_admin import RgwAdmin
from drd.ceph.rgw_multisite import ensure_user
from drd.lab.description import LabDescription
from drd.lab.rgw_gateways import LabGateways
from tests.integration.rgw_helpers import s3_client, wait_metadata
from tests.integration.test_daemon import get_metrics
from tests.integration.test_replication import apply_policy, drd, eventually

pytestmark = pytest.mark.timeout(600)

RUN = secrets.token_hex(2)
OBJECTS = 30
POLICY = """\
tenant: water
protection:
  object:
    - name: documents
      buckets: ["{glob}"]
      same_city:
        lag_target: 1m
      remote:
        lag_target: 2m
"""


@pytest.fixture(scope="module")
def water_bucket(lab: LabDescription) -> Iterator[tuple[str, Any, dict[str, str]]]:
    """water's bucket on zone a, known to b and c, with objects: name -> sha256."""
    master = lab.sites["a"]
    assert master.rgw_url is not None
    client = s3_client(master.rgw_url, ensure_user(RgwAdmin(master.conf), "water", "Water"))
    secondaries = [site for name, site in lab.sites.items() if name != "a"]
    wait_metadata(secondaries, "user", "info", "--uid", "water")
    bucket = f"water-docs-{RUN}"
    client.create_bucket(Bucket=bucket)
    wait_metadata(secondaries, "bucket", "stats", "--bucket", bucket)
    written = {}
    for number in range(OBJECTS):
        body = secrets.token_bytes(1000 + number * 997)
        client.put_object(Bucket=bucket, Key=f"doc-{number:02d}", Body=body)
        written[f"doc-{number:02d}"] = hashlib.sha256(body).hexdigest()
    yield bucket, client, written


def bucket_rows(lab: LabDescription, bucket: str) -> dict[str, dict[str, Any]]:
    shown = drd(lab, "rpo", "--tenant", "water", "--json")
    assert shown.returncode in (0, 3), shown.stderr
    return {row["destination"]: row for row in json.loads(shown.stdout)["buckets"]
            if row["bucket"] == bucket}


def test_drd_measures_each_selected_buckets_lag_at_b_and_c(
        lab: LabDescription, tmp_path: Path,
        water_bucket: tuple[str, Any, dict[str, str]]) -> None:
    bucket, _, written = water_bucket
    applied = apply_policy(lab, tmp_path, "water", POLICY.format(glob=f"water-docs-{RUN}*"))
    assert applied.returncode == 0, applied.stderr

    def measured_and_caught_up() -> bool:
        rows = bucket_rows(lab, bucket)
        return (set(rows) == {"same_city", "remote"}
                and all(r["lag_seconds"] is not None and r["behind_shards"] == []
                        for r in rows.values()))

    eventually(measured_and_caught_up, 180, "drd reports the bucket caught up at b and c")
    rows = bucket_rows(lab, bucket)
    assert {row["site"] for row in rows.values()} == {"b", "c"}
    for row in rows.values():
        # Caught up: the reading is as old as drd's last round (5 s in the lab) at most,
        # plus the time the round took.
        assert row["lag_state"] == "OK", row
        assert row["lag_seconds"] < 60, row
    # drd status carries each destination zone's own verdicts beside drd's role.
    shown = drd(lab, "status", "--json")
    lines = json.loads(shown.stdout)["object_sync"]
    assert lines[0] == "zone a is the master zone; measuring", lines
    for zone in ("b", "c"):
        assert any(line.startswith(f"zone of site {zone}: metadata: ") for line in lines), lines
        assert any(line.startswith(f"zone of site {zone}: a: ") for line in lines), lines
    # And what drd calls caught up is true: every object is on b and c, intact.
    for zone in ("b", "c"):
        url = lab.sites[zone].rgw_url
        assert url is not None
        peer = s3_client(url, ensure_user(RgwAdmin(lab.sites["a"].conf), "water", "Water"))
        for name, digest in written.items():
            body = peer.get_object(Bucket=bucket, Key=name)["Body"].read()
            assert hashlib.sha256(body).hexdigest() == digest, (zone, name)


def test_a_write_burst_shows_as_lag_then_drains(
        lab: LabDescription, water_bucket: tuple[str, Any, dict[str, str]]) -> None:
    bucket, client, _ = water_bucket
    seen_behind: list[float] = []
    started = time.monotonic()
    number = 0
    # Write for up to 60 s until drd has seen b behind at least once. Eight writers at
    # once: on a loaded box one writer alone is slower than b's sync.
    while time.monotonic() - started < 60 and not seen_behind:
        names = [f"burst-{number + offset:04d}" for offset in range(64)]
        number += len(names)
        with ThreadPoolExecutor(8) as writers:
            list(writers.map(lambda name: client.put_object(
                Bucket=bucket, Key=name, Body=b"x" * 131072), names))
        row = bucket_rows(lab, bucket).get("same_city")
        if row and row["behind_shards"] and row["lag_seconds"] is not None:
            seen_behind.append(row["lag_seconds"])
    assert seen_behind, "drd never saw b behind during a 60 s write burst"
    assert seen_behind[0] > 0

    def drained() -> bool:
        row = bucket_rows(lab, bucket).get("same_city")
        return row is not None and row["behind_shards"] == [] and row["lag_state"] == "OK"

    eventually(drained, 180, "b catches up after the burst and drd says so")


def test_a_policy_naming_another_tenants_bucket_is_refused(
        lab: LabDescription, tmp_path: Path,
        water_bucket: tuple[str, Any, dict[str, str]]) -> None:
    master = lab.sites["a"]
    assert master.rgw_url is not None
    transport = s3_client(master.rgw_url,
                          ensure_user(RgwAdmin(master.conf), "transport", "Transport"))
    theirs = f"transport-fares-{RUN}"
    try:
        transport.create_bucket(Bucket=theirs)
    except ClientError as error:
        assert error.response["Error"]["Code"] == "BucketAlreadyOwnedByYou"
    stored = master.root / "drd" / "policies" / "water.yaml"
    before = stored.read_text()
    refused = apply_policy(lab, tmp_path, "water", POLICY.format(glob=theirs))
    assert refused.returncode == 1
    problems = [line for line in refused.stderr.splitlines() if "water.yaml:" in line]
    assert any(f":5: protection.object[0].buckets[0]: bucket '{theirs}' is owned by RGW "
               f"user 'transport'" in p for p in problems), refused.stderr
    assert stored.read_text() == before
    # A glob that matches it is harmless: globs choose among water's own buckets only.
    applied = apply_policy(lab, tmp_path, "water", POLICY.format(glob="*"))
    assert applied.returncode == 0, applied.stderr
    eventually(lambda: bool(bucket_rows(lab, water_bucket[0])), 60, "water's bucket listed")
    assert not bucket_rows(lab, theirs)


def b_is_stuck(lab: LabDescription, bucket: str) -> bool:
    row = bucket_rows(lab, bucket).get("same_city")
    return row is not None and bool(row["stuck_shards"])


def b_caught_up(lab: LabDescription, bucket: str) -> bool:
    row = bucket_rows(lab, bucket).get("same_city")
    return row is not None and not row["behind_shards"] and not row["stuck_shards"]


def indexed_on(lab: LabDescription, zone: str, bucket: str) -> dict[str, str]:
    """name -> ETag in the zone's own bucket index, read by radosgw-admin on its cluster:
    true whether or not the zone's gateway runs."""
    entries = RgwAdmin(lab.sites[zone].conf).json("bucket", "list", f"--bucket={bucket}",
                                                  "--max-entries=10000")
    return {entry["name"]: entry["meta"]["etag"] for entry in entries}


def test_a_bucket_stuck_behind_a_stopped_gateway_is_reported_with_what_unsticks_it(
        lab: LabDescription, tmp_path: Path,
        water_bucket: tuple[str, Any, dict[str, str]]) -> None:
    bucket, client, _ = water_bucket
    # repair: auto, yet drd must not act: starting gateways is the site's job.
    policy = POLICY.format(glob=f"water-docs-{RUN}*").replace(
        "        lag_target: 2m\n", "        lag_target: 2m\n      repair: auto\n")
    assert apply_policy(lab, tmp_path, "water", policy).returncode == 0
    gateways = LabGateways(lab.dir)
    gateways.kill("b")  # b's sync runs in its gateway, so it stops with it
    try:
        etags = {}
        for number in range(10):
            name = f"while-b-is-down-{number}"
            client.put_object(Bucket=bucket, Key=name, Body=secrets.token_bytes(50_000))
            etags[name] = client.head_object(Bucket=bucket, Key=name)["ETag"].strip('"')

        eventually(lambda: b_is_stuck(lab, bucket), 180,
                   "drd reports b's copy of the bucket stuck")
        row = bucket_rows(lab, bucket)["same_city"]
        assert row["repair"].startswith("start a radosgw of zone b on site b"), row
        assert row["lag_seconds"] >= 30, row  # stuck after 30 s in the lab
        # The remote zone kept up meanwhile.
        assert not bucket_rows(lab, bucket)["remote"]["stuck_shards"]
        assert not set(etags) & set(indexed_on(lab, "b", bucket))
        protection = json.loads(drd(lab, "status", "--json").stdout)
        assert protection["rpo_breaches"] + protection["rpo_warnings"] >= 1
    finally:
        gateways.restart("b")

    eventually(lambda: b_caught_up(lab, bucket), 180,
               "b catches up once its gateway runs, and drd says so")
    peer = s3_client(lab.sites["b"].rgw_url or "",
                     ensure_user(RgwAdmin(lab.sites["a"].conf), "water", "Water"))
    for name, etag in etags.items():
        assert peer.head_object(Bucket=bucket, Key=name)["ETag"].strip('"') == etag


def test_a_gateway_that_does_not_sync_gets_a_restart_and_auto_repair_refuses_sync_run(
        lab: LabDescription, tmp_path: Path,
        water_bucket: tuple[str, Any, dict[str, str]]) -> None:
    """On Ceph 16.2.x `bucket sync run` marks entries done without applying them, so
    `repair: auto` must not run it: the bucket would read caught up with objects missing."""
    bucket, client, _ = water_bucket
    policy = POLICY.format(glob=f"water-docs-{RUN}*").replace(
        "        lag_target: 2m\n", "        lag_target: 2m\n      repair: auto\n")
    assert apply_policy(lab, tmp_path, "water", policy).returncode == 0
    gateways = LabGateways(lab.dir)
    b = lab.sites["b"]
    set_sync_thread(b.conf, enabled=False)
    gateways.restart("b")  # running, watching its control pool, and syncing nothing
    try:
        etags = {}
        for number in range(10):
            name = f"while-b-does-not-sync-{number}"
            client.put_object(Bucket=bucket, Key=name, Body=secrets.token_bytes(40_000))
            etags[name] = client.head_object(Bucket=bucket, Key=name)["ETag"].strip('"')

        eventually(lambda: b_is_stuck(lab, bucket), 180,
                   "drd reports b's copy of the bucket stuck")
        row = bucket_rows(lab, bucket)["same_city"]
        assert row["repair"].startswith("restart the radosgw of zone b on site b"), row
        assert "16.2.15" in row["repair"], row
        # drd refused the automatic `bucket sync run`: b's own status still says behind,
        # and the objects are still missing there.
        metrics = get_metrics(lab.sites["a"].api_url or "")
        assert 'drd_bucket_sync_repairs_total{result="refused"}' in metrics
        assert 'drd_bucket_sync_repairs_total{result="ok"}' not in metrics
        status = RgwAdmin(b.conf).text("bucket", "sync", "status", f"--bucket={bucket}",
                                       "--source-zone=a")
        assert "bucket is behind" in status, status
        assert not set(etags) & set(indexed_on(lab, "b", bucket))
    finally:
        set_sync_thread(b.conf, enabled=True)
        gateways.restart("b")  # the advised repair

    eventually(lambda: b_caught_up(lab, bucket), 180,
               "b catches up once its gateway syncs again, and drd says so")
    peer = s3_client(b.rgw_url or "", ensure_user(RgwAdmin(lab.sites["a"].conf), "water",
                                                   "Water"))
    for name, etag in etags.items():
        assert peer.head_object(Bucket=bucket, Key=name)["ETag"].strip('"') == etag


def set_sync_thread(conf: Path, *, enabled: bool) -> None:
    """Turn the zone gateway's sync thread off (a misconfigured gateway) or back on."""
    command = (["config", "rm", "client.rgw.b", "rgw_run_sync_thread"] if enabled
               else ["config", "set", "client.rgw.b", "rgw_run_sync_thread", "false"])
    subprocess.run(["ceph", "-c", str(conf), *command], check=True, capture_output=True,
                   timeout=60)
