"""The object part of a tenant policy: which of the tenant's S3 buckets drd watches, and
how far behind each destination zone may fall. Pure.

RGW multisite replicates every bucket of the zonegroup to every zone; drd never copies
objects. A selection therefore decides what drd measures, reports and, when the tenant
opts in, repairs: a bucket's sync lag at each destination against the tenant's target.
Buckets are picked by name or glob among those owned by the tenant's RGW user, so a glob
never reaches another tenant's bucket; a plain name owned by someone else is refused when
the policy is applied, because only the cluster knows owners (`bucket_owner_issues`).
"""

import re
from collections.abc import Iterator, Mapping
from enum import StrEnum
from fnmatch import fnmatchcase
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from drd.domain.durations import PositiveDuration
from drd.domain.rules import FieldPath, RuleViolation, duplicate_names

# S3 bucket names (3-63 of lowercase letters, digits, '.', '-'), plus the glob
# characters * ? [ ]. The length bound is checked on names, not on globs.
BUCKET_GLOB_PATTERN = r"^[a-z0-9.\-*?\[\]]{1,63}$"
_BUCKET_NAME = re.compile(r"^[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]$")
_GLOB_CHARS = re.compile(r"[*?\[]")


def _bucket_glob(value: str) -> str:
    if not re.fullmatch(BUCKET_GLOB_PATTERN, value):
        raise ValueError(f"{value!r} is not a bucket name or glob: use lowercase letters, "
                         f"digits, '.' and '-', with optional *, ? and [...] wildcards")
    if not _GLOB_CHARS.search(value) and not _BUCKET_NAME.fullmatch(value):
        raise ValueError(f"{value!r} is not an S3 bucket name: 3 to 63 characters, "
                         f"starting and ending with a letter or digit")
    return value


BucketGlob = Annotated[str, AfterValidator(_bucket_glob),
                       Field(json_schema_extra={"pattern": BUCKET_GLOB_PATTERN})]


def is_glob(pattern: str) -> bool:
    return bool(_GLOB_CHARS.search(pattern))


class RepairMode(StrEnum):
    """What drd does about a bucket whose sync is stuck at a destination."""

    REPORT = "report"  # report the stuck shards and the command an operator would run
    AUTO = "auto"  # also run `radosgw-admin bucket sync run` on it, once per episode


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


_LAG_DESCRIPTION = ("How far behind the primary zone this destination's copy of each "
                    "bucket may fall, as time: the age of the oldest change not yet "
                    "applied there. drd warns above it and reports a breach at twice it.")


class ObjectDestination(_Section):
    """One destination zone's sync-lag target."""

    lag_target: PositiveDuration = Field(description=_LAG_DESCRIPTION, examples=["2m"])


def _unique(globs: tuple[str, ...]) -> tuple[str, ...]:
    seen: set[str] = set()
    for glob in globs:
        if glob in seen:
            raise ValueError(f"{glob!r} is listed twice; list each bucket or glob once")
        seen.add(glob)
    return globs


OBJECT_EXAMPLE = {"name": "documents", "buckets": ["docs-*", "exports"],
                   "same_city": {"lag_target": "2m"}, "remote": {"lag_target": "10m"},
                   "repair": "report"}


class ObjectSelection(_Section):
    """The tenant's buckets chosen by name or glob, with a sync-lag target per destination."""

    model_config = ConfigDict(json_schema_extra={
        "anyOf": [{"required": ["same_city"]}, {"required": ["remote"]}]})

    name: Annotated[str, Field(pattern=r"^[a-z][a-z0-9-]{0,62}$")] = Field(
        description="Name of this selection, unique among the tenant's object selections; "
                    "shown in status, metrics and errors.", examples=["documents"])
    buckets: Annotated[tuple[BucketGlob, ...], AfterValidator(_unique)] = Field(
        min_length=1,
        description="Bucket names or globs (* any text, ? one character, [abc] one of a "
                    "set) among the buckets owned by the tenant's RGW user; at least one.",
        examples=[["docs-*", "exports"]])
    same_city: ObjectDestination | None = Field(
        default=None, description="Lag target at the same-city zone; a selection needs "
                                  "same_city, remote or both.",
        examples=[{"lag_target": "2m"}])
    remote: ObjectDestination | None = Field(
        default=None, description="Lag target at the remote zone; a selection needs "
                                  "same_city, remote or both.",
        examples=[{"lag_target": "10m"}])
    repair: RepairMode = Field(
        default=RepairMode.REPORT,
        description="report (default): stuck bucket shards are reported with the repair "
                    "command; auto: drd also runs `bucket sync run` on a stuck bucket, "
                    "once per episode, where the destination's Ceph release applies what "
                    "it replays (not on 16.2.x, where it skips entries).",
        examples=["report"])

    @model_validator(mode="after")
    def _has_a_destination(self) -> "ObjectSelection":
        if self.same_city is None and self.remote is None:
            raise ValueError("watches nothing: add a destination, same_city, remote or both")
        return self

    def selects(self, bucket: str) -> bool:
        return any(fnmatchcase(bucket, glob) for glob in self.buckets)


def object_selection_rules(selections: tuple[ObjectSelection, ...]) -> Iterator[RuleViolation]:
    """Names unique, and no bucket claimed by two selections with different targets."""
    yield from duplicate_names([s.name for s in selections], ("protection", "object"),
                               "selection", "among the tenant's object selections")
    for later, selection in enumerate(selections):
        for glob_index, glob in enumerate(selection.buckets):
            earlier = next((i for i in range(later)
                            if any(_overlaps(glob, other) for other in selections[i].buckets)),
                           None)
            if earlier is not None:
                yield RuleViolation(
                    ("protection", "object", later, "buckets", glob_index),
                    f"{glob!r} selects buckets that {selections[earlier].name!r} "
                    f"(protection.object[{earlier}]) also selects; a bucket has one lag "
                    f"target per destination, so select it in one selection only")


def _overlaps(glob: str, other: str) -> bool:
    if glob == other:
        return True
    if not is_glob(glob) and fnmatchcase(glob, other):
        return True
    return not is_glob(other) and fnmatchcase(other, glob)


def bucket_owner_issues(selections: tuple[ObjectSelection, ...], tenant_user: str,
                        owners: Mapping[str, str | None]) -> list[RuleViolation]:
    """Plain bucket names that exist and belong to another RGW user.

    `owners` maps each plain name the selections list to its owner, or None when the
    bucket does not exist yet (it is watched once the tenant creates it).
    """
    issues = []
    for index, selection in enumerate(selections):
        for glob_index, bucket in enumerate(selection.buckets):
            owner = owners.get(bucket)
            if is_glob(bucket) or owner is None or owner == tenant_user:
                continue
            path: FieldPath = ("protection", "object", index, "buckets", glob_index)
            issues.append(RuleViolation(path, f"bucket {bucket!r} is owned by RGW user "
                                              f"{owner!r}, not by this tenant's user "
                                              f"{tenant_user!r}; a policy may name only "
                                              f"the tenant's own buckets"))
    return issues


def plain_bucket_names(selections: tuple[ObjectSelection, ...]) -> list[str]:
    """The bucket names (not globs) the selections list: the ones to look owners up for."""
    return sorted({b for s in selections for b in s.buckets if not is_glob(b)})
