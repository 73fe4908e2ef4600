"""A lab site's ceph.conf, cephx keys and keyrings, as Ceph itself would read them."""

import base64
import struct
from configparser import ConfigParser
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from drd.lab.ceph_conf import (
    Entity,
    SiteLayout,
    mon_entity,
    new_ceph_key,
    render_ceph_conf,
    render_keyring,
    site_entities,
)
from drd.lab.topology import SiteSpec, plan_sites

FSID = "8d3a1c2e-5b7f-4c1a-9e0d-2f6b8a4c7e91"
SECRET = bytes(range(16))
SITE_A, SITE_B, _ = plan_sites(["a", "b", "c"], block=3)
ROOT = Path("/srv/lab-3/a")

# The client.admin key printed in Ceph's manual-deployment docs, made by ceph-authtool.
PUBLISHED_KEY = "AQBHCbtT6APDHhAA5W00cBchwkQjh3dkKsyPjw=="


def parse_conf(text: str) -> ConfigParser:
    """Read a ceph.conf as INI; strict, so a key set twice in one section fails."""
    conf = ConfigParser(interpolation=None, strict=True)
    conf.read_string(text)
    return conf


def site_conf(site: SiteSpec = SITE_A, root: Path = ROOT) -> ConfigParser:
    return parse_conf(render_ceph_conf(site, FSID, SiteLayout(root)))


def setting(conf: ConfigParser, entity: str, key: str) -> str:
    """Resolve `key` for `entity` as Ceph does: [type.id], then [type], then [global]."""
    kind = entity.split(".", 1)[0]
    section = next(s for s in (entity, kind, "global") if conf.has_option(s, key))
    return conf[section][key]


def expand(value: str, entity: str) -> Path:
    """Expand Ceph's metavariables the way a daemon named `entity` would."""
    daemon_id = entity.split(".", 1)[1]
    return Path(value.replace("$cluster", "ceph").replace("$name", entity)
                .replace("$id", daemon_id))


def test_new_ceph_key_encodes_the_cryptokey_layout() -> None:
    created = datetime(2026, 11, 21, 23, 23, 35, 123456, tzinfo=UTC)

    raw = base64.b64decode(new_ceph_key(SECRET, created), validate=True)

    key_type, seconds, nanoseconds, length = struct.unpack("<HIIH", raw[:12])
    assert (key_type, length) == (1, 16)
    assert datetime.fromtimestamp(seconds, UTC) == created.replace(microsecond=0)
    assert nanoseconds == 123_456_000
    assert raw[12:] == SECRET
    assert len(raw) == 28


def test_new_ceph_key_reproduces_a_key_made_by_ceph_authtool() -> None:
    raw = base64.b64decode(PUBLISHED_KEY)
    _, seconds, nanoseconds, _ = struct.unpack("<HIIH", raw[:12])
    created = datetime.fromtimestamp(seconds, UTC) + timedelta(microseconds=nanoseconds // 1000)

    assert new_ceph_key(raw[12:], created) == PUBLISHED_KEY


@pytest.mark.parametrize("length", [0, 15, 17, 32])
def test_new_ceph_key_refuses_a_secret_of_the_wrong_length(length: int) -> None:
    with pytest.raises(ValueError, match=f"a cephx secret is 16 bytes, not {length}"):
        new_ceph_key(bytes(length), datetime(2026, 1, 1, tzinfo=UTC))


def test_render_keyring_writes_each_entity_with_its_key_and_quoted_caps() -> None:
    entries = [
        (Entity("client.admin", (("mon", "allow *"), ("osd", "allow *"))), "KEY1"),
        (Entity("mon.", (("mon", "allow *"),)), "KEY2"),
    ]

    assert render_keyring(entries) == (
        "[client.admin]\n"
        "\tkey = KEY1\n"
        '\tcaps mon = "allow *"\n'
        '\tcaps osd = "allow *"\n'
        "[mon.]\n"
        "\tkey = KEY2\n"
        '\tcaps mon = "allow *"\n'
    )


def test_site_entities_carry_the_caps_each_daemon_needs() -> None:
    caps = {entity.name: dict(entity.caps) for entity in site_entities(SITE_B)}

    assert caps == {
        "client.admin": {"mon": "allow *", "osd": "allow *", "mds": "allow *",
                         "mgr": "allow *"},
        "osd.0": {"mon": "allow profile osd", "mgr": "allow profile osd", "osd": "allow *"},
        "mgr.b": {"mon": "allow profile mgr", "osd": "allow *", "mds": "allow *"},
        "client.rbd-mirror.b": {"mon": "profile rbd-mirror", "osd": "profile rbd"},
        # radosgw creates its zone's pools on first use, hence osd rwx and mon rw
        "client.rgw.b": {"mon": "allow rw", "osd": "allow rwx"},
    }


def test_the_monitor_key_lets_monitors_do_anything() -> None:
    assert mon_entity() == Entity("mon.", (("mon", "allow *"),))


def test_ceph_conf_names_the_site_fsid_and_its_single_msgr2_monitor() -> None:
    conf = site_conf()

    assert conf["global"]["fsid"] == FSID
    assert conf["global"]["mon_host"] == "[v2:127.3.1.1:3300]"
    assert conf["global"]["public_addr"] == "127.3.1.1"
    assert conf["global"]["ms_bind_msgr1"] == "false"


def test_ceph_conf_requires_cephx_everywhere() -> None:
    conf = site_conf()["global"]

    assert [conf[f"auth_{side}_required"] for side in ("cluster", "service", "client")] == [
        "cephx", "cephx", "cephx",
    ]


@pytest.mark.parametrize("memstore_bytes", [1024**3, 5 * 1024**3])
def test_ceph_conf_keeps_the_osd_in_memory_with_the_given_cap(memstore_bytes: int) -> None:
    text = render_ceph_conf(SITE_A, FSID, SiteLayout(ROOT), memstore_bytes)

    conf = parse_conf(text)["global"]
    assert conf["osd_objectstore"] == "memstore"
    assert conf["memstore_device_bytes"] == str(memstore_bytes)


def test_default_memstore_cap_is_two_gib() -> None:
    assert site_conf()["global"]["memstore_device_bytes"] == str(2 * 1024**3)


def test_the_osd_trims_removed_snapshots_without_the_hdd_pause() -> None:
    # memstore counts as rotational; at the hdd default of 5 s between trims the data
    # of removed snapshots filled the memstore faster than it was freed.
    assert site_conf()["osd"]["osd_snap_trim_sleep_hdd"] == "0"


def test_every_path_in_ceph_conf_lies_inside_the_site_root() -> None:
    conf = site_conf()

    paths = {(section, key): value for section in conf.sections()
             for key, value in conf[section].items() if "/" in value}

    assert set(paths) == {
        ("global", "keyring"), ("global", "run_dir"),
        ("mon", "mon_data"), ("mon", "keyring"), ("mon", "log_file"), ("mon", "admin_socket"),
        ("mon", "mon_cluster_log_file"),
        ("osd", "osd_data"), ("osd", "log_file"), ("osd", "admin_socket"),
        ("mgr", "mgr_data"), ("mgr", "log_file"), ("mgr", "admin_socket"),
        ("client.rbd-mirror.a", "log_file"), ("client.rbd-mirror.a", "admin_socket"),
        ("client.rgw.a", "log_file"), ("client.rgw.a", "admin_socket"),
    }
    outside = {where: value for where, value in paths.items()
               if not value.startswith("$mon_data/") and not Path(value).is_relative_to(ROOT)}
    assert outside == {}


@pytest.mark.parametrize("entity", [e.name for e in site_entities(SITE_A)])
def test_each_entity_reads_the_keyring_the_layout_names(entity: str) -> None:
    keyring = setting(site_conf(), entity, "keyring")

    assert expand(keyring, entity) == SiteLayout(ROOT).keyring(entity)


@pytest.mark.parametrize("entity", ["mon.a", "osd.0", "mgr.a", "client.rbd-mirror.a"])
def test_each_daemon_logs_where_the_layout_expects_and_sockets_in_the_run_dir(
    entity: str,
) -> None:
    conf = site_conf()
    layout = SiteLayout(ROOT)

    assert expand(setting(conf, entity, "log_file"), entity) == layout.log(entity)
    assert expand(setting(conf, entity, "admin_socket"), entity).parent == layout.run_dir


@pytest.mark.parametrize(("kind", "entity"), [("mon", "mon.a"), ("osd", "osd.0"),
                                              ("mgr", "mgr.a")])
def test_daemon_data_dirs_are_the_layout_data_dirs(kind: str, entity: str) -> None:
    conf = site_conf()
    layout = SiteLayout(ROOT)

    data_dir = expand(conf[kind][f"{kind}_data"], entity)

    assert data_dir == layout.data_dir(kind, entity.split(".", 1)[1])
    assert data_dir.parent in layout.directories()


def test_ceph_conf_has_an_rbd_mirror_section_for_the_site_only() -> None:
    conf = site_conf(SITE_B, Path("/srv/lab-3/b"))

    mirror_sections = [s for s in conf.sections() if s.startswith("client.rbd-mirror")]
    assert mirror_sections == ["client.rbd-mirror.b"]
    assert conf["client.rbd-mirror.b"]["log_file"] == "/srv/lab-3/b/log/$cluster-$name.log"
