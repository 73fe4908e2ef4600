"""The rules of a site config that span fields: peers unique and other than this site,
one site of each kind, peer URLs distinct, heartbeat timings that fit, and what the RGW
settings need. Pure; SiteConfig.cross_field_issues runs them."""

from collections.abc import Iterator
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from pydantic import BaseModel

from drd.domain.rules import FieldPath, RuleViolation
from drd.domain.site import SiteKind

if TYPE_CHECKING:
    from drd.domain.site_config import SiteConfig

MAX_PEERS = 2  # three sites: this one, its same-city partner and the remote site


def unique_peer_rules(config: "SiteConfig") -> Iterator[RuleViolation]:
    first_index: dict[str, int] = {}
    for index, peer in enumerate(config.peers):
        if peer.name in first_index:
            yield RuleViolation(("peers", index, "name"),
                                f"peer {peer.name!r} is already defined at "
                                f"peers[{first_index[peer.name]}]")
        else:
            first_index[peer.name] = index

def own_name_rules(config: "SiteConfig") -> Iterator[RuleViolation]:
    for index, peer in enumerate(config.peers):
        if peer.name == config.site.name:
            yield RuleViolation(("peers", index, "name"),
                                f"peer {peer.name!r} has this site's own name "
                                f"(site.name); a peer must be another site")

def kind_rules(config: "SiteConfig") -> Iterator[RuleViolation]:
    sites: list[tuple[FieldPath, str, SiteKind]] = [
        (("site", "kind"), config.site.name, config.site.kind),
        *((("peers", i, "kind"), peer.name, peer.kind) for i, peer in enumerate(config.peers)),
    ]
    holder_of: dict[SiteKind, str] = {}
    for path, name, kind in sites:
        holder = holder_of.setdefault(kind, name)
        if holder == name:
            continue
        if kind is SiteKind.PRODUCTION:
            yield RuleViolation(path, f"site {holder!r} is already the production site; "
                                      f"there can be only one")
        elif len(sites) == 1 + MAX_PEERS:
            yield RuleViolation(path, f"site {holder!r} is already {kind.value}; three "
                                      f"sites need one production, one same-city and "
                                      f"one remote site")

def url_rules(config: "SiteConfig") -> Iterator[RuleViolation]:
    own = (config.api.listen_host, config.api.listen_port)
    first_index: dict[str, int] = {}
    for index, peer in enumerate(config.peers):
        path = ("peers", index, "url")
        parts = urlsplit(peer.url)
        default_port = 443 if parts.scheme == "https" else 80
        if (parts.hostname, parts.port or default_port) == own:
            yield RuleViolation(path, f"points at this site's own API (api.listen "
                                      f"{config.api.listen}); a peer must be another site")
        normalized = peer.url.rstrip("/")
        if normalized in first_index:
            yield RuleViolation(path, f"same url as peers[{first_index[normalized]}]; "
                                      f"each peer is a different site")
        else:
            first_index[normalized] = index

def heartbeat_rules(config: "SiteConfig") -> Iterator[RuleViolation]:
    beat = config.heartbeat
    if beat.timeout_seconds < beat.interval_seconds:
        return
    timeout = _shown(beat, "timeout_seconds", beat.timeout_seconds)
    interval = _shown(beat, "interval_seconds", beat.interval_seconds)
    yield RuleViolation(("heartbeat", "timeout_seconds"),
                        f"timeout_seconds ({timeout}) must be less than "
                        f"interval_seconds ({interval})")


def rgw_rules(config: "SiteConfig") -> Iterator[RuleViolation]:
    if config.rgw is None:
        return
    if config.ceph.rgw_zone is None:
        yield RuleViolation(("rgw",), "needs ceph.rgw_zone, the zone of this site's "
                                      "gateways, which runbooks promote")
    for index, peer in enumerate(config.peers):
        if peer.rgw_zone is not None and peer.ceph_conf is None:
            yield RuleViolation(("peers", index, "rgw_zone"),
                                f"zone {peer.rgw_zone} needs this peer's ceph_conf: "
                                f"runbooks read and change that zone through its "
                                f"cluster (rgw is set)")


def _shown(section: BaseModel, name: str, value: object) -> str:
    return f"{value}" if name in section.model_fields_set else f"{value}, the default"
