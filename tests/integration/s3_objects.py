"""S3 through boto3 against the lab's gateways: write objects and prove them by sha256."""

import hashlib
import io
import random
import time
from typing import Any

import boto3
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from drd.ceph.rgw_admin import S3Keys

MULTIPART = TransferConfig(multipart_threshold=5 * 2**20, multipart_chunksize=5 * 2**20)
SIZES = [0, 1, 100, 4096, 65_536, 300_000, 1_048_593]

# name -> (ETag, sha256)
Written = dict[str, tuple[str, str]]


def s3_client(url: str, keys: S3Keys) -> Any:
    return boto3.client(
        "s3", endpoint_url=url, aws_access_key_id=keys.access_key,
        aws_secret_access_key=keys.secret_key, region_name="city",
        config=Config(retries={"max_attempts": 1}, connect_timeout=3, read_timeout=30,
                      s3={"addressing_style": "path"}))


def write_objects(client: Any, bucket: str, prefix: str, count: int, *, seed: int,
                  big: int = 0) -> Written:
    """`count` objects of mixed sizes; the first is `big` bytes (multipart) when given."""
    chooser = random.Random(seed)  # noqa: S311 (sizes and bodies, not secrets)
    written: Written = {}
    for number in range(count):
        size = big if number == 0 and big else chooser.choice(SIZES)
        body = chooser.randbytes(size)
        name = f"{prefix}/{number:03d}.bin"
        client.upload_fileobj(io.BytesIO(body), bucket, name, Config=MULTIPART)
        etag = client.head_object(Bucket=bucket, Key=name)["ETag"]
        written[name] = (etag, hashlib.sha256(body).hexdigest())
    return written


def listing(client: Any, bucket: str) -> dict[str, str]:
    """Key -> ETag; empty while the bucket (or its user) has not reached the zone."""
    found: dict[str, str] = {}
    try:
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
            found |= {item["Key"]: item["ETag"] for item in page.get("Contents", [])}
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") in {"InvalidAccessKeyId",
                                                            "NoSuchBucket"}:
            return {}
        raise
    return found


def wait_listed(client: Any, bucket: str, written: Written, deadline_s: float) -> float:
    """Wait until the zone lists every written object with its ETag; seconds waited."""
    started = time.monotonic()
    expected = {name: etag for name, (etag, _) in written.items()}
    while True:
        found = listing(client, bucket)
        if all(found.get(name) == etag for name, etag in expected.items()):
            return time.monotonic() - started
        missing = sorted(set(expected) - set(found))
        assert time.monotonic() - started < deadline_s, (
            f"bucket {bucket} after {deadline_s:.0f} s: {len(missing)} of {len(expected)} "
            f"objects missing (e.g. {missing[:3]})")
        time.sleep(1.0)


def sha256_mismatches(client: Any, bucket: str, written: Written) -> list[str]:
    """Names whose body read back from this zone has another sha256."""
    return [name for name, (_, sha256) in written.items()
            if hashlib.sha256(client.get_object(Bucket=bucket, Key=name)["Body"].read())
            .hexdigest() != sha256]


def first_write(client: Any, bucket: str, deadline_s: float) -> float:
    """Retry creating `bucket` and writing one object into it until both succeed."""
    started = time.monotonic()
    while True:
        try:
            client.create_bucket(Bucket=bucket)
            client.put_object(Bucket=bucket, Key="first", Body=b"written on the new master")
            return time.monotonic() - started
        except (ClientError, BotoCoreError) as error:
            if isinstance(error, ClientError) and \
                    error.response.get("Error", {}).get("Code") == "BucketAlreadyOwnedByYou":
                client.put_object(Bucket=bucket, Key="first", Body=b"written on the new master")
                return time.monotonic() - started
            assert time.monotonic() - started < deadline_s, \
                f"no write accepted within {deadline_s:.0f} s: {error}"
            time.sleep(0.2)
