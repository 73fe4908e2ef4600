"""May a zone become the RGW master? Judged from what radosgw-admin printed, as Pacific
prints it; and how a period and a gateway's reload are read."""

from typing import Any

import pytest

from drd.ceph.rgw_gateway_watch import parse_watchers, reloaded_since
from drd.domain.rgw_failover import (
    CatchUpVerdict,
    FailoverStep,
    PromoteAction,
    bucket_caught_up,
    decide_promotion,
    judge_metadata,
    parse_metadata_sync_info,
    parse_period,
)
from drd.domain.rgw_sync_status import parse_sync_status

HEADER = """\
          realm a7137928-47a5-41c9-8855-4087ee3ae9f0 (drd-lab)
      zonegroup 29dd766a-ca08-4f83-99b2-6a986b864935 (city)
           zone 981ddf3b-e302-4c47-81b3-05ad48675322 (b)
"""
DATA_FROM_A = """\
      data sync source: f14beaf8-5e90-40ed-959d-104968557db4 (a)
                        syncing
                        full sync: 0/16 shards
                        incremental sync: 16/16 shards
                        data is caught up with source
"""
CAUGHT_UP = HEADER + """\
  metadata sync syncing
                full sync: 0/16 shards
                incremental sync: 16/16 shards
                metadata is caught up with master
""" + DATA_FROM_A
BEHIND = HEADER + """\
  metadata sync syncing
                full sync: 0/16 shards
                incremental sync: 16/16 shards
                metadata is behind on 3 shards
                behind shards: [1,4,9]
                oldest incremental change not applied: 2026-11-22T03:54:22.553+0000 [4]
""" + DATA_FROM_A
MASTER_DOWN = HEADER + """\
  metadata sync syncing
                full sync: 0/16 shards
                failed to fetch master sync status: (5) Input/output error
      data sync source: f14beaf8-5e90-40ed-959d-104968557db4 (a)
                        failed to retrieve sync info: (5) Input/output error
"""
IS_MASTER = HEADER + "  metadata sync no sync (zone is master)\n" + DATA_FROM_A


def judged(text: str, state: str = "sync") -> Any:
    return judge_metadata("b", parse_sync_status(text), state)


def test_a_caught_up_secondary_is_promoted_with_cephs_own_verdict_as_the_reason() -> None:
    catch_up = judged(CAUGHT_UP)
    decision = decide_promotion("b", "a", catch_up, force=False)

    assert catch_up.verdict is CatchUpVerdict.CAUGHT_UP and catch_up.data_caught_up_from("a")
    assert decision.action is PromoteAction.PROMOTE
    assert decision.reason == ("zone b has caught up with master a: "
                               "metadata is caught up with master")


def test_a_secondary_behind_on_metadata_is_refused_with_its_backlog_named() -> None:
    decision = decide_promotion("b", "a", judged(BEHIND), force=False)

    assert decision.action is PromoteAction.REFUSE
    assert decision.reason == (
        "zone b is not proven caught up with master a: metadata is behind on 3 shards, "
        "oldest change 2026-11-22T03:54:22.553+0000; promote with force to accept losing "
        "the metadata changes it lacks")


def test_with_the_master_unreachable_catch_up_is_unknown_and_only_force_promotes() -> None:
    catch_up = judged(MASTER_DOWN)

    assert catch_up.verdict is CatchUpVerdict.UNKNOWN and not catch_up.caught_up
    assert not catch_up.data_caught_up_from("a")
    assert decide_promotion("b", "a", catch_up, force=False).action is PromoteAction.REFUSE
    forced = decide_promotion("b", "a", catch_up, force=True)
    assert forced.action is PromoteAction.PROMOTE
    assert forced.reason.startswith("forced: zone b is not proven caught up with master a "
                                    "(cannot compare with the master: failed to fetch")


def test_metadata_still_in_full_sync_is_behind_whatever_the_shard_lines_say() -> None:
    catch_up = judged(CAUGHT_UP, state="building-full-sync-maps")

    assert catch_up.verdict is CatchUpVerdict.BEHIND
    assert catch_up.reason == "metadata sync is in state 'building-full-sync-maps', " \
                              "not incremental"


def test_the_master_itself_needs_nothing() -> None:
    assert judged(IS_MASTER, state="init").verdict is CatchUpVerdict.IS_MASTER
    decision = decide_promotion("b", "b", None, force=False)
    assert (decision.action, decision.reason) == (PromoteAction.NOTHING,
                                                  "zone b is already master")


def test_output_without_a_metadata_section_is_never_taken_for_caught_up() -> None:
    catch_up = judged(HEADER + DATA_FROM_A)

    assert catch_up.verdict is CatchUpVerdict.UNKNOWN
    assert decide_promotion("b", "a", catch_up, False).action is PromoteAction.REFUSE


PERIOD: dict[str, Any] = {
    "id": "c9676444-a392-42eb-a279-82f320807368", "epoch": 1, "realm_epoch": 3,
    "master_zone": "981ddf3b",
    "period_map": {"zonegroups": [{"name": "city", "zones": [
        {"id": "f14beaf8", "name": "a", "endpoints": ["http://127.60.1.1:8480"]},
        {"id": "981ddf3b", "name": "b", "endpoints": ["http://127.60.2.1:8480"]},
    ]}]},
}


def test_a_period_names_its_master_zone_by_name_and_knows_every_endpoint() -> None:
    period = parse_period(PERIOD)

    assert period.master_zone == "b"
    assert period.endpoint("a") == "http://127.60.1.1:8480"
    assert str(period) == "period c9676444 epoch 1 (realm epoch 3, master b)"
    older = parse_period({**PERIOD, "id": "deea473d", "realm_epoch": 2, "epoch": 3})
    assert period.newer_than(older) and not older.newer_than(period)
    assert parse_period({**PERIOD, "epoch": 2}).newer_than(period)


def test_a_period_whose_master_is_not_among_its_zones_is_an_error() -> None:
    with pytest.raises(ValueError, match="names no known master zone"):
        parse_period({**PERIOD, "master_zone": "gone"})


def test_a_secondary_follows_a_period_once_its_metadata_sync_runs_on_that_realm_epoch() -> None:
    period = parse_period(PERIOD)
    syncing = parse_metadata_sync_info({"sync_status": {"info": {
        "status": "sync", "num_shards": 16, "period": PERIOD["id"], "realm_epoch": 3}}})
    stale = parse_metadata_sync_info({"sync_status": {"info": {
        "status": "sync", "period": "deea473d", "realm_epoch": 2}}})
    starting = parse_metadata_sync_info({"sync_status": {"info": {
        "status": "init", "period": "", "realm_epoch": 0}}})

    assert syncing.follows(period)
    assert not stale.follows(period)
    assert not starting.follows(period)


LISTWATCHERS_BEFORE = "watcher=127.0.0.1:0/3132185234 client.4226 cookie=140166660475888\n"
LISTWATCHERS_AFTER = "watcher=127.0.0.1:0/1151348256 client.4259 cookie=140166661174944\n"


def test_a_gateway_has_reloaded_once_its_watch_comes_back_under_a_new_client() -> None:
    before, after = parse_watchers(LISTWATCHERS_BEFORE), parse_watchers(LISTWATCHERS_AFTER)

    assert before == {"client.4226"}
    assert reloaded_since(before, after)
    assert not reloaded_since(before, before)
    assert not reloaded_since(before, frozenset())  # gone is not reloaded
    assert not reloaded_since(before, before | after)  # one of two still on the old store


BUCKET_NEVER_SYNCED = """\
           zone f14beaf8-5e90-40ed-959d-104968557db4 (a)
         bucket :transport-fo-6469af-on-b[981ddf3b-e302-4c47-81b3-05ad48675322.4663.1])

    source zone 981ddf3b-e302-4c47-81b3-05ad48675322 (b)
  source bucket transport-fo-6469af-on-b:981ddf3b-e302-4c47-81b3-05ad48675322.4663.1
                full sync: 0/11 shards
                incremental sync: 0/11 shards
                bucket is behind on 4 shards
                behind shards: [1,2,3,4]
"""


def test_a_bucket_is_caught_up_only_when_ceph_says_so_for_its_source() -> None:
    assert bucket_caught_up(BUCKET_NEVER_SYNCED) == (False, "bucket is behind on 4 shards")
    synced = BUCKET_NEVER_SYNCED.replace("bucket is behind on 4 shards",
                                         "bucket is caught up with source")
    assert bucket_caught_up(synced) == (True, "bucket is caught up with source")
    assert bucket_caught_up("") == (False, "no verdict printed")


def test_a_step_reads_as_the_operators_log_line() -> None:
    done = FailoverStep("commit period", "b", True, "committed period c9676444 epoch 1", 0.3)
    already = FailoverStep("zone modify", "b", False, "zonegroup city already names it "
                           "master", 0.2)
    look = FailoverStep("check metadata", "b", False, "zone b has caught up", 0.5, check=True)

    assert str(done) == "commit period on zone b: committed period c9676444 epoch 1"
    assert str(already).endswith("already names it master (already so)")
    assert str(look) == "check metadata on zone b: zone b has caught up"
