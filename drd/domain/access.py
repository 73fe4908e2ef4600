"""Who may call what: principals, roles and the access rule of each route. Pure."""

import re
from dataclasses import dataclass
from enum import StrEnum

TENANT_NAME = re.compile(r"^[a-z][a-z0-9-]{0,62}$")


class RoleKind(StrEnum):
    OPERATOR = "operator"
    PEER = "peer"
    TENANT = "tenant"


@dataclass(frozen=True)
class Principal:
    """An authenticated caller: the token's name and the role it was issued with."""

    name: str
    kind: RoleKind
    tenant: str | None = None

    @property
    def role(self) -> str:
        return f"tenant:{self.tenant}" if self.kind is RoleKind.TENANT else self.kind.value


def parse_role(text: str) -> tuple[RoleKind, str | None]:
    """`operator`, `peer` or `tenant:<name>`; ValueError with a reason otherwise."""
    if text in (RoleKind.OPERATOR.value, RoleKind.PEER.value):
        return RoleKind(text), None
    prefix = f"{RoleKind.TENANT.value}:"
    if text.startswith(prefix):
        tenant = text[len(prefix):]
        if TENANT_NAME.match(tenant):
            return RoleKind.TENANT, tenant
        raise ValueError(f"tenant name {tenant!r} must match {TENANT_NAME.pattern}")
    raise ValueError(f"role {text!r} is not one of operator, peer, tenant:<name>")


class Access(StrEnum):
    """The rule a route declares."""

    OPEN = "open"  # liveness, readiness, metrics
    OPERATOR = "operator"  # operators only
    SITE = "site"  # operators and peer daemons: site-level state
    PEER = "peer"  # peer daemons (and operators, who can do everything)
    TENANT = "tenant"  # operators, and the tenant named in the path


@dataclass(frozen=True)
class AccessDecision:
    allowed: bool
    reason: str


def decide_access(principal: Principal | None, access: Access,
                  tenant_in_path: str | None = None) -> AccessDecision:
    """Whether `principal` may use a route guarded by `access`, with the reason why."""
    if access is Access.OPEN:
        return AccessDecision(True, "open route")
    if principal is None:
        return AccessDecision(False, "no valid bearer token")
    if principal.kind is RoleKind.OPERATOR:
        return AccessDecision(True, f"{principal.name} is an operator")
    if principal.kind is RoleKind.PEER and access in (Access.PEER, Access.SITE):
        return AccessDecision(True, f"{principal.name} is a peer site")
    if principal.kind is RoleKind.TENANT and access is Access.TENANT:
        if tenant_in_path is not None and principal.tenant == tenant_in_path:
            return AccessDecision(True, f"{principal.name} acts for tenant {principal.tenant}")
        return AccessDecision(
            False, f"{principal.name} may act only for tenant {principal.tenant}")
    return AccessDecision(False, f"role {principal.role} may not use {access.value} routes")
