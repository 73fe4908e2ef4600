"""A chaos experiment as its YAML file in `chaos/` declares it: the fault to inject, how
long to hold it, and what the design promises will follow.

Pure models; `load_experiments` reads and validates the files, each error with its line.
"""

from datetime import timedelta
from enum import StrEnum
from functools import partial
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from drd.config.validation import validate
from drd.config.yaml_document import ConfigError, ConfigIssue, read_yaml_file
from drd.domain.durations import PositiveDuration
from drd.domain.rules import RuleViolation

SITES = ("a", "b", "c")
Site = Literal["a", "b", "c"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class KillSite(_Model):
    """Every process of `site`, Ceph and drd, dies. Its OSD is stopped with SIGTERM first:
    the lab's memstore OSD keeps its data only through a clean stop."""

    kind: Literal["kill_site"]
    site: Site = "a"


class KillDrd(_Model):
    """Only `site`'s drd dies; its Ceph serves on. It is restarted after `hold`."""

    kind: Literal["kill_drd"]
    site: Site = "a"
    hold: PositiveDuration = Field(default="20s", validate_default=True)


class Partition(_Model):
    """The links between the pairs in `cut` drop every packet for `hold`."""

    kind: Literal["partition"]
    cut: list[tuple[Site, Site]] = Field(min_length=1)
    hold: PositiveDuration = Field(default="30s", validate_default=True)


class Freeze(_Model):
    """Every process of `site` is stopped with SIGSTOP for `hold`, then resumed."""

    kind: Literal["freeze"]
    site: Site = "a"
    hold: PositiveDuration = Field(default="30s", validate_default=True)


class KillTakeover(_Model):
    """Every process of `site` dies; once `taker`'s drd has begun its takeover run, that
    drd is killed with SIGKILL too, then restarted."""

    kind: Literal["kill_during_takeover"]
    site: Site = "a"
    taker: Site = "b"


class Flap(_Model):
    """The links in `cut` go down for `down` and up for `up`, again and again, for `hold`."""

    kind: Literal["flap"]
    cut: list[tuple[Site, Site]] = Field(min_length=1)
    down: PositiveDuration = Field(default="3s", validate_default=True)
    up: PositiveDuration = Field(default="2s", validate_default=True)
    hold: PositiveDuration = Field(default="60s", validate_default=True)


Fault = Annotated[KillSite | KillDrd | Partition | Freeze | KillTakeover | Flap,
                  Field(discriminator="kind")]


class LostWrites(StrEnum):
    NONE = "none"  # every acknowledged write survives
    WITHIN_RPO = "within_rpo"  # what is lost was written within the group's RPO target


class Expectation(_Model):
    takeover: bool = Field(description="the same-city site ends up primary")
    lost_writes: LostWrites = LostWrites.NONE


class Experiment(_Model):
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9-]*$")
    description: str
    fault: Fault
    expect: Expectation
    smoke: bool = Field(default=False, description="part of the short set CI runs")
    repeat: int = Field(default=1, ge=1, le=100, description="runs in the full set")

    @property
    def partitions(self) -> bool:
        return isinstance(self.fault, Partition | Flap)

    def cross_field_issues(self, valid_sections: frozenset[str]) -> list[RuleViolation]:
        if "fault" not in valid_sections:
            return []
        cuts = self.fault.cut if isinstance(self.fault, Partition | Flap) else []
        return [RuleViolation(("fault", "cut", index), f"cuts site {x} from itself")
                for index, (x, y) in enumerate(cuts) if x == y]


def hold_seconds(fault: KillSite | KillDrd | Partition | Freeze | KillTakeover | Flap) -> float:
    hold: timedelta | None = getattr(fault, "hold", None)
    return hold.total_seconds() if hold is not None else 0.0


def builtin_experiments_dir() -> Path:
    """`chaos/` next to the drd package: the repository (an editable install)."""
    return Path(__file__).resolve().parents[2] / "chaos"


def load_experiments(directory: Path) -> dict[str, Experiment]:
    """Every experiment in `directory`, by name; ConfigError naming every bad file's issues."""
    experiments: dict[str, Experiment] = {}
    issues: list[ConfigIssue] = []
    for path in sorted(directory.glob("*.yaml")):
        try:
            experiment = validate(Experiment, read_yaml_file(path),
                                  extra_rules=[partial(_name_issues, path=path)])
        except ConfigError as error:
            issues += error.issues
        else:
            experiments[experiment.name] = experiment
    if issues:
        raise ConfigError(issues)
    return experiments


def _name_issues(experiment: Experiment, *, path: Path) -> list[RuleViolation]:
    if experiment.name != path.stem:
        return [RuleViolation(("name",), f"must equal the file name's stem {path.stem!r}")]
    return []
