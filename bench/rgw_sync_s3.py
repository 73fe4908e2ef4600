"""The RGW sync benchmark's S3 side: the tenant's bucket, and sha256 read back per zone.

The tenant's user is created on the master zone and reaches the secondaries by metadata
sync, keys included, so one key pair serves all three gateways. Blocking (boto3 and
radosgw-admin): call from the main thread or worker threads.
"""

import hashlib
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError
from daemon_process import BenchError

from drd.ceph.rgw_admin import RgwAdmin, RgwAdminError, S3Keys
from drd.ceph.rgw_multisite import ensure_user
from drd.lab.description import LabDescription

TENANT_UID = "bench-sync"
TENANT_NAME = "RGW sync benchmark"
REGION = "city"  # the zonegroup's name; RGW accepts any region in the signature
METADATA_TIMEOUT_S = 120.0
# What a secondary answers before metadata sync has brought it the user or the bucket.
NOT_SYNCED_YET = frozenset({"InvalidAccessKeyId", "NoSuchBucket"})


def s3_client(url: str, keys: S3Keys, pool: int = 10) -> Any:
    """A boto3 S3 client for one gateway; clients are thread-safe, sessions are not."""
    return boto3.client(
        "s3", endpoint_url=url, aws_access_key_id=keys.access_key,
        aws_secret_access_key=keys.secret_key, region_name=REGION,
        config=Config(retries={"max_attempts": 1}, connect_timeout=5, read_timeout=30,
                      max_pool_connections=pool, s3={"addressing_style": "path"}))


@dataclass(frozen=True)
class Zone:
    """One zone's gateway as the benchmark talks to it."""

    name: str
    url: str
    admin: RgwAdmin
    client: Any  # boto3 S3 client with the tenant's keys


def tenant_zones(description: LabDescription, writers: int) -> tuple[S3Keys, dict[str, Zone]]:
    """The tenant's user on the master zone a (created once), and a client per zone."""
    master = description.sites["a"]
    keys = ensure_user(RgwAdmin(master.conf), TENANT_UID, TENANT_NAME)
    zones: dict[str, Zone] = {}
    for name, site in sorted(description.sites.items()):
        if site.rgw_url is None:
            raise BenchError(f"site {name} runs no gateway (lab.json has no rgw_url)")
        zones[name] = Zone(name, site.rgw_url, RgwAdmin(site.conf),
                           s3_client(site.rgw_url, keys, pool=writers + 2))
    return keys, zones


def create_bucket(zones: dict[str, Zone], bucket: str) -> float:
    """Create the bucket on a; wait until b and c know user and bucket; the wait in s.

    An object written before the bucket's metadata reached a zone syncs there only on
    the error-retry path, about two minutes later; the benchmark does not measure that.
    """
    zones["a"].client.create_bucket(Bucket=bucket)
    started = time.monotonic()
    deadline = started + METADATA_TIMEOUT_S
    for zone in (z for name, z in zones.items() if name != "a"):
        while not _bucket_known(zone, bucket):
            if time.monotonic() > deadline:
                raise BenchError(f"bucket {bucket} did not reach zone {zone.name} within "
                                 f"{METADATA_TIMEOUT_S:.0f} s (metadata sync)")
            time.sleep(0.5)
    return time.monotonic() - started


def _bucket_known(zone: Zone, bucket: str) -> bool:
    """Both radosgw-admin and the zone's S3 answer for the bucket."""
    try:
        zone.admin.json("bucket", "stats", "--bucket", bucket)
    except RgwAdminError:
        return False
    try:
        zone.client.list_objects_v2(Bucket=bucket, MaxKeys=1)
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") in NOT_SYNCED_YET:
            return False
        raise
    return True


def list_after(client: Any, bucket: str, start_after: str) -> dict[str, str]:
    """Key -> ETag of every object listed after `start_after` ("" for all)."""
    found: dict[str, str] = {}
    paginator = client.get_paginator("list_objects_v2")
    options = {"StartAfter": start_after} if start_after else {}
    for page in paginator.paginate(Bucket=bucket, **options):
        found.update({item["Key"]: item["ETag"] for item in page.get("Contents", [])})
    return found


@dataclass(frozen=True)
class Checked:
    """sha256 read back on one zone."""

    zone: str
    checked: int
    equal: int
    failures: list[str]  # "key: reason", a few at most


def verify(zone: Zone, bucket: str, expected: Iterable[tuple[str, str]],
           shown: int = 5) -> Checked:
    """GET each (key, sha256) from the zone and compare the content's sha256."""
    checked = equal = 0
    failures: list[str] = []
    for key, sha256 in expected:
        checked += 1
        try:
            body = zone.client.get_object(Bucket=bucket, Key=key)["Body"].read()
        except (ClientError, BotoCoreError) as error:
            if len(failures) < shown:
                failures.append(f"{key}: {error}")
            continue
        if hashlib.sha256(body).hexdigest() == sha256:
            equal += 1
        elif len(failures) < shown:
            failures.append(f"{key}: sha256 differs")
    return Checked(zone.name, checked, equal, failures)
