"""Who may call which route: the rules every API request passes through."""

import pytest

from drd.domain.access import Access, Principal, RoleKind, decide_access, parse_role

OPERATOR = Principal("ops-alice", RoleKind.OPERATOR)
PEER = Principal("site-b", RoleKind.PEER)
WATER = Principal("water-ci", RoleKind.TENANT, "water")


@pytest.mark.parametrize("access", list(Access))
def test_operators_may_use_every_route(access: Access) -> None:
    assert decide_access(OPERATOR, access, "water").allowed


@pytest.mark.parametrize("access", [a for a in Access if a is not Access.OPEN])
def test_callers_without_a_token_reach_only_open_routes(access: Access) -> None:
    decision = decide_access(None, access, "water")
    assert not decision.allowed
    assert decision.reason == "no valid bearer token"
    assert decide_access(None, Access.OPEN).allowed


def test_a_tenant_reaches_its_own_resources_only() -> None:
    assert decide_access(WATER, Access.TENANT, "water").allowed
    other = decide_access(WATER, Access.TENANT, "transport")
    assert not other.allowed
    assert other.reason == "water-ci may act only for tenant water"


@pytest.mark.parametrize("access", [Access.OPERATOR, Access.SITE, Access.PEER])
def test_a_tenant_is_refused_operator_site_and_peer_routes(access: Access) -> None:
    decision = decide_access(WATER, access)
    assert not decision.allowed
    assert decision.reason == f"role tenant:water may not use {access.value} routes"


def test_peers_reach_site_and_peer_routes_but_not_operator_or_tenant_routes() -> None:
    assert decide_access(PEER, Access.PEER).allowed
    assert decide_access(PEER, Access.SITE).allowed
    assert not decide_access(PEER, Access.OPERATOR).allowed
    assert not decide_access(PEER, Access.TENANT, "water").allowed


@pytest.mark.parametrize(("text", "expected"), [
    ("operator", (RoleKind.OPERATOR, None)),
    ("peer", (RoleKind.PEER, None)),
    ("tenant:water", (RoleKind.TENANT, "water")),
])
def test_roles_parse(text: str, expected: tuple[RoleKind, str | None]) -> None:
    assert parse_role(text) == expected


@pytest.mark.parametrize("text", ["admin", "tenant:", "tenant:Water", "tenant:a/b", ""])
def test_unknown_roles_are_refused_with_a_reason(text: str) -> None:
    with pytest.raises(ValueError, match=r"must match|is not one of"):
        parse_role(text)
