"""The lab's backup files: the repositories directory at the remote site, each tenant's
0600 password file, and the site configs that name them, so the water example applies;
and the configs' rgw section, so the lab's daemons can move the RGW master zone."""

import stat
from pathlib import Path

import yaml

from drd.config.policy_loader import load_policy
from drd.config.validation import validate
from drd.config.yaml_document import parse_yaml
from drd.domain.site_config import SiteConfig
from drd.lab.drd_files import (
    add_missing_sections,
    drd_layout,
    lab_sections,
    mint_secrets,
    render_drd_config,
    repositories_dir,
    restic_password_file,
    write_restic_files,
)
from drd.lab.rgw_lab import SYSTEM_KEYS_FILE, lab_rgw_settings
from drd.lab.topology import default_lab_dir, plan_sites

EXAMPLES = Path(__file__).parents[2] / "policies"


def lab_site_config(lab: Path, names: list[str]) -> SiteConfig:
    sites = plan_sites(names)
    site, peers = sites[0], sites[1:]
    config = render_drd_config(
        site, lab / site.name / "ceph.conf", drd_layout(lab / site.name), peers,
        {peer.name: lab / peer.name / "ceph.conf" for peer in peers},
        repositories=repositories_dir(lab, sites), rgw=lab_rgw_settings(lab))
    return validate(SiteConfig, parse_yaml(yaml.safe_dump(config), "drd.yaml"))


def test_every_lab_site_names_the_remote_sites_repositories(tmp_path: Path) -> None:
    config = lab_site_config(tmp_path, ["a", "b", "c"])
    assert config.default_repository("water") == f"{tmp_path}/c/restic/water"
    assert lab_site_config(tmp_path, ["a", "b"]).default_repository("water") is None


def test_every_lab_site_can_move_the_rgw_master_zone(tmp_path: Path) -> None:
    rgw = lab_site_config(tmp_path, ["a", "b", "c"]).rgw
    assert rgw is not None
    assert (rgw.realm, rgw.zonegroup) == ("drd-lab", "city")
    assert rgw.system_keys_file == tmp_path / SYSTEM_KEYS_FILE
    assert (rgw.lab_dir, rgw.gateway_unit) == (tmp_path, None)


def test_password_files_are_0600_and_the_repositories_dir_is_private(tmp_path: Path) -> None:
    sites = plan_sites(["a", "b", "c"])
    secrets = mint_secrets(sites)
    write_restic_files(tmp_path, sites, secrets)
    for tenant in ("water", "transport"):
        path = restic_password_file(tmp_path, tenant)
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert path.read_text() == secrets.restic[tenant] + "\n"
    assert secrets.restic["water"] != secrets.restic["transport"]
    repositories = repositories_dir(tmp_path, sites)
    assert repositories is not None
    assert stat.S_IMODE(repositories.stat().st_mode) == 0o700


def test_the_water_example_applies_on_the_default_lab(tmp_path: Path) -> None:
    # The example names the default lab's password file; here it lives under tmp_path.
    lab_password = restic_password_file(default_lab_dir(0), "water")
    assert str(lab_password) in (EXAMPLES / "water.yaml").read_text()
    sites = plan_sites(["a", "b", "c"])
    write_restic_files(tmp_path, sites, mint_secrets(sites))
    local = restic_password_file(tmp_path, "water")
    policy = load_policy(EXAMPLES / "water.yaml", lab_site_config(tmp_path, ["a", "b", "c"]),
                         stat=lambda path: local.stat() if path == lab_password
                         else path.stat())
    assert policy.backup is not None and policy.backup.password_file == lab_password


def test_a_lab_from_before_backups_gets_its_files_and_keeps_what_it_has(
        tmp_path: Path) -> None:
    sites = plan_sites(["a", "b", "c"])
    water = restic_password_file(tmp_path, "water")
    water.parent.mkdir()
    water.write_text("the password a repository already uses\n")
    written = write_restic_files(tmp_path, sites, mint_secrets(sites))
    assert written == [restic_password_file(tmp_path, "transport")]
    assert water.read_text() == "the password a repository already uses\n"

    config = tmp_path / "drd.yaml"
    newer = {"backup", "rgw"}
    old = lab_site_config(tmp_path, ["a", "b"]).model_dump(mode="json", exclude=newer)
    config.write_text(yaml.safe_dump(old, sort_keys=False))
    sections = lab_sections(repositories_dir(tmp_path, sites), lab_rgw_settings(tmp_path))
    assert add_missing_sections(config, sections) == ["backup", "rgw"]
    upgraded = validate(SiteConfig, parse_yaml(config.read_text(), str(config)))
    assert upgraded.default_repository("water") == f"{tmp_path}/c/restic/water"
    assert upgraded.rgw is not None and upgraded.rgw.lab_dir == tmp_path
    assert upgraded.model_dump(exclude=newer) == SiteConfig.model_validate(
        old).model_dump(exclude=newer)
    assert add_missing_sections(config, sections) == []  # a second `lab up` changes nothing
