"""The site config's `rgw:` section: how runbooks move the RGW master zone. Every problem
is reported at its line, and the keys file must be 0600 without its content ever shown."""

from pathlib import Path
from textwrap import dedent

import pytest

from drd.config import ConfigError
from drd.config.site_loader import load_site_config
from drd.domain.rgw_settings import system_keys_file_issues

EXAMPLE = Path(__file__).parent / "data" / "site-a.yaml"
SECRET = "wJalrXUtnFEMIK7MDENGbPxRfiCYEXAMPLEKEY"  # noqa: S105 (a made-up key)


def config_with(tmp_path: Path, rgw: str, *, zone: bool = True,
                peer_zone: str = "") -> Path:
    """The example config with an rgw section (and this site's zone unless told not)."""
    text = EXAMPLE.read_text()
    if zone:
        text = text.replace("  client: admin ", "  rgw_zone: a\n  client: admin ")
    text = text.replace("    ceph_conf: /etc/ceph/b.conf\n",
                        "    ceph_conf: /etc/ceph/b.conf\n    rgw_zone: b\n")
    text = text.replace("    url: http://127.0.3.1:8470\n",
                        f"    url: http://127.0.3.1:8470\n{peer_zone}")
    path = tmp_path / "site.yaml"
    path.write_text(text + dedent(rgw))
    return path


def keys_file(tmp_path: Path, mode: int = 0o600) -> Path:
    path = tmp_path / "rgw-keys.json"
    path.write_text(f'{{"access_key": "AK", "secret_key": "{SECRET}"}}\n')
    path.chmod(mode)
    return path


def issues_of(path: Path) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_site_config(path)
    return [issue.render() for issue in caught.value.issues]


def test_a_site_with_systemd_gateways_and_its_keys_file_loads(tmp_path: Path) -> None:
    keys = keys_file(tmp_path)
    path = config_with(tmp_path, f"""\
        rgw:
          realm: city-realm
          zonegroup: city
          system_keys_file: {keys}
          gateway_unit: ceph-radosgw@rgw.{{zone}}.service
        """)
    rgw = load_site_config(path).rgw
    assert rgw is not None
    assert (rgw.realm, rgw.zonegroup, rgw.system_keys_file) == ("city-realm", "city", keys)
    assert (rgw.gateway_unit, rgw.lab_dir) == ("ceph-radosgw@rgw.{zone}.service", None)


def test_without_the_section_runbooks_cannot_move_the_zone_and_nothing_is_read(
        tmp_path: Path) -> None:
    assert load_site_config(EXAMPLE).rgw is None
    assert system_keys_file_issues(None, lambda _path: pytest.fail("stat called")) == []


def test_every_problem_of_the_section_is_at_its_line(tmp_path: Path) -> None:
    path = config_with(tmp_path, f"""\
        rgw:
          realm: city realm
          zonegroup: city
          system_keys_file: {SECRET}
          gateway_unit: radosgw {{host}}
          colour: blue
        """, zone=False)
    issues = issues_of(path)
    assert issues == [
        f"{path}:32: rgw.realm: 'city realm' is not an RGW realm or zonegroup name: use up "
        f"to 64 letters, digits, '_', '.' or '-', starting with a letter or digit",
        f"{path}:34: rgw.system_keys_file: must be the absolute path of the 0600 JSON file "
        f"that holds the system user's keys, never the keys themselves",
        f"{path}:35: rgw.gateway_unit: 'radosgw {{host}}': the only placeholder is {{zone}}",
        f"{path}:36: rgw.colour: unknown key 'colour' is not allowed; allowed keys here: "
        f"realm, zonegroup, system_keys_file, gateway_unit, lab_dir",
    ]
    assert not any(SECRET in issue for issue in issues)


def test_cross_field_rules_of_the_section(tmp_path: Path) -> None:
    keys = keys_file(tmp_path)
    both = config_with(tmp_path, f"""\
        rgw:
          realm: r
          zonegroup: g
          system_keys_file: {keys}
          gateway_unit: ceph-radosgw@*.service
          lab_dir: /var/lib/drd-lab
        """, zone=False)
    assert issues_of(both) == [
        f"{both}:31: rgw: give exactly one of gateway_unit (the systemd unit of this site's "
        f"gateways) and lab_dir (the lab's gateways)"]
    lab = config_with(tmp_path, f"""\
        rgw: {{realm: r, zonegroup: g, system_keys_file: {keys}, lab_dir: /var/lib/drd-lab}}
        """, zone=False, peer_zone="    rgw_zone: c\n")
    assert issues_of(lab) == [
        f"{lab}:24: peers[1].rgw_zone: zone c needs this peer's ceph_conf: runbooks read "
        f"and change that zone through its cluster (rgw is set)",
        f"{lab}:32: rgw: needs ceph.rgw_zone, the zone of this site's gateways, which "
        f"runbooks promote"]


@pytest.mark.parametrize(("mode", "expected"), [
    (0o644, "is mode 0644, so users other than its owner may read or change the multisite "
            "system user's keys; make it 0600: chmod 600 {keys}"),
    (None, "does not exist; put the multisite system user's keys there as JSON, mode 0600, "
           "owned by drd"),
])
def test_the_keys_file_must_be_private_and_exist(tmp_path: Path, mode: int | None,
                                                  expected: str) -> None:
    keys = keys_file(tmp_path, mode or 0o600)
    if mode is None:
        keys.unlink()
    path = config_with(tmp_path, f"""\
        rgw: {{realm: r, zonegroup: g, system_keys_file: {keys}, lab_dir: /var/lib/drd-lab}}
        """)
    issues = issues_of(path)
    assert issues == [f"{path}:32: rgw.system_keys_file: {keys} "
                      + expected.format(keys=keys)]
    assert not any(SECRET in issue for issue in issues)
