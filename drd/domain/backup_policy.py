"""The backup part of a tenant policy (`backup:`): what restic backs up, when, into which
repository, how long snapshots are kept, and how the repository is proven sound.

Field rules sit on the fields. Rules between the parts are in `backup_rules`; the rule
between backup and protection (backing up the remote copy needs one) is in
`TenantPolicy`. Rules that need the site config or the file system (grants, limits, the
default repository, the password file's mode) are in `drd.domain.policy_limits`. Pure.
"""

from collections.abc import Iterator
from datetime import timedelta
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    WithJsonSchema,
    model_validator,
)

from drd.domain.backup_schedule import Schedule
from drd.domain.backup_sources import (
    AT_LEAST_ONE,
    PATHS_SOURCE_EXAMPLE,
    RBD_SOURCE_EXAMPLE,
    BackupSource,
    not_empty,
    source_rules,
)
from drd.domain.durations import PositiveDuration, format_duration
from drd.domain.policy_names import unique_items
from drd.domain.restic_values import (
    Bandwidth,
    PasswordFile,
    ReadDataSubset,
    RepositoryUrl,
    ResticTag,
)
from drd.domain.rules import RuleViolation


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class BackupJob(StrEnum):
    """The scheduled jobs of a backup policy; each name also keys its jitter offset."""

    BACKUP = "backup"
    PRUNE = "prune"
    CHECK = "check"
    RESTORE_TEST = "restore_test"


_KEEP_COUNTS = ("keep_last", "keep_hourly", "keep_daily", "keep_weekly", "keep_monthly",
                "keep_yearly")


def _whole_hours(value: timedelta | None) -> timedelta | None:
    if value is not None and value % timedelta(hours=1):
        raise ValueError(f"{format_duration(value)} is not whole hours: restic's "
                         f"--keep-within counts in days and hours")
    return value


def _keep(what: str, example: int) -> Any:
    return Field(default=None, ge=0, strict=True, description=what, examples=[example])


class Retention(_Section):
    """Which snapshots restic keeps (`restic forget`); all the others are removed."""

    keep_last: int | None = _keep("Keep the newest N snapshots.", 3)
    keep_hourly: int | None = _keep("For the last N hours that have snapshots, keep the "
                                    "newest snapshot of each hour.", 24)
    keep_daily: int | None = _keep("For the last N days that have snapshots, keep the "
                                   "newest snapshot of each day.", 7)
    keep_weekly: int | None = _keep("For the last N weeks that have snapshots, keep the "
                                    "newest snapshot of each week.", 4)
    keep_monthly: int | None = _keep("For the last N months that have snapshots, keep "
                                     "the newest snapshot of each month.", 12)
    keep_yearly: int | None = _keep("For the last N years that have snapshots, keep the "
                                    "newest snapshot of each year.", 5)
    keep_within: Annotated[PositiveDuration | None, AfterValidator(_whole_hours)] = Field(
        default=None, description="Keep every snapshot taken within this long before the "
                                  "newest one; whole hours or days.", examples=["2d"])

    @model_validator(mode="after")
    def _keeps_something(self) -> "Retention":
        if not self.rules():
            raise ValueError(f"keeps nothing: give at least one keep rule above zero "
                             f"({', '.join((*_KEEP_COUNTS, 'keep_within'))})")
        return self

    def rules(self) -> dict[str, int | timedelta]:
        """The rules in force, by name, in restic's order; a count of 0 is no rule."""
        rules: dict[str, int | timedelta] = {}
        for name in _KEEP_COUNTS:
            count = getattr(self, name)
            if count:
                rules[name] = count
        if self.keep_within is not None:
            rules["keep_within"] = self.keep_within
        return rules


_SCHEDULE_EXAMPLE = {"cron": "0 18 * * *", "jitter": "30m"}
_PRUNE_EXAMPLE = {"schedule": {"cron": "0 20 * * 0", "jitter": "1h"}}
_CHECK_EXAMPLE = {"schedule": {"cron": "0 22 * * 3", "jitter": "1h"},
                  "read_data_subset": "5%"}
_RESTORE_TEST_EXAMPLE = {"schedule": {"cron": "0 21 * * 6", "jitter": "1h"},
                         "sample": {"sources": 1, "snapshot": "latest"}}
BACKUP_EXAMPLE = {
    "sources": [RBD_SOURCE_EXAMPLE, PATHS_SOURCE_EXAMPLE],
    "schedule": _SCHEDULE_EXAMPLE,
    "password_file": "/etc/drd/restic/water.password",
    "retention": {"keep_daily": 7, "keep_weekly": 4, "keep_monthly": 12},
    "prune": _PRUNE_EXAMPLE,
    "check": _CHECK_EXAMPLE,
    "restore_test": _RESTORE_TEST_EXAMPLE,
    "upload_limit": "20MiB/s",
}


class PruneJob(_Section):
    """When drd forgets snapshots by the retention, then removes unreferenced data (prune)."""

    schedule: Schedule = Field(
        description="When prune runs. It holds restic's exclusive lock on the repository, "
                    "so backups to it wait meanwhile.",
        examples=[_PRUNE_EXAMPLE["schedule"]])


class CheckJob(_Section):
    """When drd verifies the repository (`restic check`)."""

    schedule: Schedule = Field(description="When check runs; it locks the repository "
                                           "exclusively.",
                               examples=[_CHECK_EXAMPLE["schedule"]])
    read_data_subset: ReadDataSubset | None = Field(
        default=None,
        description="Also read back and verify this much of the stored data: a group n/t "
                    "(1/7 reads one seventh), a percentage (5%) or a size (500M, 2G, in "
                    "binary units). Default: check the structure only.",
        examples=["5%"])


class SnapshotPick(StrEnum):
    """Which snapshot of a source a restore test restores."""

    LATEST = "latest"  # the newest: proves that the last backup can be restored
    RANDOM = "random"  # any one kept: also finds older snapshots whose data has rotted


ALL_SOURCES = "all"


def _sample_count(value: object) -> object:
    if value == ALL_SOURCES or (isinstance(value, int) and not isinstance(value, bool)
                                and value >= 1):
        return value
    raise ValueError(f"must be a whole number of sources, at least 1, or '{ALL_SOURCES}'")


class RestoreSample(_Section):
    """How much one restore test restores."""

    sources: Annotated[int | Literal["all"], BeforeValidator(_sample_count),
                       WithJsonSchema({"anyOf": [{"type": "integer", "minimum": 1},
                                                 {"const": ALL_SOURCES}]})] = Field(
        default=1,
        description="How many sources each run tests, least recently verified first, so "
                    "that successive runs go round every source; 'all' tests every "
                    "source each run. Default 1.", examples=[1])
    snapshot: SnapshotPick = Field(
        default=SnapshotPick.LATEST,
        description="latest (the default): restore each tested source's newest snapshot; "
                    "random: one of its kept snapshots, drawn at random, which also "
                    "proves the older ones.", examples=["latest"])


class RestoreTestJob(_Section):
    """When drd restores sampled snapshots into scratch space and compares checksums."""

    schedule: Schedule = Field(description="When a restore test runs.",
                               examples=[_RESTORE_TEST_EXAMPLE["schedule"]])
    sample: RestoreSample = Field(default_factory=RestoreSample,
                                  description="What each run restores; default one source, "
                                              "its latest snapshot.",
                                  examples=[{"sources": 1, "snapshot": "latest"}])


class BackupPolicy(_Section):
    """The tenant's restic backups: sources, schedule, repository, retention, checks."""

    sources: Annotated[tuple[BackupSource, ...], AT_LEAST_ONE,
                       AfterValidator(not_empty)] = Field(
        description="What to back up: named sources of RBD images or files; at least one.",
        examples=[[RBD_SOURCE_EXAMPLE, PATHS_SOURCE_EXAMPLE]])
    schedule: Schedule = Field(description="When backups run.", examples=[_SCHEDULE_EXAMPLE])
    repository: RepositoryUrl | None = Field(
        default=None,
        description="restic repository: an absolute path, or local:, s3:, rest:, sftp:, "
                    "swift:, b2:, azure:, gs:, rclone: as restic writes them, without any "
                    "password or key in it. Default: the tenant's repository at the "
                    "remote site, as the site config names it.",
        examples=["s3:http://127.0.3.1:8480/drd-backups/water"])
    password_file: PasswordFile = Field(
        description="Absolute path of the file holding the repository password on the "
                    "sites that run the jobs, mode 0600; never the password itself.",
        examples=["/etc/drd/restic/water.password"])
    initialise_repository: bool = Field(
        default=True, strict=True,
        description="Whether drd may create the repository (`restic init`) when it does "
                    "not exist yet. Default true.", examples=[True])
    retention: Retention | None = Field(
        default=None, description="Which snapshots are kept, applied by the prune job. "
                                  "Default: keep every snapshot.",
        examples=[{"keep_daily": 7, "keep_weekly": 4, "keep_monthly": 12}])
    prune: PruneJob | None = Field(
        default=None, description="When the retention is applied and unused data removed; "
                                  "required with retention.",
        examples=[_PRUNE_EXAMPLE])
    check: CheckJob | None = Field(
        default=None, description="When the repository is verified; optional.",
        examples=[_CHECK_EXAMPLE])
    restore_test: RestoreTestJob | None = Field(
        default=None, description="When sampled snapshots are restored and compared with "
                                  "their source; optional.",
        examples=[_RESTORE_TEST_EXAMPLE])
    upload_limit: Bandwidth | None = Field(
        default=None, description="Most bandwidth one backup may send to the repository, "
                                  "e.g. 20MiB/s or 100Mbit/s. Default: no limit.",
        examples=["20MiB/s"])
    tags: Annotated[tuple[ResticTag, ...], AfterValidator(unique_items)] = Field(
        default=(), description="restic tags added to every snapshot, besides drd's own "
                                "(which start with 'drd:'); no commas.",
        examples=[["water", "metering"]])

    def schedules(self) -> dict[BackupJob, Schedule]:
        """Every scheduled job of this policy and its schedule; backup always comes first."""
        jobs: dict[BackupJob, Schedule] = {BackupJob.BACKUP: self.schedule}
        for job, part in ((BackupJob.PRUNE, self.prune), (BackupJob.CHECK, self.check),
                          (BackupJob.RESTORE_TEST, self.restore_test)):
            if part is not None:
                jobs[job] = part.schedule
        return jobs

def backup_rules(backup: BackupPolicy) -> Iterator[RuleViolation]:
    """Rules between the parts of `backup`, each at the path in the policy to report on."""
    yield from source_rules(backup.sources)
    if backup.retention is not None and backup.prune is None:
        yield RuleViolation(("backup", "retention"),
                            "the prune job applies the retention (restic forget, then prune), "
                            "and it has no schedule; add prune: {schedule: {cron: ...}}")
    test = backup.restore_test
    if test is not None and isinstance(test.sample.sources, int) \
            and test.sample.sources > len(backup.sources):
        yield RuleViolation(("backup", "restore_test", "sample", "sources"),
                            f"asks for {test.sample.sources} sources a run but the policy "
                            f"has {len(backup.sources)}; lower it, or write 'all'")
