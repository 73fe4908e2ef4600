"""Durations as people write them in YAML: `30s`, `5m`, `1h30m`, `2d`, or whole seconds.

A field typed `Duration` (zero or longer) or `PositiveDuration` (longer than zero) holds
a `timedelta`, never a string, and serialises back to the compact form (`90` -> `1m30s`).
Its JSON Schema offers editors a string pattern or a whole number of seconds. Give a
default as text with `validate_default=True` (`Field(default="1m", validate_default=True)`):
the schema shows a default as pydantic encodes it, which for a timedelta is `PT1M`.
"""

import re
from datetime import timedelta
from typing import Annotated, Any

from pydantic import BeforeValidator, PlainSerializer, WithJsonSchema

# Largest unit first, each at most once. `m` is minutes; months and weeks are not units,
# since "1M" and "1m" would differ only by case.
_UNITS = (("d", 86400), ("h", 3600), ("m", 60), ("s", 1))
_BODY = r"(?:[0-9]+d)?(?:[0-9]+h)?(?:[0-9]+m)?(?:[0-9]+s)?$"
# The lookaheads keep the empty string out (and, for a positive duration, all-zero ones);
# both patterns mean the same in Python and in the ECMA-262 dialect JSON Schema uses.
DURATION_PATTERN = rf"^(?=[0-9]){_BODY}"
POSITIVE_DURATION_PATTERN = rf"^(?=[0-9dhms]*[1-9]){_BODY}"
_PARTS = re.compile(r"^(?:([0-9]+)d)?(?:([0-9]+)h)?(?:([0-9]+)m)?(?:([0-9]+)s)?$")

MAX_DURATION = timedelta(days=36500)
_EXAMPLES = ["30s", "5m", "1h30m", "2d", 90]
_SHAPE = ("a duration such as 30s, 5m, 1h30m or 2d (units d, h, m, s, largest first), "
          "or a whole number of seconds")


def parse_duration(value: object) -> timedelta:
    """`"1h30m"`, `5400` or a timedelta as a timedelta; ValueError with a message for people."""
    if isinstance(value, timedelta):
        duration = value
    elif isinstance(value, bool):  # YAML's yes/no/on/off are booleans, and bool is an int
        raise ValueError(f"must be {_SHAPE}; got {str(value).lower()} (a boolean)")
    elif isinstance(value, int):
        if value < 0:
            raise ValueError(f"must not be negative, got {value}")
        duration = timedelta(seconds=min(value, int(MAX_DURATION.total_seconds()) + 1))
    elif isinstance(value, float):
        raise ValueError(f"must be whole seconds, got the number {value}; "
                         f"write e.g. 90 or 1m30s")
    elif isinstance(value, str):
        duration = _parse_text(value)
    else:
        raise ValueError(f"must be {_SHAPE}; got {_describe(value)}")
    if duration < timedelta(0):
        raise ValueError(f"must not be negative, got {duration}")
    if duration % timedelta(seconds=1):
        raise ValueError(f"must be whole seconds, got {duration.total_seconds()} seconds")
    if duration > MAX_DURATION:
        raise ValueError(f"must be at most {format_duration(MAX_DURATION)} (100 years)")
    return duration


def format_duration(duration: timedelta) -> str:
    """The compact form of whole seconds: 0s, 45s, 1m30s, 1h30m, 2d."""
    seconds = int(duration.total_seconds())
    if seconds != duration.total_seconds():
        raise ValueError(f"{duration} is not a whole number of seconds")
    if seconds == 0:
        return "0s"
    sign, seconds = ("-", -seconds) if seconds < 0 else ("", seconds)
    text = ""
    for unit, size in _UNITS:
        count, seconds = divmod(seconds, size)
        if count:
            text += f"{count}{unit}"
    return sign + text


def _parse_text(text: str) -> timedelta:
    if not text:
        raise ValueError(f"is empty; must be {_SHAPE}")
    if text.isdigit():
        raise ValueError(f"'{text}' has no unit: write {text}s for seconds or {text}m for "
                         f"minutes (a bare number, unquoted, also means seconds)")
    if text.startswith("-"):
        raise ValueError(f"must not be negative, got '{text}'")
    match = _PARTS.fullmatch(text)
    if match is None:
        hint = "; units are lowercase" if _PARTS.fullmatch(text.lower()) else ""
        raise ValueError(f"'{text}' is not a duration: must be {_SHAPE}{hint}")
    seconds = sum(int(count) * size for count, (_, size) in zip(match.groups(), _UNITS,
                                                                 strict=True) if count)
    if seconds > MAX_DURATION.total_seconds():
        raise ValueError(f"must be at most {format_duration(MAX_DURATION)} (100 years), "
                         f"got '{text}'")
    return timedelta(seconds=seconds)


def _positive(value: object) -> timedelta:
    duration = parse_duration(value)
    if not duration:
        raise ValueError(f"must be longer than zero, got {_shown(value)}")
    return duration


def _shown(value: object) -> str:
    return f"'{value}'" if isinstance(value, str) else str(value)


def _describe(value: object) -> str:
    if value is None:
        return "nothing (null)"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list | tuple):
        return "a list"
    return f"a {type(value).__name__}"


def _schema(pattern: str, minimum: int) -> dict[str, Any]:
    return {
        "anyOf": [
            {"type": "string", "pattern": pattern},
            {"type": "integer", "minimum": minimum,
             "maximum": int(MAX_DURATION.total_seconds())},
        ],
        "examples": _EXAMPLES,
    }


_serialise = PlainSerializer(format_duration, return_type=str)

Duration = Annotated[timedelta, BeforeValidator(parse_duration), _serialise,
                     WithJsonSchema(_schema(DURATION_PATTERN, 0))]
PositiveDuration = Annotated[timedelta, BeforeValidator(_positive), _serialise,
                             WithJsonSchema(_schema(POSITIVE_DURATION_PATTERN, 1))]
