"""Backup schedule maths: cron checks, run times, jitter and the missed-run rule."""

from datetime import UTC, datetime, timedelta, timezone

import pytest
from pydantic import ValidationError

from drd.domain.backup_schedule import (
    Schedule,
    Timetable,
    format_run_time,
    jitter_offset,
    runs_per_day,
    shortest_gap,
)

NOW = datetime(2026, 7, 1, 12, 0, tzinfo=UTC)  # a Wednesday


def at(day: int, hour: int, minute: int = 0, second: int = 0) -> datetime:
    return datetime(2026, 7, day, hour, minute, second, tzinfo=UTC)


def cron_error(cron: str) -> str:
    with pytest.raises(ValidationError) as caught:
        Schedule(cron=cron)
    (error,) = caught.value.errors()
    assert error["loc"] == ("cron",)
    return str(error["ctx"]["error"])


def test_the_next_five_runs_are_the_cron_slots_after_the_instant_in_utc() -> None:
    timetable = Timetable("0 18 * * 1-5")
    assert timetable.next_runs(NOW, 5) == [at(1, 18), at(2, 18), at(3, 18), at(6, 18),
                                           at(7, 18)]


def test_an_instant_exactly_on_a_slot_is_not_its_own_next_run() -> None:
    assert Timetable("0 18 * * *").next_runs(at(1, 18), 1) == [at(2, 18)]


def test_run_times_do_not_depend_on_the_time_zone_the_instant_is_written_in() -> None:
    beijing = NOW.astimezone(timezone(timedelta(hours=8)))
    timetable = Timetable("*/20 * * * *", timedelta(seconds=7))
    assert timetable.next_runs(beijing, 3) == timetable.next_runs(NOW, 3)
    assert all(run.tzinfo is UTC for run in timetable.next_runs(beijing, 3))


def test_a_naive_instant_is_refused_rather_than_guessed() -> None:
    with pytest.raises(ValueError, match="no time zone"):
        Timetable("@daily").next_runs(datetime(2026, 7, 1), 1)


def test_the_offset_delays_every_run_and_the_first_run_after_now_is_kept() -> None:
    timetable = Timetable("0 * * * *", timedelta(minutes=10))
    # 12:05 is after the 12:00 slot but before its run at 12:10, which is still ahead.
    assert timetable.next_runs(at(1, 12, 5), 2) == [at(1, 12, 10), at(1, 13, 10)]


def test_jitter_offset_is_stable_within_the_jitter_and_differs_between_jobs() -> None:
    jitter = timedelta(minutes=30)
    offset = jitter_offset("water", "backup", jitter)
    assert offset == jitter_offset("water", "backup", jitter)  # same after a restart
    assert offset == timedelta(seconds=924)  # sha256-derived, not Python's salted hash()
    offsets = {jitter_offset(tenant, job, jitter)
               for tenant in ("water", "transport", "health")
               for job in ("backup", "prune", "check")}
    assert len(offsets) == 9
    assert all(timedelta(0) <= o < jitter and o.microseconds == 0 for o in offsets)
    assert jitter_offset("water", "backup", timedelta(0)) == timedelta(0)


def test_a_timetable_for_a_job_carries_its_tenants_offset() -> None:
    schedule = Schedule.model_validate({"cron": "0 18 * * *", "jitter": "30m"})
    timetable = Timetable.of(schedule, "water", "backup")
    assert timetable.next_runs(NOW, 2) == [at(1, 18, 15, 24), at(2, 18, 15, 24)]
    assert Timetable.of(schedule, "transport", "backup").offset != timetable.offset


def test_latest_run_time_counts_a_run_exactly_at_the_instant() -> None:
    timetable = Timetable("0 18 * * *", timedelta(minutes=5))
    assert timetable.latest_run_time(at(1, 18, 5)) == at(1, 18, 5)
    assert timetable.latest_run_time(at(1, 18, 4, 59)) == datetime(2026, 6, 30, 18, 5,
                                                                   tzinfo=UTC)


def test_a_run_time_that_came_since_the_last_run_is_due_once() -> None:
    timetable = Timetable("0 18 * * *")
    decision = timetable.run_due(last_run=at(1, 18, 0, 2), now=at(2, 18, 0, 1))
    assert decision.due and decision.run_time == at(2, 18)
    assert decision.reason == "run time 2026-07-02 18:00:00 UTC has come"


def test_runs_missed_while_the_daemon_was_down_run_once_not_once_per_slot() -> None:
    timetable = Timetable("0 * * * *")
    decision = timetable.run_due(last_run=at(1, 3, 0, 5), now=at(1, 9, 30))
    assert decision.due and decision.run_time == at(1, 9)  # the newest missed slot
    assert decision.reason == ("6 run times passed since the last run 2026-07-01 "
                               "03:00:05 UTC; running once, for 2026-07-01 09:00:00 UTC")
    # Once that one run has started, nothing else is due until the next slot.
    after = timetable.run_due(last_run=at(1, 9, 30, 1), now=at(1, 9, 45))
    assert not after.due
    assert after.reason == ("last run 2026-07-01 09:30:01 UTC is not older than the latest "
                            "run time 2026-07-01 09:00:00 UTC; next at 2026-07-01 "
                            "10:00:00 UTC")


def test_a_long_outage_is_still_one_run_and_the_count_is_bounded() -> None:
    decision = Timetable("* * * * *").run_due(last_run=at(1, 0), now=at(3, 0))
    assert decision.due and decision.run_time == at(3, 0)
    assert decision.reason.startswith("more than 1000 run times passed")


def test_a_job_first_scheduled_after_its_latest_slot_waits_for_the_next() -> None:
    # `last_run` is when the policy was applied for a job that never ran.
    decision = Timetable("0 18 * * *").run_due(last_run=at(1, 19), now=at(1, 20))
    assert not decision.due
    assert decision.reason.endswith("next at 2026-07-02 18:00:00 UTC")


def test_runs_per_day_counts_one_utc_day_of_the_cron() -> None:
    assert runs_per_day("0 18 * * *") == 1
    assert runs_per_day("*/30 * * * *") == 48
    assert runs_per_day("0 */6 * * 1-5") == 4  # weekdays only: a day it runs at all
    assert runs_per_day("@hourly") == 24
    assert runs_per_day("* * * * *") == 1440
    assert runs_per_day("0 0 29 2 *") == 1


def test_shortest_gap_finds_the_closest_two_runs() -> None:
    assert shortest_gap("0 1,2 * * *") == timedelta(hours=1)
    assert shortest_gap("0 0 1,15 * *") == timedelta(days=14)  # 1st to 15th, and February
    assert shortest_gap("@weekly") == timedelta(days=7)


@pytest.mark.parametrize(("cron", "message"), [
    ("", "is empty; write the five cron fields"),
    ("0 18 * *", "'0 18 * *' has 4 fields; write the five of standard cron"),
    ("0 0 18 * * *", "'0 0 18 * * *' has 6 fields"),
    ("H 18 * * *", "uses croniter's H or R extension"),
    ("R 18 * * *", "uses croniter's H or R extension"),
    ("61 18 * * *", "'61 18 * * *' is not a cron expression"),
    ("0 0 30 2 *", "'0 0 30 2 *' never runs: no date matches it"),
    ("@reboot", "'@reboot' is not a schedule: the @ forms drd takes are @hourly"),
])
def test_a_bad_cron_expression_is_refused_with_a_reason(cron: str, message: str) -> None:
    assert message in cron_error(cron)


def test_month_and_day_names_are_not_mistaken_for_croniter_extensions() -> None:
    assert Schedule(cron="0 18 * MAR-DEC THU,FRI").cron == "0 18 * MAR-DEC THU,FRI"


def test_jitter_must_be_shorter_than_the_shortest_gap_between_runs() -> None:
    with pytest.raises(ValidationError) as caught:
        Schedule.model_validate({"cron": "0 1,2 * * *", "jitter": "1h"})
    (error,) = caught.value.errors()
    assert error["loc"] == ("jitter",)
    assert str(error["ctx"]["error"]) == (
        "1h is not shorter than the shortest gap between two runs of '0 1,2 * * *', 1h; "
        "a run would be pushed past the next one's time")
    allowed = Schedule.model_validate({"cron": "0 1,2 * * *", "jitter": "59m"})
    assert allowed.jitter == timedelta(minutes=59)


def test_run_times_are_shown_in_utc_with_seconds() -> None:
    assert format_run_time(at(1, 18, 15, 24)) == "2026-07-01 18:15:24 UTC"
