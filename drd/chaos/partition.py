"""Cut the links between lab sites with nftables, and mend them.

Each site's daemons run in a cgroup v2 group of their own (`drd.lab.site_cgroups`) and
listen on their own loopback address. Cutting x from y drops every packet a process of
x sends to y's address, and every packet a process of y sends to x's: each connection
between them has packets of both kinds, so none survives, whichever side opened it.
Nothing else is touched: the operator's CLI, the experiment's own load and other labs
live in no site's group or on other addresses.

The lab's rules live in a table of their own, `drd_chaos_<block>`, replaced as a whole in
one nft transaction, so a cut is never half applied and two labs never meet.
"""

import subprocess
from collections.abc import Iterable
from dataclasses import dataclass

from drd.lab.description import LabDescription
from drd.lab.site_cgroups import SiteGroup, group_of

NFT_TIMEOUT = 10.0


class PartitionError(Exception):
    """The lab cannot be partitioned, or nft refused."""


@dataclass(frozen=True)
class Sender:
    """The processes of one site, as nftables names them, and the address they serve on."""

    site: str
    group: SiteGroup
    address: str


def table_name(block: int) -> str:
    return f"drd_chaos_{block}"


def render_ruleset(block: int, senders: dict[str, Sender],
                   cut: Iterable[tuple[str, str]]) -> str:
    """The nft script that makes `cut` the lab's only cut links (none: no rules)."""
    table = table_name(block)
    rules = []
    for x, y in cut:
        for source, target in ((senders[x], senders[y]), (senders[y], senders[x])):
            rules.append(f'    socket cgroupv2 level {source.group.level} '
                         f'"{source.group.nft_path}" ip daddr {target.address} drop')
    unique = list(dict.fromkeys(rules))
    # Declaring the table first makes the delete safe when it does not exist yet.
    return "\n".join([
        f"table inet {table}",
        f"delete table inet {table}",
        f"table inet {table} {{",
        "  chain output {",
        "    type filter hook output priority 0; policy accept;",
        *unique,
        "  }",
        "}",
        "",
    ])


def senders_of(lab: LabDescription) -> dict[str, Sender]:
    """Every site of the lab as a sender; PartitionError when a site has no group."""
    senders = {}
    for name, site in lab.sites.items():
        group = group_of(site.cgroup) if site.cgroup is not None else None
        if group is None:
            raise PartitionError(
                f"site {name} of the lab at {lab.dir} runs in no cgroup v2 group, so its "
                f"packets cannot be told apart; boot the lab on a machine with cgroup v2")
        senders[name] = Sender(name, group, site.address)
    return senders


class Partitioner:
    """The lab's cut links, applied by `nft`."""

    def __init__(self, lab: LabDescription) -> None:
        self._block = lab.block
        self._senders = senders_of(lab)

    def cut(self, links: Iterable[tuple[str, str]]) -> None:
        _nft(render_ruleset(self._block, self._senders, links))

    def mend(self) -> None:
        """Remove every cut (the table itself goes)."""
        _nft(f"table inet {table_name(self._block)}\n"
             f"delete table inet {table_name(self._block)}\n")


def _nft(script: str) -> None:
    try:
        result = subprocess.run(["nft", "-f", "-"], input=script, capture_output=True,
                                text=True, timeout=NFT_TIMEOUT, check=False)
    except FileNotFoundError as error:
        raise PartitionError("nft is not installed (Debian package nftables)") from error
    if result.returncode != 0:
        raise PartitionError(f"nft refused the rules: {result.stderr.strip()}")
