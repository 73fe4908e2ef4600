"""Durations as tenants and operators write them: `30s`, `5m`, `1h30m`, `2d` or seconds."""

import re
from datetime import timedelta

import pytest
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from drd.domain.durations import (
    DURATION_PATTERN,
    POSITIVE_DURATION_PATTERN,
    Duration,
    PositiveDuration,
    format_duration,
    parse_duration,
)


class Timings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    grace: Duration = Field(default="0s", validate_default=True, description="May be zero.")
    interval: PositiveDuration = Field(description="Must be longer than zero.",
                                       examples=["1m"])
    optional: PositiveDuration | None = None


def error_of(**fields: object) -> str:
    with pytest.raises(ValidationError) as caught:
        Timings.model_validate({"interval": 60, **fields})
    errors = caught.value.errors()
    assert len(errors) == 1, errors
    return str(errors[0]["ctx"]["error"])


@pytest.mark.parametrize(
    ("written", "seconds"),
    [("30s", 30), ("5m", 300), ("1h", 3600), ("1h30m", 5400), ("2d", 172800),
     ("1d2h3m4s", 93784), ("90s", 90), ("120m", 7200), (45, 45), (0, 0), ("0s", 0),
     (timedelta(minutes=2), 120)],
)
def test_accepted_forms(written: object, seconds: int) -> None:
    assert Timings.model_validate({"interval": 1, "grace": written}).grace == \
        timedelta(seconds=seconds)


@pytest.mark.parametrize(
    ("seconds", "compact"),
    [(0, "0s"), (45, "45s"), (60, "1m"), (90, "1m30s"), (5400, "1h30m"), (172800, "2d"),
     (93784, "1d2h3m4s")],
)
def test_serialises_back_to_the_compact_form(seconds: int, compact: str) -> None:
    assert format_duration(timedelta(seconds=seconds)) == compact
    timings = Timings.model_validate({"interval": seconds or 1, "grace": seconds})
    assert timings.model_dump()["grace"] == compact
    assert Timings.model_validate_json(timings.model_dump_json()) == timings


@pytest.mark.parametrize(
    ("written", "message"),
    [
        ("90", "'90' has no unit: write 90s for seconds or 90m for minutes (a bare number, "
               "unquoted, also means seconds)"),
        ("5M", "'5M' is not a duration: must be a duration such as 30s, 5m, 1h30m or 2d "
               "(units d, h, m, s, largest first), or a whole number of seconds; units are "
               "lowercase"),
        ("30m1h", "'30m1h' is not a duration: must be a duration such as 30s, 5m, 1h30m or "
                  "2d (units d, h, m, s, largest first), or a whole number of seconds"),
        ("1h 30m", "'1h 30m' is not a duration: must be a duration such as 30s, 5m, 1h30m "
                   "or 2d (units d, h, m, s, largest first), or a whole number of seconds"),
        ("", "is empty; must be a duration such as 30s, 5m, 1h30m or 2d (units d, h, m, s, "
             "largest first), or a whole number of seconds"),
        ("-5m", "must not be negative, got '-5m'"),
        (-5, "must not be negative, got -5"),
        (1.5, "must be whole seconds, got the number 1.5; write e.g. 90 or 1m30s"),
        (True, "must be a duration such as 30s, 5m, 1h30m or 2d (units d, h, m, s, largest "
               "first), or a whole number of seconds; got true (a boolean)"),
        ([30], "must be a duration such as 30s, 5m, 1h30m or 2d (units d, h, m, s, largest "
               "first), or a whole number of seconds; got a list"),
        ("36501d", "must be at most 36500d (100 years), got '36501d'"),
        (10**30, "must be at most 36500d (100 years)"),
        (timedelta(milliseconds=1500), "must be whole seconds, got 1.5 seconds"),
    ],
)
def test_mistakes_are_explained(written: object, message: str) -> None:
    assert error_of(grace=written) == message


@pytest.mark.parametrize(("written", "shown"), [(0, "0"), ("0s", "'0s'"), ("0h0m", "'0h0m'")])
def test_a_positive_duration_refuses_zero_where_a_plain_one_accepts_it(
        written: object, shown: str) -> None:
    assert Timings.model_validate({"interval": 1, "grace": written}).grace == timedelta(0)
    assert error_of(interval=written) == f"must be longer than zero, got {shown}"
    assert error_of(optional=written) == f"must be longer than zero, got {shown}"


def test_optional_durations_take_null_and_defaults_are_written_as_text() -> None:
    timings = Timings.model_validate({"interval": 1, "optional": None})
    assert (timings.optional, timings.grace) == (None, timedelta(0))


def test_parse_duration_is_usable_on_its_own() -> None:
    assert parse_duration("1h30m") == timedelta(hours=1, minutes=30)
    with pytest.raises(ValueError, match="has no unit"):
        parse_duration("5")


def test_the_schema_offers_a_pattern_and_whole_seconds_with_examples() -> None:
    properties = Timings.model_json_schema()["properties"]
    grace, interval = properties["grace"], properties["interval"]
    assert grace["anyOf"] == [
        {"type": "string", "pattern": DURATION_PATTERN},
        {"type": "integer", "minimum": 0, "maximum": 36500 * 86400},
    ]
    assert grace["examples"] == ["30s", "5m", "1h30m", "2d", 90]
    assert grace["default"] == "0s"
    assert interval["anyOf"][0] == {"type": "string", "pattern": POSITIVE_DURATION_PATTERN}
    assert interval["anyOf"][1]["minimum"] == 1
    assert (interval["description"], interval["examples"]) == (
        "Must be longer than zero.", ["1m"])


@pytest.mark.parametrize(
    ("text", "plain", "positive"),
    [("30s", True, True), ("1h30m", True, True), ("0s", True, False), ("0m0s", True, False),
     ("", False, False), ("5", False, False), ("30m1h", False, False), ("1M", False, False),
     ("d", False, False), ("10m0s", True, True)],
)
def test_the_schema_patterns_agree_with_the_parser(
        text: str, plain: bool, positive: bool) -> None:
    """Editors check with the pattern; it must accept exactly what drd accepts."""
    assert bool(re.fullmatch(DURATION_PATTERN, text)) is plain
    assert bool(re.fullmatch(POSITIVE_DURATION_PATTERN, text)) is positive
    if plain and not text.isdigit():
        assert parse_duration(text) >= timedelta(0)
