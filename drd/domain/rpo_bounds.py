"""The RPO bound each destination site of an image is held to, and whether a reading
meets it. Pure."""

from dataclasses import dataclass
from datetime import timedelta

from drd.domain.protection import Destination, destination_site
from drd.domain.site import SiteKind
from drd.domain.tenant_policy import BlockSelection


def destination_bounds(block: BlockSelection, own_kind: SiteKind,
                       peers: dict[str, SiteKind]) -> dict[str, timedelta]:
    """Destination site -> the RPO target the tenant's selection sets for it, seen from
    a primary of kind `own_kind`; a peer that plays no destination of the selection
    has no bound."""
    bounds = {}
    for destination, settings in ((Destination.SAME_CITY, block.same_city),
                                  (Destination.REMOTE, block.remote)):
        site = destination_site(destination, own_kind, peers)
        if settings is not None and site is not None:
            bounds[site] = settings.rpo_target
    return bounds


@dataclass(frozen=True)
class RpoVerdict:
    within: bool | None  # None: not measurable, which is never counted as within
    reason: str


def judge_reading(measured: timedelta | None, bound: timedelta, detail: str) -> RpoVerdict:
    if measured is None:
        return RpoVerdict(None, f"not measurable ({detail})")
    shown = f"{measured.total_seconds():.2f} s (bound {bound.total_seconds():g} s; {detail})"
    if measured > bound:
        return RpoVerdict(False, f"RPO {shown}: over the bound")
    return RpoVerdict(True, f"RPO {shown}")
