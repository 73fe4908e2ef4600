"""Which sites a lab has, where they listen, and who mirrors from whom."""

from pathlib import Path

import pytest

from drd.domain.site import SiteKind
from drd.lab.topology import (
    MAX_BLOCK,
    PeerDirection,
    SiteSpec,
    TopologyError,
    default_lab_dir,
    mirror_links,
    parse_sites,
    plan_sites,
)

RX_TX = PeerDirection.RX_TX
RX_ONLY = PeerDirection.RX_ONLY


def links_between(sites: list[SiteSpec]) -> list[tuple[str, str, PeerDirection]]:
    """The links as (site, peer, direction), sorted so duplicates would show."""
    return sorted((link.site.name, link.peer.name, link.direction)
                  for link in mirror_links(sites))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a,b,c", ["a", "b", "c"]),
        ("c,b,a", ["a", "b", "c"]),
        (" b , c ,a ", ["a", "b", "c"]),
        ("c,a", ["a", "c"]),
        ("a,,b,", ["a", "b"]),
        ("b", ["b"]),
    ],
)
def test_parse_sites_returns_known_names_in_canonical_order(
    text: str, expected: list[str]
) -> None:
    assert parse_sites(text) == expected


@pytest.mark.parametrize("text", ["", " ", ",", " , ,"])
def test_parse_sites_without_any_name_asks_for_one(text: str) -> None:
    with pytest.raises(TopologyError, match="name at least one site, for example a,b,c"):
        parse_sites(text)


def test_parse_sites_names_every_unknown_site_and_lists_the_known_ones() -> None:
    with pytest.raises(TopologyError) as raised:
        parse_sites("a,x,d")

    assert str(raised.value) == (
        "--sites: unknown site x, d; the lab knows "
        "a (production), b (same-city), c (remote)"
    )


def test_parse_sites_rejects_a_site_given_twice() -> None:
    with pytest.raises(TopologyError, match=r"^--sites: site a, c given twice$"):
        parse_sites("c,a,b,a,c")


@pytest.mark.parametrize(
    ("block", "addresses"),
    [
        (0, ["127.0.1.1", "127.0.2.1", "127.0.3.1"]),
        (7, ["127.7.1.1", "127.7.2.1", "127.7.3.1"]),
        (MAX_BLOCK, ["127.255.1.1", "127.255.2.1", "127.255.3.1"]),
    ],
)
def test_plan_sites_puts_each_site_on_its_own_address_in_the_block(
    block: int, addresses: list[str]
) -> None:
    sites = plan_sites(["a", "b", "c"], block)

    assert [(s.name, s.kind, s.address) for s in sites] == [
        ("a", SiteKind.PRODUCTION, addresses[0]),
        ("b", SiteKind.SAME_CITY, addresses[1]),
        ("c", SiteKind.REMOTE, addresses[2]),
    ]


def test_a_site_keeps_its_address_when_others_are_left_out() -> None:
    assert [s.address for s in plan_sites(["c"], 4)] == ["127.4.3.1"]


def test_mon_addr_is_the_msgr2_port_on_the_site_address() -> None:
    assert [s.mon_addr for s in plan_sites(["a", "c"], 9)] == [
        "v2:127.9.1.1:3300", "v2:127.9.3.1:3300",
    ]


@pytest.mark.parametrize("block", [-1, MAX_BLOCK + 1, 1000])
def test_plan_sites_refuses_a_block_outside_an_octet(block: int) -> None:
    with pytest.raises(TopologyError, match=rf"^--block: {block} is outside 0\.\.255$"):
        plan_sites(["a"], block)


def test_production_and_same_city_mirror_both_ways_and_remote_pulls_from_production() -> None:
    assert links_between(plan_sites(["a", "b", "c"])) == [
        ("a", "b", RX_TX),
        ("b", "a", RX_TX),
        ("c", "a", RX_ONLY),
    ]


def test_every_remote_site_pulls_from_production_only() -> None:
    sites = [*plan_sites(["a", "b", "c"]), SiteSpec("d", SiteKind.REMOTE, "127.0.4.1")]

    assert links_between(sites) == [
        ("a", "b", RX_TX),
        ("b", "a", RX_TX),
        ("c", "a", RX_ONLY),
        ("d", "a", RX_ONLY),
    ]


def test_production_is_the_hub_wherever_it_is_listed() -> None:
    a, b, c = plan_sites(["a", "b", "c"])

    assert links_between([c, b, a]) == links_between([a, b, c])


def test_without_production_the_first_site_listed_is_the_hub() -> None:
    c, b = plan_sites(["c", "b"])
    d = SiteSpec("d", SiteKind.REMOTE, "127.0.4.1")

    assert links_between([c, b, d]) == [
        ("b", "c", RX_TX),
        ("c", "b", RX_TX),
        ("d", "c", RX_ONLY),
    ]


def test_same_city_and_remote_without_production_mirror_both_ways() -> None:
    assert links_between(plan_sites(["b", "c"])) == [("b", "c", RX_TX), ("c", "b", RX_TX)]


@pytest.mark.parametrize("names", [[], ["a"], ["b"], ["c"]])
def test_a_lone_site_has_no_mirroring_peers(names: list[str]) -> None:
    assert mirror_links(plan_sites(names)) == []


@pytest.mark.parametrize(
    ("block", "expected"),
    [
        (0, Path("/var/lib/drd-lab")),
        (1, Path("/var/lib/drd-lab-1")),
        (MAX_BLOCK, Path("/var/lib/drd-lab-255")),
    ],
)
def test_default_lab_dir_is_named_after_the_block(block: int, expected: Path) -> None:
    assert default_lab_dir(block) == expected


def test_no_two_blocks_share_a_default_lab_dir() -> None:
    dirs = {default_lab_dir(block) for block in range(MAX_BLOCK + 1)}

    assert len(dirs) == MAX_BLOCK + 1
