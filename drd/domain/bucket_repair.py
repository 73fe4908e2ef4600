"""What unsticks a bucket whose copy at a destination zone has stopped catching up, and
whether drd may do it itself.

A zone's sync runs inside its radosgw processes. With none running, the only fix is to
start one, which is the site's service manager's job, never drd's. With gateways
running, the textbook repair is `radosgw-admin bucket sync run`, which replays the
source's bucket index log at the destination. drd runs it on its own only when the
tenant's policy says `repair: auto` and the destination's Ceph release is known to apply
what it replays.

Measured on Ceph 16.2.15 in the lab, with the destination's gateway stopped and again
with it running but not syncing: `bucket sync run` logged "skipping entry due to policy
rules" for every incremental entry, applied none of them, and left the shards marked
caught up. `bucket sync status` then reads "caught up" while the objects are missing, so
the repair would blind the lag measurement instead of fixing anything. Restarting the
destination's gateway with sync enabled brought every skipped object within seconds.
So on Pacific the advice is a gateway restart, and drd never runs `bucket sync run`.

Pure: the caller reads the release and the gateways.
"""

import re
from dataclasses import dataclass

# `radosgw-admin --version`: "ceph version 16.2.15 (618f44...) pacific (stable)".
_VERSION = re.compile(r"\bceph version (\d+)\.(\d+)\.(\d+)")

# Releases on which `bucket sync run` is known to mark entries done without applying them.
_SKIPS_INCREMENTAL_ENTRIES = {16: "16.2.x (Pacific)"}

CephRelease = tuple[int, int, int]


def parse_ceph_release(version_text: str) -> CephRelease | None:
    """(16, 2, 15) from `radosgw-admin --version`; None when it says no release."""
    found = _VERSION.search(version_text)
    if found is None:
        return None
    major, minor, patch = (int(part) for part in found.groups())
    return major, minor, patch


def sync_run_hazard(release: CephRelease | None) -> str | None:
    """Why `bucket sync run` must not be trusted on this release, or None if it may be."""
    if release is None:
        return "the destination's Ceph release is unknown"
    series = _SKIPS_INCREMENTAL_ENTRIES.get(release[0])
    if series is None:
        return None
    shown = ".".join(str(part) for part in release)
    return (f"on Ceph {series}, here {shown}, `bucket sync run` skips every incremental "
            f"entry ('skipping entry due to policy rules') and then marks the shards caught "
            f"up, which hides the missing objects")


@dataclass(frozen=True)
class RepairAdvice:
    """What to tell the operator, and whether drd may do it itself under `repair: auto`."""

    text: str
    automatic: bool  # True only for a `bucket sync run` known to apply what it replays
    refusal: str | None = None  # why `repair: auto` does nothing here


def repair_advice(*, zone: str, site: str, gateways_running: bool, hazard: str | None,
                  sync_run_command: str) -> RepairAdvice:
    """The one repair that fits: start a gateway, restart one, or replay the bucket."""
    if not gateways_running:
        return RepairAdvice(
            f"start a radosgw of zone {zone} on site {site}: none is running there, and "
            f"its sync runs in its gateways", automatic=False,
            refusal="starting gateways is the site's service manager's job")
    if hazard is not None:
        return RepairAdvice(
            f"restart the radosgw of zone {zone} on site {site} with rgw_run_sync_thread "
            f"enabled: its gateways run but do not apply the bucket's log; do not use "
            f"`bucket sync run`: {hazard}", automatic=False, refusal=hazard)
    return RepairAdvice(sync_run_command, automatic=True)
