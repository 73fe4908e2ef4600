"""Mirror snapshot slots: spread over the interval, stable, never more than one apart."""

from datetime import UTC, datetime, timedelta

import pytest

from drd.domain.snapshot_schedule import is_due, next_snapshot_due, slot_offset

NOW = datetime(2026, 11, 21, 12, 0, 0, tzinfo=UTC)
MINUTE = timedelta(minutes=1)


def test_no_more_than_one_interval_passes_between_snapshots() -> None:
    for seconds_ago in (0, 1, 29, 59, 60, 61, 3600):
        last = NOW - timedelta(seconds=seconds_ago)
        due = next_snapshot_due("img", MINUTE, last, NOW)
        assert last < due <= last + MINUTE


def test_an_image_without_a_snapshot_is_due_now() -> None:
    assert is_due("img", MINUTE, None, NOW)


def test_slots_are_stable_for_an_image_and_spread_across_images() -> None:
    offsets = {slot_offset(f"image-{n}", MINUTE) for n in range(1000)}
    assert all(timedelta(0) <= offset < MINUTE for offset in offsets)
    seconds = [int(offset.total_seconds()) for offset in offsets]
    busiest = max(seconds.count(second) for second in range(60))
    assert busiest < 40, "a thousand images must not pile into one second of the minute"
    assert slot_offset("image-1", MINUTE) == slot_offset("image-1", MINUTE)


def test_after_a_snapshot_the_image_waits_for_its_next_slot() -> None:
    due = next_snapshot_due("img", MINUTE, NOW, NOW)
    assert not is_due("img", MINUTE, NOW, NOW)
    assert is_due("img", MINUTE, NOW, due)


def test_a_non_positive_interval_is_refused() -> None:
    with pytest.raises(ValueError, match="must be positive"):
        next_snapshot_due("img", timedelta(0), None, NOW)
