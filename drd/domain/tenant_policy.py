"""A tenant's policy (`policies/<tenant>.yaml`): which RBD images are protected, and how,
and how the tenant's data is backed up (`backup:`, in `drd.domain.backup_policy`).

Each block selection picks images by pool, namespace and name globs and says how they
reach the same-city site (journal, or snapshot on an interval) and the remote site
(snapshot on an interval), with an RPO target for each. Rules inside one destination are
field rules, so they are reported together with every other field error; rules between
selections, and between backup and protection, are in `cross_field_issues`. Rules that
need the site config (grants, platform limits) or the file system (the backup password
file) are in `drd.domain.policy_limits`. Pure: nothing here reads a file.
"""

from collections.abc import Callable, Iterator
from datetime import timedelta
from enum import StrEnum
from fnmatch import fnmatchcase
from typing import Annotated

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from drd.domain.backup_policy import BACKUP_EXAMPLE, BackupPolicy, backup_rules
from drd.domain.backup_sources import SourceSite
from drd.domain.durations import PositiveDuration, format_duration
from drd.domain.object_selection import (
    OBJECT_EXAMPLE,
    ObjectSelection,
    object_selection_rules,
)
from drd.domain.policy_names import (
    ImageGlob,
    NamespaceName,
    PoolName,
    SelectionName,
    TenantName,
    glob_covers,
    globs_overlap,
    image_spec,
)
from drd.domain.rules import RuleViolation, duplicate_names
from drd.domain.service_probes import ServiceProbe


class ReplicationMode(StrEnum):
    """How RBD mirroring ships an image's writes to a peer."""

    JOURNAL = "journal"
    SNAPSHOT = "snapshot"


def _remote_mode(value: object) -> object:
    if value == ReplicationMode.SNAPSHOT.value:
        return value
    if value == ReplicationMode.JOURNAL.value:
        raise ValueError("the remote site takes only mode snapshot: across the 200+ km WAN "
                         "link drd ships mirror snapshots on an interval, never the "
                         "journal; use mode: snapshot with an interval")
    shown = f"text {value!r}" if isinstance(value, str) else f"{value!r}"
    raise ValueError(f"must be snapshot, the only mode the remote site takes; got {shown}")


RemoteMode = Annotated[ReplicationMode, BeforeValidator(_remote_mode),
                       WithJsonSchema({"type": "string", "enum": ["snapshot"]})]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


_RPO_DESCRIPTION = ("Most data, as time, the tenant accepts to lose if this site fails: "
                    "drd warns when the measured RPO exceeds it and reports a breach at "
                    "twice it. In snapshot mode it must be at least the interval.")


class _Destination(_Section):
    """Rules shared by both destinations; fields are declared in order, so a validator
    sees the fields above it in `info.data` when those were valid."""

    @field_validator("interval", check_fields=False)
    @classmethod
    def _interval_by_mode(cls, interval: timedelta | None,
                          info: ValidationInfo) -> timedelta | None:
        mode = info.data.get("mode")
        if mode is ReplicationMode.SNAPSHOT and interval is None:
            raise ValueError("required when mode is snapshot: how often drd takes a mirror "
                             "snapshot, e.g. 1m")
        if mode is ReplicationMode.JOURNAL and interval is not None:
            raise ValueError("not allowed when mode is journal: journal mode ships every "
                             "write as it happens, so there is no interval; remove it, or "
                             "use mode: snapshot")
        return interval

    @field_validator("rpo_target", check_fields=False)
    @classmethod
    def _rpo_reachable(cls, rpo_target: timedelta, info: ValidationInfo) -> timedelta:
        interval = info.data.get("interval")
        if (info.data.get("mode") is ReplicationMode.SNAPSHOT and interval is not None
                and rpo_target < interval):
            raise ValueError(
                f"{format_duration(rpo_target)} is shorter than the interval "
                f"{format_duration(interval)}, so it can never be met: in snapshot mode the "
                f"peer's newest data is up to one interval old just before each snapshot, "
                f"plus the time to ship it; make rpo_target at least "
                f"{format_duration(interval)}, or shorten the interval")
        return rpo_target


class SameCityDestination(_Destination):
    """Mirroring to the same-city site (同城双活), over the <1 ms link."""

    model_config = ConfigDict(json_schema_extra={
        # Editors see the mode/interval rule too: interval only, and always, with snapshot.
        "if": {"properties": {"mode": {"const": "journal"}}},
        "then": {"not": {"required": ["interval"]}},
        "else": {"required": ["interval"]},
    })

    mode: ReplicationMode = Field(
        description="journal: every write is shipped as it happens (an RPO of about a "
                    "second); snapshot: a mirror snapshot is shipped every interval.",
        examples=["journal"])
    interval: PositiveDuration | None = Field(
        default=None, validate_default=True,
        description="How often drd takes a mirror snapshot; required when mode is "
                    "snapshot, not allowed when mode is journal.", examples=["30s"])
    rpo_target: PositiveDuration = Field(description=_RPO_DESCRIPTION, examples=["5s"])


class RemoteDestination(_Destination):
    """Mirroring to the remote site (异地备份), 200+ km away over the WAN."""

    mode: RemoteMode = Field(
        description="Always snapshot: a mirror snapshot is shipped every interval.",
        examples=["snapshot"])
    interval: PositiveDuration = Field(description="How often drd takes a mirror snapshot.",
                                       examples=["1m"])
    rpo_target: PositiveDuration = Field(description=_RPO_DESCRIPTION, examples=["2m"])


_SAME_CITY_EXAMPLE = {"mode": "journal", "rpo_target": "5s"}
_REMOTE_EXAMPLE = {"mode": "snapshot", "interval": "1m", "rpo_target": "2m"}
_SELECTION_EXAMPLE = {"name": "databases", "pool": "rbd", "namespace": "water",
                      "images": ["db-*", "pg-wal-?"], "same_city": _SAME_CITY_EXAMPLE,
                      "remote": _REMOTE_EXAMPLE}


def _unique_globs(globs: tuple[str, ...]) -> tuple[str, ...]:
    seen: set[str] = set()
    for glob in globs:
        if glob in seen:
            raise ValueError(f"{glob!r} is listed twice; list each glob once")
        seen.add(glob)
    return globs


class TakeoverMode(StrEnum):
    MANUAL = "manual"
    AUTOMATIC = "automatic"


class BlockSelection(_Section):
    """RBD images chosen by pool, namespace and name globs, and where they are mirrored."""

    model_config = ConfigDict(json_schema_extra={
        "anyOf": [{"required": ["same_city"]}, {"required": ["remote"]}]})

    name: SelectionName = Field(
        description="Name of this selection, unique within the tenant; shown in status, "
                    "metrics and errors.", examples=["databases"])
    pool: PoolName = Field(description="Ceph pool holding the images; it must be granted "
                                       "to the tenant in the site config.", examples=["rbd"])
    namespace: NamespaceName = Field(
        default="", description="RBD namespace inside the pool; '' (the default) is the "
                                "pool's default namespace.", examples=["water"])
    images: Annotated[tuple[ImageGlob, ...], AfterValidator(_unique_globs)] = Field(
        min_length=1,
        description="Image name globs, case-sensitive: * matches any text, ? one "
                    "character, [abc] one of a set; at least one.",
        examples=[["db-*", "pg-wal-?"]])
    same_city: SameCityDestination | None = Field(
        default=None, description="Mirroring to the same-city site; optional, but a "
                                  "selection needs same_city, remote or both.",
        examples=[_SAME_CITY_EXAMPLE])
    remote: RemoteDestination | None = Field(
        default=None, description="Mirroring to the remote site; optional, but a "
                                  "selection needs same_city, remote or both.",
        examples=[_REMOTE_EXAMPLE])
    takeover: TakeoverMode = Field(
        default=TakeoverMode.MANUAL,
        description="automatic: the same-city site takes these images over by itself when "
                    "production is lost, guarded by the lease, the quorum and the witness "
                    "site, and never while one of the tenant's service_probes still "
                    "answers at production; manual (the default): only an operator's "
                    "`drd failover` moves them. A takeover by the remote site always "
                    "needs an operator.",
        examples=["automatic"])

    @model_validator(mode="after")
    def _has_a_destination(self) -> "BlockSelection":
        if self.same_city is None and self.remote is None:
            raise ValueError("protects nothing: add a destination, same_city, remote or both")
        if self.takeover is TakeoverMode.AUTOMATIC and self.same_city is None:
            raise ValueError("takeover: automatic needs a same_city destination, the site "
                             "that takes over")
        return self

    @property
    def spec(self) -> str:
        """`pool/namespace` (or just `pool`), as the rbd CLI writes it."""
        return image_spec(self.pool, self.namespace)

    def selects(self, image: str) -> bool:
        """Whether an image of this selection's pool and namespace matches one of its globs."""
        return any(fnmatchcase(image, glob) for glob in self.images)


class Protection(_Section):
    """What of the tenant's data is replicated to the other sites."""

    block: tuple[BlockSelection, ...] = Field(
        default=(), description="RBD image selections, each with its destinations; "
                                "optional, default none.",
        examples=[[_SELECTION_EXAMPLE]])
    object: tuple[ObjectSelection, ...] = Field(
        default=(), description="S3 bucket selections of the tenant's RGW user, each with "
                                "a sync-lag target per destination zone; optional, "
                                "default none.",
        examples=[[OBJECT_EXAMPLE]])
    service_probes: tuple[ServiceProbe, ...] = Field(
        default=(), description="Probes of the tenant's services; while one answers at the "
                                "production site, the same-city site does not take the "
                                "tenant's groups over by itself (see takeover). Optional, "
                                "default none.",
        examples=[[{"name": "water-api", "production": "http://10.20.0.5:8080/healthz"}]])


class TenantPolicy(_Section):
    """One tenant's policy (`policies/<tenant>.yaml`): what is protected and backed up,
    and how."""

    tenant: TenantName = Field(
        description="The tenant this policy belongs to; must equal the file name without "
                    ".yaml, and be known to the site config.", examples=["water"])
    protection: Protection = Field(default_factory=Protection,
                                   description="Replication of the tenant's data; optional.",
                                   examples=[{"block": [_SELECTION_EXAMPLE],
                                              "object": [OBJECT_EXAMPLE]}])
    backup: BackupPolicy | None = Field(
        default=None, description="Backups of the tenant's data with restic: sources, "
                                  "schedule, repository, retention and verification; "
                                  "optional.", examples=[BACKUP_EXAMPLE])

    def cross_field_issues(self, valid_sections: frozenset[str] | None = None
                           ) -> list[RuleViolation]:
        """Every broken rule between selections, each at the path to report it on.

        Only rules whose sections are all in `valid_sections` (default: all) run.
        """
        valid = frozenset(type(self).model_fields) if valid_sections is None else valid_sections
        rules: tuple[tuple[frozenset[str], Callable[[], Iterator[RuleViolation]]], ...] = (
            (frozenset({"protection"}), self._unique_name_rules),
            (frozenset({"protection"}), self._overlap_rules),
            (frozenset({"protection"}),
             lambda: object_selection_rules(self.protection.object)),
            (frozenset({"backup"}),
             lambda: backup_rules(self.backup) if self.backup is not None else iter(())),
            (frozenset({"protection", "backup"}), self._remote_copy_rules),
        )
        return [violation for reads, rule in rules if reads <= valid
                for violation in rule()]

    def _unique_name_rules(self) -> Iterator[RuleViolation]:
        yield from duplicate_names([s.name for s in self.protection.block],
                                   ("protection", "block"), "selection", "within a tenant")
        yield from duplicate_names([p.name for p in self.protection.service_probes],
                                   ("protection", "service_probes"), "probe",
                                   "within a tenant")

    def _overlap_rules(self) -> Iterator[RuleViolation]:
        block = self.protection.block
        for later, selection in enumerate(block):
            for glob_index, glob in enumerate(selection.images):
                for earlier in range(later):
                    conflict = _mode_conflict(block[earlier], selection, glob)
                    if conflict:
                        yield RuleViolation(
                            ("protection", "block", later, "images", glob_index),
                            f"{glob!r} selects images in {selection.spec} that "
                            f"{block[earlier].name!r} (protection.block[{earlier}]) also "
                            f"selects, {conflict}; an image is mirrored in one mode, so "
                            f"select each image in one selection only")
                        break

    def _remote_copy_rules(self) -> Iterator[RuleViolation]:
        """A backup from the remote copy needs the images mirrored to the remote site."""
        if self.backup is None:
            return
        mirrored = [s for s in self.protection.block if s.remote is not None]
        for index, source in enumerate(self.backup.sources):
            if source.site is not SourceSite.REMOTE:
                continue
            for glob_index, glob in enumerate(source.images or ()):
                if not any(selection.spec == source.spec
                           and any(glob_covers(outer, glob) for outer in selection.images)
                           for selection in mirrored):
                    yield RuleViolation(
                        ("backup", "sources", index, "images", glob_index),
                        f"{glob!r} is backed up from the remote site's copy (from: "
                        f"remote), but no protection.block selection with a remote "
                        f"destination covers it in {source.spec}; mirror those images to "
                        f"the remote site, or back them up from production")


def _mode_conflict(earlier: BlockSelection, later: BlockSelection, glob: str) -> str:
    """Why `glob` of `later` clashes with `earlier`, or '' if it does not."""
    if (earlier.pool, earlier.namespace) != (later.pool, later.namespace):
        return ""
    if not any(globs_overlap(glob, other) for other in earlier.images):
        return ""
    # Only same_city can differ: the remote destination is always snapshot.
    first, second = earlier.same_city, later.same_city
    if first is not None and second is not None and first.mode != second.mode:
        return f"with same_city mode {first.mode.value} there and {second.mode.value} here"
    return ""

