"""What the RGW steps act through, from the site config's `rgw:` section: the realm's
names, each site's zone with radosgw-admin on its cluster, the zones' gateways, and the
multisite system user's keys, read from their 0600 file only when a step needs them.
"""

import json
import stat
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

from drd.ceph.rgw_admin import RgwAdmin, RgwAdminError, S3Keys
from drd.ceph.rgw_failover import GatewayControl, RgwZone, current_period
from drd.ceph.rgw_gateway_units import SystemdGateways
from drd.ceph.rgw_multisite import Multisite
from drd.domain.site_config import SiteConfig
from drd.runbooks.step_api import StepContext, StepFailed


@dataclass(frozen=True)
class RgwRealm:
    """The realm whose master zone the steps move, and how they reach its zones."""

    city: Multisite
    zones: Mapping[str, RgwZone]  # by site name
    gateways: GatewayControl
    keys_file: Path

    def zone(self, site: str) -> RgwZone:
        found = self.zones.get(site)
        if found is None:
            raise StepFailed(f"site {site} has no RGW zone this site can reach: its config "
                             f"names none (ceph.rgw_zone, or peers[].rgw_zone with "
                             f"peers[].ceph_conf)")
        return found

    def others(self, site: str) -> list[RgwZone]:
        """Every other zone, by site name: a failback's peers."""
        return [zone for name, zone in sorted(self.zones.items()) if name != site]

    def keys(self) -> S3Keys:
        """The system user's keys. Blocking (reads a file)."""
        return read_system_keys(self.keys_file)


@runtime_checkable
class RgwSites(Protocol):
    """Site access that also reaches the RGW realm (ConfiguredSites does)."""

    def rgw(self) -> RgwRealm: ...


def rgw_of(context: StepContext) -> RgwRealm:
    """The run's RGW realm; StepFailed when this site's config does not say how."""
    if not isinstance(context.sites, RgwSites):
        raise StepFailed("this daemon's site access cannot reach RGW")
    return context.sites.rgw()


def configured_realm(config: SiteConfig) -> RgwRealm:
    """The realm as the site config describes it; StepFailed without an `rgw:` section."""
    settings = config.rgw
    if settings is None or config.ceph.rgw_zone is None:
        raise StepFailed(f"site {config.site.name}'s config has no rgw section (realm, "
                         f"zonegroup, system_keys_file, gateway_unit), so it cannot move "
                         f"the RGW master zone; run the runbook on a site whose config has")
    city = Multisite(realm=settings.realm, zonegroup=settings.zonegroup,
                     system_uid="")  # the uid only matters when creating the realm
    client = config.ceph.client
    zones = {config.site.name: RgwZone(config.ceph.rgw_zone,
                                       RgwAdmin(config.ceph.conf, client=client))}
    zones |= {peer.name: RgwZone(peer.rgw_zone, RgwAdmin(peer.ceph_conf, client=client))
              for peer in config.peers if peer.rgw_zone is not None
              and peer.ceph_conf is not None}
    own = zones[config.site.name]
    gateways: GatewayControl
    if settings.lab_dir is not None:
        from drd.lab.rgw_gateways import LabGateways  # the lab only; it imports rados
        gateways = LabGateways(settings.lab_dir)
    else:
        assert settings.gateway_unit is not None  # RgwSettings has exactly one of them
        gateways = SystemdGateways(settings.gateway_unit, own.name,
                                   lambda zone: zone_endpoints(own, city, zone))
    return RgwRealm(city, zones, gateways, settings.system_keys_file)


def zone_endpoints(reader: RgwZone, city: Multisite, zone: str) -> Sequence[str]:
    """`zone`'s gateway URLs, as the period on `reader`'s cluster lists them."""
    try:
        return dict(current_period(reader, city).endpoints).get(zone, ())
    except RgwAdminError:
        return ()


class KeysFileError(StepFailed):
    """The system user's keys file is missing, readable by others, or malformed."""


def read_system_keys(path: Path) -> S3Keys:
    """Read `{"access_key", "secret_key"}` from a 0600 file; errors never show the content."""
    try:
        mode = path.stat().st_mode
        text = path.read_text()
    except OSError as error:
        raise KeysFileError(f"cannot read the RGW system keys file {path}: "
                            f"{error.strerror or error}") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise KeysFileError(f"the RGW system keys file {path} is mode "
                            f"{stat.S_IMODE(mode):04o}; it must be 0600")
    try:
        data = json.loads(text)
        keys = S3Keys(str(data["access_key"]), str(data["secret_key"]))
    except (ValueError, KeyError, TypeError):
        raise KeysFileError(f"the RGW system keys file {path} is not JSON with access_key "
                            f"and secret_key") from None
    if not keys.access_key or not keys.secret_key:
        raise KeysFileError(f"the RGW system keys file {path} has an empty key")
    return keys
