"""Helpers of the RGW integration tests: S3 clients on the lab's gateways, and waiting
for multisite metadata sync."""

import time
from typing import Any

import boto3
from botocore.config import Config

from drd.ceph.rgw_admin import RgwAdmin, RgwAdminError
from drd.lab.description import SiteRecord

METADATA_DEADLINE_S = 120.0


def s3_client(url: str, keys: Any) -> Any:
    return boto3.client(
        "s3", endpoint_url=url, aws_access_key_id=keys.access_key,
        aws_secret_access_key=keys.secret_key, region_name="city",
        config=Config(retries={"max_attempts": 2}, connect_timeout=5, read_timeout=30,
                      s3={"addressing_style": "path"}))


# What a secondary answers before metadata sync has brought it the user or the bucket.
NOT_SYNCED_YET = {"InvalidAccessKeyId", "NoSuchBucket"}


def wait_metadata(sites: list[SiteRecord], *command: str) -> None:
    deadline = time.monotonic() + METADATA_DEADLINE_S
    for site in sites:
        while True:
            try:
                RgwAdmin(site.conf).json(*command)
                break
            except RgwAdminError:
                assert time.monotonic() < deadline, \
                    f"`{' '.join(command)}` still fails on {site.name}: metadata not synced"
                time.sleep(0.5)
