"""A site's config: what it accepts, and how it tells an operator what is wrong."""

from pathlib import Path
from textwrap import dedent

import pytest

from drd.config import ConfigError
from drd.config.site_loader import export_site_config_schema, load_site_config
from drd.domain.site import SiteKind
from drd.domain.site_config import LogLevel, SiteConfig

EXAMPLE = Path(__file__).parent / "data" / "site-a.yaml"


def example_with(tmp_path: Path, old: str, new: str) -> Path:
    """The example config with one exact piece of text replaced, written to tmp_path."""
    text = EXAMPLE.read_text()
    assert old in text
    path = tmp_path / "site.yaml"
    path.write_text(text.replace(old, new, 1))
    return path


def issues_of(path: Path) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_site_config(path)
    return [issue.render() for issue in caught.value.issues]


def test_the_example_loads(tmp_path: Path) -> None:
    config = load_site_config(EXAMPLE)
    assert (config.site.name, config.site.kind) == ("a", SiteKind.PRODUCTION)
    assert (config.api.listen_host, config.api.listen_port) == ("127.0.1.1", 8470)
    assert config.paths.state_dir == Path("/var/lib/drd")
    assert [(peer.name, peer.kind) for peer in config.peers] == [
        ("b", SiteKind.SAME_CITY), ("c", SiteKind.REMOTE)]
    assert config.peer("b").ceph_conf == Path("/etc/ceph/b.conf")
    assert config.peer("c").ceph_conf is None
    assert config.log.level is LogLevel.INFO
    with pytest.raises(KeyError, match="no peer named 'd' \\(peers: b, c\\)"):
        config.peer("d")


def test_optional_sections_take_their_documented_defaults(tmp_path: Path) -> None:
    text = EXAMPLE.read_text()
    path = tmp_path / "site.yaml"
    path.write_text(text[:text.index("heartbeat:")])
    config = load_site_config(path)
    beat = config.heartbeat
    assert (beat.interval_seconds, beat.timeout_seconds, beat.lost_after_missed) == (2.0, 1.5, 3)
    assert config.log.level is LogLevel.INFO


def test_a_file_with_many_mistakes_reports_every_one_at_its_line(tmp_path: Path) -> None:
    path = tmp_path / "site.yaml"
    path.write_text(dedent("""\
        site:
          name: a
          kind: prod
          colour: blue
        ceph:
          conf: etc/ceph/ceph.conf
          client: admin
        api:
          listen: 127.0.1.1:8470
        paths:
          state_dir: /var/lib/drd
          policies_dir: /etc/drd/policies
          runbooks_dir: /etc/drd/runbooks
          state_dir: /srv/drd
        peers:
          - name: b
            kind: same-city
            url: http://127.0.2.1:8470
            token_file: /etc/drd/peer-token
          - name: b
            kind: remote
            url: http://127.0.3.1:8470
            token_file: /etc/drd/peer-token
        heartbeat:
          interval_seconds: fast
        """))
    assert issues_of(path) == [
        f"{path}:3: site.kind: must be one of 'production', 'same-city' or 'remote', "
        f"got text 'prod'",
        f"{path}:4: site.colour: unknown key 'colour' is not allowed; "
        f"allowed keys here: name, kind",
        f"{path}:6: ceph.conf: must be an absolute path (starting with /), "
        f"got 'etc/ceph/ceph.conf'",
        f"{path}:8: api.tokens_file: required key is missing",
        f"{path}:14: paths.state_dir: duplicate key 'state_dir' "
        f"(first at line 11, again at line 14); remove one of them",
        f"{path}:20: peers[1].name: peer 'b' is already defined at peers[0]",
        f"{path}:25: heartbeat.interval_seconds: must be a number, got text 'fast'",
    ]


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ("kind: same-city", "kind: production",
         "16: peers[0].kind: site 'a' is already the production site; there can be only one"),
        ("kind: remote", "kind: same-city",
         "21: peers[1].kind: site 'b' is already same-city; three sites need one "
         "production, one same-city and one remote site"),
        ("- name: c", "- name: a",
         "20: peers[1].name: peer 'a' has this site's own name (site.name); "
         "a peer must be another site"),
        ("http://127.0.2.1:8470", "http://127.0.1.1:8470/",
         "17: peers[0].url: points at this site's own API (api.listen 127.0.1.1:8470); "
         "a peer must be another site"),
        ("timeout_seconds: 1.5", "timeout_seconds: 2.0",
         "26: heartbeat.timeout_seconds: timeout_seconds (2.0) must be less than "
         "interval_seconds (2.0)"),
        ("interval_seconds: 2.0\n  timeout_seconds: 1.5\n", "interval_seconds: 1\n",
         "24: heartbeat.timeout_seconds: timeout_seconds (1.5, the default) must be less "
         "than interval_seconds (1.0)"),
    ],
)
def test_cross_field_rules(tmp_path: Path, old: str, new: str, expected: str) -> None:
    path = example_with(tmp_path, old, new)
    assert issues_of(path) == [f"{path}:{expected}"]


def test_two_sites_may_be_any_kinds_but_never_two_productions(tmp_path: Path) -> None:
    text = EXAMPLE.read_text()
    two_sites = text[:text.index("  - name: c")] + text[text.index("heartbeat:"):]
    path = tmp_path / "site.yaml"
    path.write_text(two_sites.replace("kind: production", "kind: remote")
                    .replace("kind: same-city", "kind: remote"))
    assert len(load_site_config(path).peers) == 1
    path.write_text(two_sites.replace("kind: same-city", "kind: production"))
    assert issues_of(path) == [f"{path}:16: peers[0].kind: site 'a' is already the "
                               f"production site; there can be only one"]


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ("name: a ", "name: A ", "2: site.name: 'A' is not a site name: use a lowercase "
                                 "letter followed by up to 30 lowercase letters, digits or '-'"),
        ("client: admin", "client: client.admin",
         "6: ceph.client: give the cephx id without the 'client.' prefix, e.g. 'admin'"),
        ("127.0.1.1:8470 ", "127.0.1.1 ",
         "8: api.listen: '127.0.1.1' must be host:port, e.g. 127.0.1.1:8470"),
        ("127.0.1.1:8470 ", "127.0.1.1:0 ",
         "8: api.listen: port '0' must be a number from 1 to 65535"),
        ("127.0.1.1:8470 ", "127.0.1.300:8470 ",
         "8: api.listen: '127.0.1.300' is not a valid IPv4 address"),
        ("http://127.0.3.1:8470", "ftp://127.0.3.1",
         "22: peers[1].url: must be an http:// or https:// base URL, "
         "e.g. http://127.0.2.1:8470"),
        ("level: info", "level: verbose",
         "29: log.level: must be one of 'debug', 'info', 'warning' or 'error', "
         "got text 'verbose'"),
        ("lost_after_missed: 3", "lost_after_missed: 0",
         "27: heartbeat.lost_after_missed: must be at least 1, got the number 0"),
        ("interval_seconds: 2.0", "interval_seconds: 61.0",
         "25: heartbeat.interval_seconds: must be at most 60, got the number 61.0"),
        ("conf: /etc/ceph/ceph.conf", "conf:",
         "5: ceph.conf: must be a file system path, got nothing (null)"),
    ],
)
def test_field_rules_explain_themselves(
        tmp_path: Path, old: str, new: str, expected: str) -> None:
    path = example_with(tmp_path, old, new)
    assert issues_of(path) == [f"{path}:{expected}"]


def test_a_token_pasted_where_its_file_belongs_is_refused_without_echoing_it(
        tmp_path: Path) -> None:
    path = example_with(tmp_path, "token_file: /etc/drd/peer-token\n    ceph_conf",
                        "token_file: s3cr3t-t0ken\n    ceph_conf")
    issues = issues_of(path)
    assert issues == [f"{path}:18: peers[0].token_file: must be the absolute path of a file "
                      f"that holds the token, never the token itself"]
    assert "s3cr3t" not in issues[0]


def test_a_third_peer_is_refused(tmp_path: Path) -> None:
    path = example_with(tmp_path, "heartbeat:", dedent("""\
          - name: d
            kind: remote
            url: http://127.0.4.1:8470
            token_file: /etc/drd/peer-token
        heartbeat:"""))
    assert issues_of(path) == [f"{path}:14: peers: must have at most 2 items, got 3"]


def test_the_schema_describes_every_field_and_forbids_unknown_keys() -> None:
    schema = export_site_config_schema()
    models = [schema, *(d for d in schema["$defs"].values() if d["type"] == "object")]
    assert len(models) == 15  # with PoolGrant, TenantGrants, PlatformLimits, ObjectSyncSettings,
    # BackupSettings, RgwSettings, TakeoverSettings
    for model in models:
        assert model["additionalProperties"] is False
        for name, field in model["properties"].items():
            assert field.get("description"), name
    assert set(schema["required"]) == {"site", "ceph", "api", "paths"}
    site_name = schema["$defs"]["SiteIdentity"]["properties"]["name"]
    assert site_name["pattern"] == "^[a-z][a-z0-9-]{0,30}$"
    assert SiteConfig.model_json_schema()["title"] == "SiteConfig"


def test_takeover_defaults_and_thresholds_that_cannot_work_are_refused(
        tmp_path: Path) -> None:
    takeover = load_site_config(EXAMPLE).takeover
    assert (takeover.suspect_after, takeover.lost_after) == (2, 3)
    assert takeover.lease().ttl == 6.0 and takeover.detector().lost_after == 3
    inverted = example_with(tmp_path, "log:", "takeover:\n  suspect_after: 4\nlog:")
    [issue] = issues_of(inverted)
    assert issue.startswith(f"{inverted}:") and "takeover" in issue
    assert "suspect_after <= lost_after" in issue
    late = example_with(tmp_path, "log:", "takeover:\n  fence_margin_seconds: 6\nlog:")
    assert "fence_margin" in issues_of(late)[0]


def test_the_rbd_mirror_is_restarted_one_way_or_the_other(tmp_path: Path) -> None:
    unit = example_with(tmp_path, "client: admin ",
                        "rbd_mirror_unit: ceph-rbd-mirror@admin.service\n  client: admin ")
    assert load_site_config(unit).ceph.rbd_mirror_unit == "ceph-rbd-mirror@admin.service"
    both = example_with(tmp_path, "client: admin ",
                        "rbd_mirror_unit: ceph-rbd-mirror@admin.service\n  lab_dir: /lab\n"
                        "  client: admin ")
    assert issues_of(both) == [f"{both}:4: ceph: give at most one of rbd_mirror_unit (the "
                               f"systemd unit of this site's rbd-mirror) and lab_dir (the "
                               f"lab's)"]
    bad = example_with(tmp_path, "client: admin ", "rbd_mirror_unit: rbd-mirror\n  client: admin ")
    assert issues_of(bad) == [f"{bad}:6: ceph.rbd_mirror_unit: 'rbd-mirror' is not a systemd "
                              f"unit name such as ceph-rbd-mirror@admin.service"]
