"""The RGW steps as the daemon wires them: the realm from the site config, the systemd
gateways' argv, the keys file read without showing it, and steps that leave the master
zone alone in a tenant-scoped run without reaching for anything."""

import asyncio
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from drd.ceph.cluster import ClusterHandle
from drd.ceph.rgw_gateway_units import GatewayUnitError, SystemdGateways, unit_of
from drd.ceph.systemd_units import systemctl_argv
from drd.config.validation import validate
from drd.config.yaml_document import parse_yaml
from drd.domain.runbook import Runbook, RunbookKind, RunTarget
from drd.domain.runbook_steps import AnyStep
from drd.domain.site import SiteKind
from drd.domain.site_config import SiteConfig
from drd.lab.drd_files import drd_layout, render_drd_config
from drd.lab.rgw_gateways import LabGateways
from drd.lab.rgw_lab import lab_rgw_settings
from drd.lab.topology import plan_sites
from drd.runbooks.library import step_executors
from drd.runbooks.rgw_access import RgwRealm, configured_realm, read_system_keys
from drd.runbooks.rgw_steps import rgw_executors
from drd.runbooks.sites import ConfiguredSites
from drd.runbooks.step_api import StepContext, StepFailed

SECRET = "wJalrXUtnFEMIK7MDENGbPxRfiCYEXAMPLEKEY"  # noqa: S105 (a made-up key)


def site_config(lab: Path, rgw: dict[str, str] | None) -> SiteConfig:
    """Site b's config as the lab writes it, with the rgw section given."""
    sites = plan_sites(["a", "b", "c"])
    site, peers = sites[1], [sites[0], sites[2]]
    config = render_drd_config(site, lab / "b" / "ceph.conf", drd_layout(lab / "b"), peers,
                               {peer.name: lab / peer.name / "ceph.conf" for peer in peers},
                               rgw=rgw)
    return validate(SiteConfig, parse_yaml(yaml.safe_dump(config), "drd.yaml"))


class NoCeph:
    """SiteAccess whose every reach is a test failure; `rgw` too unless a realm is set."""

    def __init__(self, realm: RgwRealm | None = None) -> None:
        self.realm = realm

    def cluster(self, site: str) -> ClusterHandle:
        raise AssertionError(f"the test reached for site {site}'s cluster")

    def ceph_conf(self, site: str) -> str:
        raise AssertionError(f"the test reached for site {site}'s ceph.conf")

    def peer_reachable(self, site: str) -> bool:
        return True

    def sites_of_kind(self, kind: SiteKind) -> list[str]:
        return {SiteKind.PRODUCTION: ["a"], SiteKind.SAME_CITY: ["b"],
                SiteKind.REMOTE: ["c"]}[kind]

    def restart_rbd_mirror(self, site: str) -> str:
        raise AssertionError(f"the test restarted site {site}'s rbd-mirror")

    def rgw(self) -> RgwRealm:
        if self.realm is None:
            raise AssertionError("the test reached for the RGW realm")
        return self.realm


def _context(sites: Any, tenants: tuple[str, ...] | None) -> StepContext:
    return StepContext(run_id=1, kind=RunbookKind.SWITCHOVER,
                       target=RunTarget("a", "b", tenants), policies={}, sites=sites,
                       facts={}, now=lambda: datetime.now(UTC))


def _step(step_type: str) -> AnyStep:
    runbook = Runbook.model_validate({"name": "one", "source": "a", "target": "b", "groups": [
        {"name": "g", "steps": [{"name": "s", "type": step_type,
                                 "params": {"site": "target"}}]}]})
    return runbook.steps()[0][1]


def test_the_library_runs_both_rgw_steps() -> None:
    assert set(rgw_executors()) == {"rgw_zone_promote", "rgw_zone_failback"}
    assert set(rgw_executors()) <= set(step_executors())


@pytest.mark.parametrize("step_type", ["rgw_zone_promote", "rgw_zone_failback"])
def test_a_tenant_scoped_run_leaves_the_master_zone_alone_and_says_why(
        step_type: str) -> None:
    step, executor = _step(step_type), rgw_executors()[step_type]
    context = _context(NoCeph(), ("water",))
    asyncio.run(executor.run(step, context))
    reason = ("nothing to do: this run is scoped to tenant(s) water, and the RGW master zone "
              "serves every tenant's buckets; only a run of all tenants moves it")
    assert context.output.lines == [f"site b's RGW zone: {reason}"]
    assert context.output.facts == {"skipped": reason}
    assert asyncio.run(executor.plan(step, context)) == [f"site b's RGW zone: {reason}"]


def test_a_site_without_an_rgw_section_fails_the_step_with_what_to_do(tmp_path: Path) -> None:
    sites = ConfiguredSites(site_config(tmp_path, None))
    step = _step("rgw_zone_promote")
    with pytest.raises(StepFailed, match=r"site b's config has no rgw section .*; run the "
                                         r"runbook on a site whose config has"):
        asyncio.run(rgw_executors()["rgw_zone_promote"].run(step, _context(sites, None)))
    lines = asyncio.run(rgw_executors()["rgw_zone_promote"].plan(step, _context(sites, None)))
    assert lines[0].startswith("make site b's RGW zone master: would fail now (site b's "
                               "config has no rgw section")


def test_the_lab_realm_reaches_every_zone_through_its_own_cluster(tmp_path: Path) -> None:
    realm = configured_realm(site_config(tmp_path, lab_rgw_settings(tmp_path)))
    assert (realm.city.realm, realm.city.zonegroup) == ("drd-lab", "city")
    assert {site: (zone.name, zone.admin.conf) for site, zone in realm.zones.items()} == {
        site: (site, tmp_path / site / "ceph.conf") for site in ("a", "b", "c")}
    assert [zone.name for zone in realm.others("a")] == ["b", "c"]
    assert realm.gateways == LabGateways(tmp_path)
    with pytest.raises(StepFailed, match="site d has no RGW zone this site can reach"):
        realm.zone("d")


def test_a_real_site_restarts_its_own_gateways_by_their_systemd_unit(tmp_path: Path) -> None:
    keys = tmp_path / "keys.json"
    rgw = {"realm": "r", "zonegroup": "g", "system_keys_file": str(keys),
           "gateway_unit": "ceph-radosgw@rgw.{zone}.service"}
    realm = configured_realm(site_config(tmp_path, rgw))
    assert isinstance(realm.gateways, SystemdGateways)
    assert (realm.gateways.unit_pattern, realm.gateways.local_zone) == (
        "ceph-radosgw@rgw.{zone}.service", "b")
    assert unit_of("ceph-radosgw@rgw.{zone}.service", "b") == "ceph-radosgw@rgw.b.service"
    assert systemctl_argv("restart", "ceph-radosgw@rgw.b.service") == [
        "restart", "ceph-radosgw@rgw.b.service"]
    assert systemctl_argv("is-active", "ceph-radosgw@*.service") == [
        "is-active", "--quiet", "ceph-radosgw@*.service"]


def test_another_sites_gateways_are_never_restarted_from_here() -> None:
    asked: list[str] = []

    def endpoints(zone: str) -> list[str]:
        asked.append(zone)
        return []

    gateways = SystemdGateways("ceph-radosgw@rgw.{zone}.service", "b", endpoints)
    with pytest.raises(GatewayUnitError) as refused:
        gateways.restart("a")
    assert str(refused.value) == (
        "zone a's gateways run on another site; this site's drd manages only zone b's: "
        "(re)start them there (e.g. `systemctl restart ceph-radosgw@rgw.a.service`), then "
        "resume the run")
    assert asked == []
    assert not gateways.running("a")  # no endpoint answers: not running
    assert asked == ["a"]


def test_the_keys_file_is_read_only_when_private_and_never_shown(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    path.write_text(f'{{"access_key": "AK1", "secret_key": "{SECRET}"}}\n')
    path.chmod(0o644)
    with pytest.raises(StepFailed, match="is mode 0644; it must be 0600"):
        read_system_keys(path)
    path.chmod(0o600)
    keys = read_system_keys(path)
    assert (keys.access_key, keys.secret_key) == ("AK1", SECRET)
    assert SECRET not in f"{keys} {keys!r}"
    path.write_text(f'{{"access": "AK1", "secret": "{SECRET}"}}\n')
    with pytest.raises(StepFailed) as malformed:
        read_system_keys(path)
    assert str(malformed.value) == (f"the RGW system keys file {path} is not JSON with "
                                    f"access_key and secret_key")
    with pytest.raises(StepFailed, match="cannot read the RGW system keys file"):
        read_system_keys(tmp_path / "missing.json")
