"""A policy's retention as restic's keep rules, and which snapshots are a tenant's."""

from datetime import timedelta

import pytest

from drd.backup import restic_argv as argv
from drd.backup.restic_argv import KeepRules, SnapshotFilter
from drd.backup.retention import describe_rules, keep_rules, tenant_selection, tenant_tag
from drd.domain.backup_policy import Retention


def test_every_rule_of_the_policy_becomes_its_keep_flag() -> None:
    retention = Retention(keep_last=2, keep_hourly=24, keep_daily=7, keep_weekly=4,
                          keep_monthly=12, keep_yearly=5, keep_within=timedelta(hours=36))
    rules = keep_rules(retention)
    assert rules == KeepRules(last=2, hourly=24, daily=7, weekly=4, monthly=12, yearly=5,
                              within=timedelta(hours=36))
    assert argv.forget("/r", rules)[4:] == [
        "--group-by", "host,paths", "--keep-last", "2", "--keep-hourly", "24",
        "--keep-daily", "7", "--keep-weekly", "4", "--keep-monthly", "12",
        "--keep-yearly", "5", "--keep-within", "1d12h"]
    assert describe_rules(rules) == ("last 2, hourly 24, daily 7, weekly 4, monthly 12, "
                                     "yearly 5, within 1d12h")


def test_a_count_of_zero_is_no_rule_as_in_the_policy() -> None:
    rules = keep_rules(Retention(keep_daily=3, keep_weekly=0))
    assert rules == KeepRules(daily=3)
    assert describe_rules(rules) == "daily 3"


def test_a_tenants_snapshots_are_selected_by_drds_tag() -> None:
    assert tenant_tag("water") == "drd:tenant=water"
    assert tenant_selection("water") == SnapshotFilter(tags=("drd:tenant=water",))
    assert argv.snapshots("/r", tenant_selection("water"))[-2:] == ["--tag",
                                                                    "drd:tenant=water"]
    with pytest.raises(ValueError, match="tenant name"):
        tenant_tag("Water,sewage")
