"""When backup jobs run: cron expressions in UTC, a fixed per-job jitter, and the rule for
runs missed while the daemon was down. Pure: every function takes the instant it works
from; nothing here reads the clock or draws a random number.

A job's run times are its cron slots, each delayed by the same offset inside its
schedule's jitter. The offset comes from a hash of the tenant and the job, so every
site and every restart computes the same times: tenants who all wrote `0 18 * * *` are
spread over the jitter, and a restart never reshuffles them.
"""

import hashlib
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated

from croniter import CroniterBadDateError, CroniterError, croniter
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from drd.domain.durations import Duration, format_duration

ZERO = timedelta(0)
DAY = timedelta(days=1)
# Schedules are checked from a fixed instant, never from the clock, so a policy that is
# valid today is valid tomorrow: a Monday at the start of a leap year.
REFERENCE = datetime(2024, 1, 1, tzinfo=UTC)
CRON_ALIASES = ("@hourly", "@daily", "@midnight", "@weekly", "@monthly", "@yearly",
                "@annually")
MAX_CRON_LENGTH = 120
_CRON_FIELDS = "minute hour day-of-month month day-of-week"
# croniter's own extensions: R picks a random time on every parse, H needs a hash id.
_EXTENSION = re.compile(r"^[HR](?:$|[(/])", re.IGNORECASE)
# Enough runs to meet the shortest gap of an ordinary schedule (a day's runs, a week's
# days), few enough to stay cheap: croniter takes up to 0.3 ms a run. A rarer, shorter
# gap beyond them only lets a jitter exceed it, which shifts every run alike.
_GAP_SAMPLE_RUNS = 32
_GAP_SAMPLE_SPAN = timedelta(days=8 * 366)
_MAX_RUNS_PER_DAY = 24 * 60  # five-field cron cannot run more often than every minute
_MAX_MISSED_COUNTED = 1000
_TIME_FORMAT = "%Y-%m-%d %H:%M:%S UTC"


def _cron_expression(value: str) -> str:
    text = value.strip()
    example = "e.g. '0 18 * * *' (times are UTC)"
    if not text:
        raise ValueError(f"is empty; write the five cron fields, {_CRON_FIELDS}, {example}")
    if len(text) > MAX_CRON_LENGTH:
        raise ValueError(f"is longer than {MAX_CRON_LENGTH} characters")
    if text.startswith("@"):
        if text not in CRON_ALIASES:
            raise ValueError(f"'{text}' is not a schedule: the @ forms drd takes are "
                             f"{', '.join(CRON_ALIASES)}; or write five fields, {example}")
    else:
        fields = text.split()
        if len(fields) != 5:
            raise ValueError(f"'{text}' has {len(fields)} field{'' if len(fields) == 1 else 's'}"
                             f"; write the five of standard cron, {_CRON_FIELDS}, {example}; "
                             f"seconds and years fields are not taken")
        if any(_EXTENSION.match(item) for field in fields for item in field.split(",")):
            raise ValueError(f"'{text}' uses croniter's H or R extension, which drd does not "
                             f"take: write fixed times and set jitter to spread the runs")
    try:
        croniter(text, REFERENCE, ret_type=datetime).get_next()
    except CroniterBadDateError:
        raise ValueError(f"'{text}' never runs: no date matches it (such as 30 February)"
                         ) from None
    except CroniterError as error:
        raise ValueError(f"'{text}' is not a cron expression ({error}); write the five "
                         f"fields, {_CRON_FIELDS}, {example}") from None
    return text


CronExpression = Annotated[str, AfterValidator(_cron_expression),
                           Field(json_schema_extra={"maxLength": MAX_CRON_LENGTH})]


class Schedule(BaseModel):
    """A cron expression in UTC, and how far past each slot the job may be spread."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    cron: CronExpression = Field(
        description="When the job runs, as five cron fields (minute hour day-of-month "
                    "month day-of-week) in UTC, or @hourly, @daily, @weekly, @monthly, "
                    "@yearly. China Standard Time is UTC+8: 02:00 in Beijing is "
                    "'0 18 * * *'.", examples=["0 18 * * *"])
    jitter: Duration = Field(
        default="0s", validate_default=True,
        description="Each run starts up to this long after its cron time, by a fixed "
                    "offset drd derives from the tenant and the job, so tenants with the "
                    "same cron do not all start at once and a restart keeps the times. "
                    "Shorter than the shortest gap between two runs. Default 0s.",
        examples=["30m"])

    @field_validator("jitter")
    @classmethod
    def _jitter_inside_gap(cls, jitter: timedelta, info: ValidationInfo) -> timedelta:
        cron = info.data.get("cron")
        if cron is None or not jitter:
            return jitter
        gap = shortest_gap(cron)
        if gap is not None and jitter >= gap:
            raise ValueError(f"{format_duration(jitter)} is not shorter than the shortest gap "
                             f"between two runs of '{cron}', {format_duration(gap)}; a "
                             f"run would be pushed past the next one's time")
        return jitter


def jitter_offset(tenant: str, job: str, jitter: timedelta) -> timedelta:
    """The fixed delay, in whole seconds within [0, jitter), of `tenant`'s `job`.

    A SHA-256 of the two names, not Python's salted `hash`, so it is the same on every
    site and after every restart.
    """
    seconds = int(jitter.total_seconds())
    if seconds <= 0:
        return ZERO
    digest = hashlib.sha256(f"{tenant}\0{job}".encode()).digest()
    return timedelta(seconds=int.from_bytes(digest[:8], "big") % seconds)


@dataclass(frozen=True)
class RunDue:
    """Whether a job should run now; `run_time` is the run time it stands for."""

    due: bool
    run_time: datetime | None
    reason: str


@dataclass(frozen=True)
class Timetable:
    """When one job runs: each slot of `cron` (UTC), delayed by the job's `offset`."""

    cron: str
    offset: timedelta = ZERO

    @classmethod
    def of(cls, schedule: Schedule, tenant: str, job: str) -> "Timetable":
        """The timetable of `tenant`'s `job` under `schedule`, jitter offset included."""
        return cls(schedule.cron, jitter_offset(tenant, job, schedule.jitter))

    def next_runs(self, after: datetime, count: int) -> list[datetime]:
        """The next `count` run times strictly after `after`, in UTC."""
        runs = croniter(self.cron, _utc(after) - self.offset, ret_type=datetime)
        return [runs.get_next() + self.offset for _ in range(count)]

    def latest_run_time(self, at: datetime) -> datetime | None:
        """The newest run time at or before `at`, or None if there is none."""
        slot_at = _utc(at) - self.offset
        # A slot exactly at `slot_at` counts; croniter's get_prev would skip it.
        candidate = croniter(self.cron, slot_at - timedelta(minutes=1),
                             ret_type=datetime).get_next()
        if candidate > slot_at:
            try:
                candidate = croniter(self.cron, slot_at, ret_type=datetime).get_prev()
            except CroniterBadDateError:
                return None
        return candidate + self.offset

    def run_due(self, last_run: datetime, now: datetime) -> RunDue:
        """Whether to run now: once if any run time passed since `last_run`, however many.

        `last_run` is when the job last started, or, if it never has, when it was first
        scheduled, so that a first run time missed while the daemon was down still runs.
        Missed run times are run once on start, never once per missed slot.
        """
        now, last_run = _utc(now), _utc(last_run)
        newest = self.latest_run_time(now)
        upcoming = format_run_time(self.next_runs(now, 1)[0])
        if newest is None:
            return RunDue(False, None, f"no run time has come yet; first at {upcoming}")
        if newest <= last_run:
            return RunDue(False, None, f"last run {format_run_time(last_run)} is not older "
                                       f"than the latest run time "
                                       f"{format_run_time(newest)}; next at {upcoming}")
        missed = self._count_between(last_run, now)
        if missed == 1:
            return RunDue(True, newest, f"run time {format_run_time(newest)} has come")
        shown = f"more than {_MAX_MISSED_COUNTED}" if missed > _MAX_MISSED_COUNTED else missed
        return RunDue(True, newest, f"{shown} run times passed since the last run "
                                    f"{format_run_time(last_run)}; running once, for "
                                    f"{format_run_time(newest)}")

    def _count_between(self, start: datetime, end: datetime) -> int:
        """Run times in (start, end], counted up to one more than _MAX_MISSED_COUNTED."""
        runs = croniter(self.cron, start - self.offset, ret_type=datetime)
        count = 0
        while count <= _MAX_MISSED_COUNTED and runs.get_next() + self.offset <= end:
            count += 1
        return count


def runs_per_day(cron: str) -> int:
    """How many times `cron` runs on a day it runs at all, counted over one UTC day.

    Five-field cron picks days with its day fields and the same minutes and hours on
    each of them, so one day that has runs tells every such day.
    """
    first = croniter(cron, REFERENCE, ret_type=datetime).get_next()
    day_start = first.replace(hour=0, minute=0, second=0, microsecond=0)
    runs = croniter(cron, day_start - timedelta(seconds=1), ret_type=datetime)
    count = 0
    while count <= _MAX_RUNS_PER_DAY and runs.get_next() < day_start + DAY:
        count += 1
    return count


def shortest_gap(cron: str) -> timedelta | None:
    """The shortest time between two consecutive runs of `cron`, None if it runs once.

    Measured over its first 32 runs, or 8 years, from a fixed instant.
    """
    runs = croniter(cron, REFERENCE, ret_type=datetime)
    previous = runs.get_next()
    shortest: timedelta | None = None
    for _ in range(_GAP_SAMPLE_RUNS):
        try:
            current = runs.get_next()
        except CroniterBadDateError:
            break
        gap = current - previous
        shortest = gap if shortest is None else min(shortest, gap)
        if current - REFERENCE > _GAP_SAMPLE_SPAN:
            break
        previous = current
    return shortest


def format_run_time(moment: datetime) -> str:
    """`2026-07-01 18:17:03 UTC`: how run times are shown to people."""
    return moment.astimezone(UTC).strftime(_TIME_FORMAT)


def _utc(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        raise ValueError(f"{moment} has no time zone; schedules work on aware UTC times")
    return moment.astimezone(UTC)
