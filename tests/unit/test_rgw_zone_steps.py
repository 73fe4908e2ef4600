"""The RGW zone steps' decisions: a tenant-scoped run leaves the master zone alone, a
promotion is forced only when the master's gateways are silent, and what plans say and
runs journal."""

from datetime import UTC, datetime

from drd.domain.rgw_failover import (
    FailbackResult,
    FailoverStep,
    PeriodInfo,
    PromoteResult,
)
from drd.domain.rgw_zone_steps import (
    PromoteMode,
    ZoneLook,
    failback_facts,
    failback_plan,
    failed_with,
    promote_facts,
    promote_plan,
    promotion_mode,
    scope_skip,
)
from tests.unit.test_rgw_failover_decision import BEHIND, CAUGHT_UP, MASTER_DOWN, judged

A_URL = "http://127.0.1.1:8480"
ENDPOINTS = (("a", (A_URL,)), ("b", ("http://127.0.2.1:8480",)),
             ("c", ("http://127.0.3.1:8480",)))
UNDER_A = PeriodInfo("3f1c9a6e-0000", 7, 2, "a", ENDPOINTS)
UNDER_B = PeriodInfo("8d2e11aa-0000", 1, 3, "b", ENDPOINTS)
AT = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)


def test_only_a_run_of_all_tenants_moves_the_master_zone() -> None:
    assert scope_skip(None) is None
    assert scope_skip(("water", "transport")) == (
        "nothing to do: this run is scoped to tenant(s) water, transport, and the RGW "
        "master zone serves every tenant's buckets; only a run of all tenants moves it")


def test_a_promotion_is_forced_only_when_the_master_is_silent() -> None:
    planned = promotion_mode("b", "a", [A_URL], master_answers=True)
    assert planned == PromoteMode(False, f"master zone a answers at {A_URL}: a planned "
                                         f"promotion, only once zone b has caught up with it")
    lost = promotion_mode("b", "a", [A_URL], master_answers=False)
    assert lost.force
    assert lost.reason.startswith(f"master zone a does not answer at {A_URL}: its site is "
                                  f"lost, so the promotion is forced")
    unknown = promotion_mode("b", "a", [], master_answers=False)
    assert not unknown.force and "cannot be told" in unknown.reason
    assert promotion_mode("a", "a", [A_URL], master_answers=False) == PromoteMode(
        False, "zone a is already master")


def test_a_plan_says_who_is_master_and_whether_the_zone_has_caught_up() -> None:
    planned = promotion_mode("b", "a", [A_URL], master_answers=True)
    caught_up = promote_plan("b", "b", ZoneLook(UNDER_A, planned, judged(CAUGHT_UP)))
    assert caught_up[0] == ("make zone b (site b) master; master now a, period 3f1c9a6e "
                            "epoch 7 (realm epoch 2, master a)")
    assert caught_up[2].startswith("  would promote: zone b has caught up with master a")
    behind = promote_plan("b", "b", ZoneLook(UNDER_A, planned, judged(BEHIND)))
    assert behind[2].startswith("  would refuse now: zone b is not proven caught up with "
                                "master a: metadata is behind on 3 shards")
    lost = promotion_mode("b", "a", [A_URL], master_answers=False)
    forced = promote_plan("b", "b", ZoneLook(UNDER_A, lost, judged(MASTER_DOWN)))
    assert forced[2].startswith("  would promote: forced: zone b is not proven caught up")
    unread = promote_plan("b", "b", ZoneLook(UNDER_A, planned, None, "exited 5: EIO"))
    assert unread[2] == "  zone b's sync cannot be read now (exited 5: EIO)"
    assert promote_plan("a", "a", ZoneLook(UNDER_A)) == [
        "zone a (site a) is already master of period 3f1c9a6e epoch 7 (realm epoch 2, "
        "master a): nothing to do"]


def test_a_failback_plan_starts_a_stopped_gateway_only_after_the_pull() -> None:
    down = failback_plan("a", "a", UNDER_B, running=False, catch_up=None, others=["b", "c"])
    assert down == [
        "fail zone a (site a) back from master b",
        "  its gateways are down: pull the realm from zone b, then start them as a "
        "secondary of period 8d2e11aa epoch 1 (realm epoch 3, master b)",
        "  wait until it has caught up with b: metadata, data and every bucket (metadata "
        "now: cannot be read now)",
        "  then promote it back, and see zones b, c follow"]
    up = failback_plan("a", "a", UNDER_B, running=True, catch_up=judged(BEHIND),
                       others=["b", "c"])
    assert up[1].startswith("  its gateways run: wait until they take period 8d2e11aa")
    assert "metadata now: metadata is behind on 3 shards" in up[2]
    assert failback_plan("a", "a", UNDER_A, running=True, catch_up=None,
                         others=["b", "c"]) == [
        "zone a (site a) is already master of period 3f1c9a6e epoch 7 (realm epoch 2, "
        "master a): would only see zones b, c run it"]


def _step(name: str, changed: bool) -> FailoverStep:
    return FailoverStep(name, "b", changed, "detail", 0.25, check=not changed)


def test_facts_record_the_periods_the_time_and_whether_it_was_forced() -> None:
    lost = promotion_mode("b", "a", [A_URL], master_answers=False)
    result = PromoteResult("b", (_step("check metadata", False), _step("zone modify", True),
                                 _step("commit period", True)), 1.23456, UNDER_A, UNDER_B,
                           forced=True)
    facts = promote_facts("b", result, lost, AT)
    assert facts["period_before"] == {"id": "3f1c9a6e-0000", "epoch": 7, "realm_epoch": 2,
                                      "master": "a"}
    assert facts["period_after"]["master"] == "b"
    assert (facts["seconds"], facts["forced"], facts["force_allowed"]) == (1.235, True, True)
    assert facts["steps"] == ["zone modify", "commit period"]
    assert facts["rgw_writable_at"] == AT.isoformat()
    again = PromoteResult("b", (_step("check master", False),), 0.1, UNDER_B, UNDER_B)
    facts = promote_facts("b", again, PromoteMode(False, "zone b is already master"), AT)
    assert not facts["changed"] and "rgw_writable_at" not in facts


def test_failback_facts_name_the_master_it_took_over_from() -> None:
    result = FailbackResult("a", "b", (_step("realm pull", True),), 47.0, UNDER_B, UNDER_A)
    facts = failback_facts("a", result, AT)
    assert (facts["previous_master"], facts["period_after"]["master"]) == ("b", "a")
    assert facts["changed"] and facts["rgw_writable_at"] == AT.isoformat()


def test_a_failure_says_what_was_done_before_it() -> None:
    steps = (_step("check metadata", False), _step("zone modify", True))
    assert failed_with("commit period on zone b: exited 5", steps) == (
        "commit period on zone b: exited 5; done before it: zone modify on zone b: detail")
    assert failed_with("read period", ()) == "read period"
