"""From tenant policies to what the replication loops act on, and to which peer each
destination means from where this site stands. Pure."""

from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum

from drd.domain.replication_plan import MirrorMode, Selection
from drd.domain.site import SiteKind
from drd.domain.tenant_policy import BlockSelection, TenantPolicy


class Destination(StrEnum):
    SAME_CITY = "same_city"
    REMOTE = "remote"


@dataclass(frozen=True)
class DestinationTarget:
    destination: Destination
    rpo_target: timedelta


@dataclass(frozen=True)
class ProtectionSpec:
    """A selection and the RPO each of its destinations must meet."""

    selection: Selection
    targets: tuple[DestinationTarget, ...]


def image_mode(block: BlockSelection) -> MirrorMode:
    """Ceph mirrors an image in one mode to every peer: journal when the same-city
    destination asks for it, otherwise snapshot."""
    if block.same_city is not None and block.same_city.mode is MirrorMode.JOURNAL:
        return MirrorMode.JOURNAL
    return MirrorMode.SNAPSHOT


def snapshot_interval(block: BlockSelection) -> timedelta | None:
    """The shortest interval any destination asks for; None in journal mode."""
    if image_mode(block) is MirrorMode.JOURNAL:
        return None
    intervals = [d.interval for d in (block.same_city, block.remote)
                 if d is not None and d.interval is not None]
    return min(intervals) if intervals else None


def protection_specs(policies: dict[str, TenantPolicy]) -> list[ProtectionSpec]:
    specs = []
    for tenant, policy in sorted(policies.items()):
        for block in policy.protection.block:
            selection = Selection(tenant=tenant, name=block.name, pool=block.pool,
                                  namespace=block.namespace, globs=tuple(block.images),
                                  mode=image_mode(block),
                                  snapshot_interval=snapshot_interval(block))
            targets = []
            if block.same_city is not None:
                targets.append(DestinationTarget(Destination.SAME_CITY,
                                                 block.same_city.rpo_target))
            if block.remote is not None:
                targets.append(DestinationTarget(Destination.REMOTE, block.remote.rpo_target))
            specs.append(ProtectionSpec(selection, tuple(targets)))
    return specs


def destination_site(destination: Destination, own_kind: SiteKind,
                     peers: dict[str, SiteKind]) -> str | None:
    """The peer that plays `destination` for a primary of kind `own_kind`.

    Production and same-city are each other's same-city destination; the remote
    site is everyone's remote destination. A remote site acting as primary has no
    remote destination of its own.
    """
    city = {SiteKind.PRODUCTION, SiteKind.SAME_CITY}
    for name, kind in sorted(peers.items()):
        if destination is Destination.SAME_CITY and own_kind in city and kind in city:
            return name
        if destination is Destination.REMOTE and kind is SiteKind.REMOTE \
                and own_kind is not SiteKind.REMOTE:
            return name
    return None
