"""`ceph status -f json` from Pacific, reduced to whether a cluster has settled, and why not."""

import copy
from typing import Any

import pytest

from drd.domain.cluster_health import ClusterHealth, parse_status

# `ceph status -f json` of a settled one-OSD lab site on Pacific 16.2.
PACIFIC_HEALTH_OK: dict[str, Any] = {
    "fsid": "8d3a1c2e-5b7f-4c1a-9e0d-2f6b8a4c7e91",
    "health": {"status": "HEALTH_OK", "checks": {}, "mutes": []},
    "election_epoch": 3,
    "quorum": [0],
    "quorum_names": ["a"],
    "quorum_age": 41,
    "monmap": {"epoch": 1, "min_mon_release_name": "pacific", "num_mons": 1},
    "osdmap": {"epoch": 13, "num_osds": 1, "num_up_osds": 1, "osd_up_since": 1763767420,
               "num_in_osds": 1, "osd_in_since": 1763767419, "num_remapped_pgs": 0},
    "pgmap": {
        "pgs_by_state": [{"state_name": "active+clean", "count": 9}],
        "num_pgs": 9, "num_pools": 2, "num_objects": 5, "data_bytes": 589,
        "bytes_used": 20971520, "bytes_avail": 2126512128, "bytes_total": 2147483648,
    },
    "fsmap": {"epoch": 1, "by_rank": [], "up:standby": 0},
    "mgrmap": {"available": True, "num_standbys": 0, "modules": ["iostat", "restful"],
               "services": {}},
    "servicemap": {
        "epoch": 4,
        "modified": "2026-11-21T23:23:52.184731+0000",
        "services": {
            "rbd-mirror": {
                "daemons": {
                    "summary": "",
                    "4151": {"start_epoch": 4, "start_stamp": "2026-11-21T23:23:51.9+0000",
                             "gid": 4151, "addr": "127.0.1.1:0/2387781614",
                             "metadata": {"id": "rbd-mirror.a", "ceph_release": "pacific"},
                             "task_status": {}},
                },
            },
        },
    },
    "progress_events": {},
}


def warning(message: str, severity: str = "HEALTH_WARN") -> dict[str, Any]:
    """One entry of `health.checks`, as Pacific reports it."""
    return {"severity": severity, "summary": {"message": message, "count": 1}, "muted": False}


def status_with(**changes: dict[str, Any]) -> dict[str, Any]:
    """The settled status with some top-level sections changed in place."""
    status = copy.deepcopy(PACIFIC_HEALTH_OK)
    for section, fields in changes.items():
        status[section].update(fields)
    return status


OSD_DOWN = status_with(
    health={"status": "HEALTH_WARN",
            "checks": {"OSD_DOWN": warning("1 osds down"),
                       "PG_AVAILABILITY": warning("Reduced data availability: 9 pgs stale")}},
    osdmap={"num_up_osds": 0},
    pgmap={"pgs_by_state": [{"state_name": "stale+active+clean", "count": 9}]},
)
NO_OSDS_YET = status_with(
    health={"status": "HEALTH_WARN", "checks": {"TOO_FEW_OSDS": warning(
        "OSD count 0 < osd_pool_default_size 1")}},
    osdmap={"num_osds": 0, "num_up_osds": 0, "num_in_osds": 0},
    pgmap={"pgs_by_state": [], "num_pgs": 0, "num_pools": 0},
)
NO_MGR = status_with(
    health={"status": "HEALTH_WARN", "checks": {"MGR_DOWN": warning("no active mgr")}},
    mgrmap={"available": False, "modules": []},
)
NO_PGS = status_with(pgmap={"pgs_by_state": [], "num_pgs": 0, "num_pools": 0})
PEERING = status_with(
    health={"status": "HEALTH_WARN",
            "checks": {"PG_AVAILABILITY": warning("Reduced data availability: 5 pgs peering")}},
    pgmap={"pgs_by_state": [{"state_name": "peering", "count": 5},
                            {"state_name": "active+clean", "count": 4}]},
)
WARNINGS = status_with(health={"status": "HEALTH_WARN", "checks": {
    "RECENT_CRASH": warning("1 daemons have recently crashed"),
    "POOL_APP_NOT_ENABLED": warning("1 pool(s) do not have an application enabled"),
}})


def test_parse_status_reads_a_settled_pacific_site() -> None:
    assert parse_status(PACIFIC_HEALTH_OK) == ClusterHealth(
        status="HEALTH_OK", checks={}, osds=1, osds_up=1, mgr_available=True,
        pgs=9, pgs_by_state={"active+clean": 9}, services={"rbd-mirror": 1},
    )


def test_parse_status_keeps_each_check_message_by_code() -> None:
    health = parse_status(WARNINGS)

    assert health.status == "HEALTH_WARN"
    assert health.checks == {
        "RECENT_CRASH": "1 daemons have recently crashed",
        "POOL_APP_NOT_ENABLED": "1 pool(s) do not have an application enabled",
    }


def test_parse_status_reads_the_osdmap_nested_as_older_releases_do() -> None:
    nested = copy.deepcopy(OSD_DOWN)
    nested["osdmap"] = {"osdmap": nested["osdmap"]}

    health = parse_status(nested)

    assert (health.osds, health.osds_up) == (1, 0)


def test_services_count_registered_daemons_not_the_summary_entry() -> None:
    status = copy.deepcopy(PACIFIC_HEALTH_OK)
    daemons = status["servicemap"]["services"]["rbd-mirror"]["daemons"]
    daemons["4188"] = {**daemons["4151"], "gid": 4188}
    status["servicemap"]["services"]["rgw"] = {"daemons": {"summary": ""}}

    assert parse_status(status).services == {"rbd-mirror": 2, "rgw": 0}


def test_a_status_without_any_section_is_unknown_and_unsettled() -> None:
    health = parse_status({})

    assert health.status == "HEALTH_UNKNOWN"
    assert health.settled() == (False, "0 of 0 OSDs up")


@pytest.mark.parametrize(
    ("status", "reason"),
    [
        (OSD_DOWN, "0 of 1 OSDs up"),
        (NO_OSDS_YET, "0 of 0 OSDs up"),
        (NO_MGR, "no active mgr"),
        (NO_PGS, "no placement groups reported yet"),
        (PEERING, "placement groups not all active+clean: 4 active+clean, 5 peering"),
        (WARNINGS, "HEALTH_WARN (POOL_APP_NOT_ENABLED: 1 pool(s) do not have an application "
                   "enabled; RECENT_CRASH: 1 daemons have recently crashed)"),
    ],
    ids=["osd-down", "no-osds", "no-mgr", "no-pgs", "pgs-peering", "health-warn"],
)
def test_an_unsettled_cluster_says_why(status: dict[str, Any], reason: str) -> None:
    assert parse_status(status).settled() == (False, reason)


def test_health_err_is_not_settled_even_with_clean_placement_groups() -> None:
    status = status_with(health={"status": "HEALTH_ERR", "checks": {
        "MON_DISK_CRIT": warning("mon a is very low on available space", "HEALTH_ERR")}})

    assert parse_status(status).settled() == (
        False, "HEALTH_ERR (MON_DISK_CRIT: mon a is very low on available space)")


def test_a_healthy_cluster_with_clean_placement_groups_is_settled() -> None:
    assert parse_status(PACIFIC_HEALTH_OK).settled() == (
        True, "HEALTH_OK, all placement groups active+clean")
