"""Which sites a lab has, where they listen, and who peers with whom.

Pure: nothing here touches the disk, the network or Ceph.
"""

from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path


class SiteKind(StrEnum):
    PRODUCTION = "production"
    SAME_CITY = "same-city"
    REMOTE = "remote"


# The lab's fixed cast: site name, its kind, and its third address octet.
KNOWN_SITES: dict[str, tuple[SiteKind, int]] = {
    "a": (SiteKind.PRODUCTION, 1),
    "b": (SiteKind.SAME_CITY, 2),
    "c": (SiteKind.REMOTE, 3),
}

MON_PORT = 3300
DEFAULT_BLOCK = 0
MAX_BLOCK = 255


class TopologyError(ValueError):
    """The operator asked for a lab that cannot exist."""


@dataclass(frozen=True)
class SiteSpec:
    name: str
    kind: SiteKind
    address: str

    @property
    def mon_addr(self) -> str:
        return f"v2:{self.address}:{MON_PORT}"


def parse_sites(text: str) -> list[str]:
    """Parse `--sites a,b,c` into an ordered, duplicate-free list of known site names."""
    names = [part.strip() for part in text.split(",") if part.strip()]
    if not names:
        raise TopologyError("--sites: name at least one site, for example a,b,c")
    unknown = [name for name in names if name not in KNOWN_SITES]
    if unknown:
        raise TopologyError(
            f"--sites: unknown site {', '.join(unknown)}; the lab knows "
            + ", ".join(f"{n} ({k.value})" for n, (k, _) in KNOWN_SITES.items())
        )
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise TopologyError(f"--sites: site {', '.join(duplicates)} given twice")
    return sorted(names)


def plan_sites(names: list[str], block: int = DEFAULT_BLOCK) -> list[SiteSpec]:
    """Place each site on its own loopback address, 127.<block>.<n>.1.

    The block keeps two labs on one machine apart: the default lab uses block 0
    (127.0.1.1, 127.0.2.1, 127.0.3.1) and a parallel run picks another.
    """
    if not 0 <= block <= MAX_BLOCK:
        raise TopologyError(f"--block: {block} is outside 0..{MAX_BLOCK}")
    specs = []
    for name in names:
        kind, octet = KNOWN_SITES[name]
        specs.append(SiteSpec(name=name, kind=kind, address=f"127.{block}.{octet}.1"))
    return specs


def peering_pairs(sites: list[SiteSpec]) -> list[tuple[SiteSpec, SiteSpec]]:
    """Mirroring peers: production pairs two-way with every other site (a<->b, a<->c).

    Without production in the lab, the first site listed plays the hub.
    """
    if len(sites) < 2:
        return []
    hub = next((s for s in sites if s.kind is SiteKind.PRODUCTION), sites[0])
    return [(hub, other) for other in sites if other != hub]


def default_lab_dir(block: int) -> Path:
    """Each block gets its own directory so that parallel labs never share files."""
    suffix = "" if block == DEFAULT_BLOCK else f"-{block}"
    return Path(f"/var/lib/drd-lab{suffix}")
