"""Bucket sync state, read through radosgw-admin (drd.ceph.rgw_admin). Blocking.

drd measures a bucket's lag at a destination zone from two JSON sources instead of
the text of `bucket sync status`: the source zone's bucket index log (`bilog status`,
its newest marker per shard; `bilog list`, the entries after a marker) and the
destination's own sync position per shard (`bucket sync markers`). A shard whose
position is not the source's newest marker is behind, and the first source entry
after that position is the oldest change the destination has not applied.
"""

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from drd.ceph.rgw_admin import RgwAdmin, RgwAdminError
from drd.domain.bucket_lag import ShardPosition

ENOENT_EXIT = 2  # radosgw-admin exits with the errno of a missing key
NO_USER_EXIT = 254  # `bucket list --uid` of a user that does not exist


def parse_rgw_time(value: str) -> datetime | None:
    """RGW's `2026-11-22T03:55:10.399423051Z` (nanoseconds, Z) as an aware datetime;
    None for the `0.000000` of a position never set."""
    text = value.strip()
    if not text or text.startswith("0.0"):
        return None
    text = text.removesuffix("Z").removesuffix("+0000")
    whole, _, fraction = text.partition(".")
    try:
        stamp = datetime.strptime(whole, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=UTC)
    except ValueError:
        return None
    micros = int((fraction + "000000")[:6]) if fraction.isdigit() else 0
    return stamp.replace(microsecond=micros)


def user_buckets(admin: RgwAdmin, uid: str) -> list[str]:
    """The buckets `uid` owns; empty when the user does not exist (yet)."""
    try:
        listed = admin.json("bucket", "list", f"--uid={uid}")
    except RgwAdminError as error:
        if error.exit_code in (ENOENT_EXIT, NO_USER_EXIT):
            return []
        raise
    return sorted(str(name) for name in listed or [])


def bucket_owner(admin: RgwAdmin, bucket: str) -> str | None:
    """The RGW user owning `bucket`, or None when there is no such bucket."""
    try:
        entry = admin.json("metadata", "get", f"bucket:{bucket}")
    except RgwAdminError as error:
        if error.exit_code == ENOENT_EXIT:
            return None
        raise
    return str(_field(entry, "data", "owner"))


def newest_markers(admin: RgwAdmin, bucket: str) -> dict[int, str]:
    """Per shard, the newest entry of the bucket's index log on this (the source) zone."""
    status = admin.json("bilog", "status", f"--bucket={bucket}")
    return {int(item["key"]): str(item["val"]) for item in _field(status, "markers")}


def sync_positions(admin: RgwAdmin, bucket: str, source_zone: str) -> dict[int, ShardPosition]:
    """Per shard, how far this (the destination) zone has applied `source_zone`'s log."""
    entries = admin.json("bucket", "sync", "markers", f"--bucket={bucket}",
                         f"--source-zone={source_zone}")
    positions = {}
    for item in entries or []:
        value = item["val"]
        inc = value.get("inc_marker", {})
        positions[int(item["key"])] = ShardPosition(
            state=str(value.get("status", "")), marker=str(inc.get("position", "")),
            applied_at=parse_rgw_time(str(inc.get("timestamp", ""))))
    return positions


def oldest_entry_after(admin: RgwAdmin, bucket: str, shard: int,
                       marker: str) -> datetime | None:
    """When the first index log entry after `marker` in `shard` was made on this zone."""
    args = ["bilog", "list", f"--bucket={bucket}", f"--shard-id={shard}", "--max-entries=1"]
    if marker:
        args.append(f"--marker={marker}")
    entries = admin.json(*args) or []
    return parse_rgw_time(str(entries[0].get("timestamp", ""))) if entries else None


def master_zone(admin: RgwAdmin) -> str:
    """The name of the zonegroup's master zone, as this cluster's period says."""
    zonegroup = admin.json("zonegroup", "get")
    master_id = str(_field(zonegroup, "master_zone"))
    for zone in _field(zonegroup, "zones"):
        if zone.get("id") == master_id:
            return str(zone.get("name"))
    raise RgwAdminError(f"the zonegroup's master zone {master_id} is not among its zones")


def run_bucket_sync(admin: RgwAdmin, bucket: str, source_zone: str) -> None:
    """`bucket sync run`: apply what `source_zone` logged for `bucket` here, now."""
    admin.text("bucket", "sync", "run", f"--bucket={bucket}", f"--source-zone={source_zone}")


def ceph_version(admin: RgwAdmin) -> str:
    """`radosgw-admin --version` on that cluster's host: which release would run a repair."""
    return admin.text("--version").strip()


def repair_command(conf: Path, bucket: str, source_zone: str) -> str:
    """The `bucket sync run` an operator would run against the destination's cluster."""
    return (f"radosgw-admin -c {conf} bucket sync run --bucket={bucket} "
            f"--source-zone={source_zone}")


def _field(value: Any, *path: str) -> Any:
    for key in path:
        if not isinstance(value, dict) or key not in value:
            raise RgwAdminError(f"radosgw-admin output has no {'.'.join(path)}")
        value = value[key]
    return value
