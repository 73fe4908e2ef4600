"""A runbook: its scope, its sites, and ordered groups of steps. Pure.

Groups run one after another; the steps of a group run at once, at most `concurrency`
of them. A run may name other sites and another scope than the runbook's defaults
(`drd switchover --tenant water --from a --to b`); `RunTarget` is what it settles on.
"""

from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from drd.domain.policy_names import TENANT_NAME_PATTERN
from drd.domain.rules import RuleViolation
from drd.domain.runbook_steps import SITE_ROLES, AnyStep, Step, step_sites

RUNBOOK_NAME_PATTERN = r"^[a-z0-9][a-z0-9-]{0,62}$"
DEFAULT_CONCURRENCY = 8
TenantName = Annotated[str, Field(pattern=TENANT_NAME_PATTERN)]


class RunbookKind(StrEnum):
    SWITCHOVER = "switchover"
    FAILOVER = "failover"
    FAILBACK = "failback"
    DRILL = "drill"  # only reads production: may run beside anything
    CUSTOM = "custom"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TenantScope(_Model):
    tenants: tuple[TenantName, ...] = Field(min_length=1,
                                            description="Tenants the run acts on.")


class Group(_Model):
    name: str = Field(pattern=RUNBOOK_NAME_PATTERN)
    concurrency: int = Field(default=DEFAULT_CONCURRENCY, ge=1, le=64, strict=True,
                             description="Steps of this group running at once.")
    steps: tuple[Step, ...] = Field(min_length=1)


class Runbook(_Model):
    """One runbook file, `runbooks/<name>.yaml`."""

    name: str = Field(pattern=RUNBOOK_NAME_PATTERN, description="The file name's stem.")
    description: str = Field(default="", description="What the runbook is for.")
    kind: RunbookKind = RunbookKind.CUSTOM
    scope: Literal["all"] | TenantScope = Field(
        default="all", description="`all` tenants, or `{tenants: [...]}`.")
    source: str = Field(pattern=r"^[a-z][a-z0-9-]{0,31}$",
                        description="The site the run moves away from (or drills from).")
    target: str = Field(pattern=r"^[a-z][a-z0-9-]{0,31}$",
                        description="The site the run moves to (or drills at).")
    groups: tuple[Group, ...] = Field(min_length=1)

    def steps(self) -> list[tuple[Group, AnyStep]]:
        return [(group, step) for group in self.groups for step in group.steps]

    def cross_field_issues(self, valid_sections: frozenset[str] | None = None
                           ) -> list[RuleViolation]:
        issues: list[RuleViolation] = []
        sites_valid = valid_sections is None or {"source", "target"} <= valid_sections
        if sites_valid and self.source == self.target:
            issues.append(RuleViolation(("target",), f"must differ from source "
                                                      f"({self.source})"))
        if valid_sections is None or "groups" in valid_sections:
            issues += _duplicate_names(self)
        return issues


def _duplicate_names(runbook: Runbook) -> list[RuleViolation]:
    issues = []
    seen: set[str] = set()
    groups: set[str] = set()
    for g, group in enumerate(runbook.groups):
        if group.name in groups:
            issues.append(RuleViolation(("groups", g, "name"),
                                        f"group {group.name!r} is named twice"))
        groups.add(group.name)
        for s, step in enumerate(group.steps):
            if step.name in seen:
                issues.append(RuleViolation(("groups", g, "steps", s, "name"),
                                            f"step {step.name!r} is named twice; a run "
                                            f"journals steps by name"))
            seen.add(step.name)
    return issues


def site_issues(runbook: Runbook, known_sites: set[str]) -> list[RuleViolation]:
    """Sites the runbook names that the site config does not know."""
    issues = []
    shown = ", ".join(sorted(known_sites))
    for field in ("source", "target"):
        site = getattr(runbook, field)
        if site not in known_sites:
            issues.append(RuleViolation((field,), f"unknown site {site!r}; known: {shown}"))
    for g, group in enumerate(runbook.groups):
        for s, step in enumerate(group.steps):
            for param, site in step_sites(step):
                if site not in SITE_ROLES and site not in known_sites:
                    issues.append(RuleViolation(
                        ("groups", g, "steps", s, "params", param),
                        f"unknown site {site!r}; write source, target or one of {shown}"))
    return issues


@dataclass(frozen=True)
class RunTarget:
    """What one run acts on: its sites and its tenants (None: every tenant)."""

    source: str
    target: str
    tenants: tuple[str, ...] | None

    def site(self, reference: str) -> str:
        """A step's site reference, `source`, `target` or a name, as a site name."""
        if reference == "source":
            return self.source
        if reference == "target":
            return self.target
        return reference

    def covers(self, tenant: str) -> bool:
        return self.tenants is None or tenant in self.tenants


def run_target(runbook: Runbook, *, source: str | None = None, target: str | None = None,
               tenants: tuple[str, ...] | None = None) -> RunTarget:
    """The runbook's defaults, overridden by what the operator asked for."""
    scope = None if runbook.scope == "all" else runbook.scope.tenants
    return RunTarget(source=source or runbook.source, target=target or runbook.target,
                     tenants=tenants if tenants else scope)
