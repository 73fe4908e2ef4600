"""Which sites a lab has, where they listen, and who peers with whom.

Pure: nothing here touches the disk, the network or Ceph.
"""

from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from drd.domain.site import SiteKind

# The lab's fixed cast: site name, its kind, and its third address octet.
KNOWN_SITES: dict[str, tuple[SiteKind, int]] = {
    "a": (SiteKind.PRODUCTION, 1),
    "b": (SiteKind.SAME_CITY, 2),
    "c": (SiteKind.REMOTE, 3),
}

# The example tenants of policies/: each gets an RBD namespace of its own on every site,
# granted to it in every site config.
LAB_TENANTS = ("water", "transport")
MON_PORT = 3300
DRD_API_PORT = 8470
RGW_PORT = 8480
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

    @property
    def api_url(self) -> str:
        return f"http://{self.address}:{DRD_API_PORT}"

    @property
    def rgw_url(self) -> str:
        return f"http://{self.address}:{RGW_PORT}"


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


class PeerDirection(StrEnum):
    RX_ONLY = "rx-only"
    RX_TX = "rx-tx"


@dataclass(frozen=True)
class MirrorLink:
    """`site` registers `peer` as an RBD mirroring peer in `direction`."""

    site: SiteSpec
    peer: SiteSpec
    direction: PeerDirection


def mirror_links(sites: list[SiteSpec]) -> list[MirrorLink]:
    """The mirroring peers to register: production fans out to every other site.

    Pacific's rbd-mirror pulls a pool from one peer only ("multiple RX peers are not
    currently supported"), so production has a single two-way partner: the same-city
    site, or without one the first other site by name. Replication between the two
    reverses after a failover. Every other site pulls from production alone (rx-only);
    its rbd-mirror then registers itself on production as a tx-only peer, which is
    what snapshot mode needs to ship to it. Without production in the lab, the first
    site by name plays the hub.
    """
    if len(sites) < 2:
        return []
    hub = next((s for s in sites if s.kind is SiteKind.PRODUCTION), sites[0])
    others = [s for s in sites if s != hub]
    partner = next((s for s in others if s.kind is SiteKind.SAME_CITY), others[0])
    links = [MirrorLink(hub, partner, PeerDirection.RX_TX),
             MirrorLink(partner, hub, PeerDirection.RX_TX)]
    links += [MirrorLink(s, hub, PeerDirection.RX_ONLY) for s in others if s != partner]
    return links


def default_lab_dir(block: int) -> Path:
    """Each block gets its own directory so that parallel labs never share files."""
    suffix = "" if block == DEFAULT_BLOCK else f"-{block}"
    return Path(f"/var/lib/drd-lab{suffix}")
