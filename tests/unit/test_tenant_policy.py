"""Tenant policies: what they accept, and how they tell a tenant what is wrong."""

from datetime import timedelta
from pathlib import Path
from textwrap import dedent

import pytest

from drd.config import ConfigError
from drd.config.policy_loader import load_policies, load_policy, policy_json_schema
from drd.config.site_loader import load_site_config
from drd.domain.policy_limits import policy_platform_issues
from drd.domain.rules import RuleViolation
from drd.domain.site_config import SiteConfig
from drd.domain.tenant_policy import ReplicationMode, TenantPolicy

REPO = Path(__file__).parents[2]
EXAMPLES = REPO / "policies"
DATA = Path(__file__).parent / "data"
GRANTS = DATA / "site-with-grants.yaml"

WATER = """\
    tenant: water
    protection:
      block:
        - name: databases
          pool: rbd
          namespace: water
          images: ["db-*", "pg-wal-?"]
          same_city:
            mode: journal
            rpo_target: 5s
          remote:
            mode: snapshot
            interval: 1m
            rpo_target: 2m
"""


def write(tmp_path: Path, text: str, name: str = "water.yaml") -> Path:
    path = tmp_path / name
    path.write_text(dedent(text))
    return path


def issues_of(path: Path, site_config: SiteConfig | None = None) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_policy(path, site_config)
    return [issue.render() for issue in caught.value.issues]


@pytest.fixture(scope="module")
def site() -> SiteConfig:
    return load_site_config(GRANTS)


def test_a_policy_loads_with_typed_values(tmp_path: Path) -> None:
    policy = load_policy(write(tmp_path, WATER))
    (selection,) = policy.protection.block
    assert (policy.tenant, selection.name, selection.spec) == ("water", "databases", "rbd/water")
    assert selection.images == ("db-*", "pg-wal-?")
    assert selection.same_city is not None and selection.remote is not None
    assert selection.same_city.mode is ReplicationMode.JOURNAL
    assert selection.same_city.interval is None
    assert selection.same_city.rpo_target == timedelta(seconds=5)
    assert (selection.remote.interval, selection.remote.rpo_target) == (
        timedelta(minutes=1), timedelta(minutes=2))
    assert selection.selects("db-meter") and selection.selects("pg-wal-1")
    assert not selection.selects("pg-wal-10") and not selection.selects("DB-meter")
    assert policy.model_dump(mode="json")["protection"]["block"][0]["remote"] == {
        "mode": "snapshot", "interval": "1m", "rpo_target": "2m"}


def test_a_policy_of_only_a_tenant_protects_nothing(tmp_path: Path) -> None:
    assert load_policy(write(tmp_path, "tenant: water\n")).protection.block == ()


@pytest.fixture
def lab_password_file(tmp_path: Path) -> Path:
    """A 0600 file standing in for the lab's password file the water example names."""
    path = tmp_path / "water.password"
    path.write_text("lab password\n")
    path.chmod(0o600)
    return path


@pytest.mark.parametrize("tenant", ["water", "transport"])
def test_the_shipped_examples_pass_against_a_site_config_granting_them(
        tenant: str, site: SiteConfig, lab_password_file: Path) -> None:
    policy = load_policy(EXAMPLES / f"{tenant}.yaml", site,
                         stat=lambda _: lab_password_file.stat())
    assert policy.tenant == tenant
    assert policy.protection.block


def test_the_shipped_examples_show_both_same_city_modes() -> None:
    modes = {selection.same_city.mode
             for tenant in ("water", "transport")
             for selection in load_policy(EXAMPLES / f"{tenant}.yaml").protection.block
             if selection.same_city is not None}
    assert modes == {ReplicationMode.JOURNAL, ReplicationMode.SNAPSHOT}


def test_a_policy_with_many_mistakes_reports_every_one_at_its_line(tmp_path: Path) -> None:
    path = write(tmp_path, """\
        tenant: Water
        protection:
          block:
            - name: databases
              pool: rbd
              namespace: water
              images: ["db-*", "pg-wal-?"]
              same_city:
                mode: journal
                interval: 30s
                rpo_target: 5s
              remote:
                mode: journal
                interval: 1m
                rpo_target: 2m
            - name: reports
              pool: .mgr
              images: []
              same_city:
                mode: snapshot
                rpo_target: 5x
              colour: blue
            - name: logs
              pool: rbd
              namespace: water
              images: ["log-*", "log-*"]
              remote:
                mode: snapshot
                interval: 5m
                rpo_target: 1m
            - name: nowhere
              pool: rbd
              images: [x]
            - name: archive
              pool: rbd
              images: [arch-*, "a@b"]
              same_city:
                mode: jornal
                rpo_target: 1h
              remote:
                mode: snapshot
                interval: 0s
                rpo_target: 1h
                rpo_targt: 2h
          objects: []
        """)
    assert issues_of(path) == [
        f"{path}:1: tenant: 'Water' is not a tenant name: use a lowercase letter followed by "
        f"up to 62 lowercase letters, digits or '-'",
        f"{path}:10: protection.block[0].same_city.interval: not allowed when mode is "
        f"journal: journal mode ships every write as it happens, so there is no interval; "
        f"remove it, or use mode: snapshot",
        f"{path}:13: protection.block[0].remote.mode: the remote site takes only mode "
        f"snapshot: across the 200+ km WAN link drd ships mirror snapshots on an interval, "
        f"never the journal; use mode: snapshot with an interval",
        f"{path}:17: protection.block[1].pool: '.mgr' is not a pool name: use letters, "
        f"digits, '_', '.' or '-', not starting with '.' or '-', at most 127 characters",
        f"{path}:18: protection.block[1].images: must have at least 1 item, got 0",
        f"{path}:19: protection.block[1].same_city.interval: required when mode is snapshot: "
        f"how often drd takes a mirror snapshot, e.g. 1m",
        f"{path}:21: protection.block[1].same_city.rpo_target: '5x' is not a duration: must "
        f"be a duration such as 30s, 5m, 1h30m or 2d (units d, h, m, s, largest first), or "
        f"a whole number of seconds",
        f"{path}:22: protection.block[1].colour: unknown key 'colour' is not allowed; allowed "
        f"keys here: name, pool, namespace, images, same_city, remote, takeover",
        f"{path}:26: protection.block[2].images: 'log-*' is listed twice; list each glob once",
        f"{path}:30: protection.block[2].remote.rpo_target: 1m is shorter than the interval "
        f"5m, so it can never be met: in snapshot mode the peer's newest data is up to one "
        f"interval old just before each snapshot, plus the time to ship it; make rpo_target "
        f"at least 5m, or shorten the interval",
        f"{path}:31: protection.block[3]: protects nothing: add a destination, same_city, "
        f"remote or both",
        f"{path}:36: protection.block[4].images[1]: 'a@b' is not an image name glob: use an "
        f"image name with optional *, ? and [...] wildcards, without '/', '@' or spaces",
        f"{path}:38: protection.block[4].same_city.mode: must be one of 'journal' or "
        f"'snapshot', got text 'jornal'",
        f"{path}:42: protection.block[4].remote.interval: must be longer than zero, got '0s'",
        f"{path}:44: protection.block[4].remote.rpo_targt: unknown key 'rpo_targt' is not "
        f"allowed; allowed keys here: mode, interval, rpo_target",
        f"{path}:45: protection.objects: unknown key 'objects' is not allowed; allowed keys "
        f"here: block, object, service_probes",
    ]


def selection(name: str, namespace: str, images: str, mode: str) -> str:
    """One more block selection, indented to follow WATER."""
    lines = [f"- name: {name}", "  pool: rbd", f"  namespace: {namespace}",
             f"  images: {images}", "  same_city:", f"    mode: {mode}",
             *(["    interval: 1m"] if mode == "snapshot" else []), "    rpo_target: 2m"]
    return "".join(f"        {line}\n" for line in lines)


def test_rules_between_selections_are_reported_at_their_lines(tmp_path: Path) -> None:
    path = write(tmp_path, WATER
                 + selection("databases", "water", "[pg-wal-1]", "snapshot")
                 + selection("more-databases", "water", '["cache-*", "db-*"]', "snapshot"))
    assert issues_of(path) == [
        f"{path}:15: protection.block[1].name: selection 'databases' is already defined at "
        f"protection.block[0]; names must be unique within a tenant",
        f"{path}:18: protection.block[1].images[0]: 'pg-wal-1' selects images in rbd/water "
        f"that 'databases' (protection.block[0]) also selects, with same_city mode journal "
        f"there and snapshot here; an image is mirrored in one mode, so select each image "
        f"in one selection only",
        f"{path}:26: protection.block[2].images[1]: 'db-*' selects images in rbd/water that "
        f"'databases' (protection.block[0]) also selects, with same_city mode journal there "
        f"and snapshot here; an image is mirrored in one mode, so select each image in one "
        f"selection only",
    ]


@pytest.mark.parametrize(
    ("namespace", "mode"),
    [("sewage", "snapshot"),  # the same glob in another namespace
     ("water", "journal")],  # the same glob in the same mode
)
def test_the_same_globs_elsewhere_or_in_the_same_mode_are_allowed(
        tmp_path: Path, namespace: str, mode: str) -> None:
    path = write(tmp_path, WATER + selection("again", namespace, '["db-*"]', mode))
    assert len(load_policy(path).protection.block) == 2


def test_the_tenant_must_match_the_file_name(tmp_path: Path) -> None:
    path = write(tmp_path, WATER, name="water-draft.yaml")
    assert issues_of(path) == [
        f"{path}:1: tenant: tenant 'water' does not match the file name 'water-draft.yaml'; "
        f"a policy lives in the file named after its tenant, water.yaml"]


def test_grants_and_limits_are_refused_with_their_lines(
        tmp_path: Path, site: SiteConfig) -> None:
    path = write(tmp_path, """\
        tenant: water
        protection:
          block:
            - name: sewage-share
              pool: rbd
              namespace: sewage
              images: ["*"]
              remote: {mode: snapshot, interval: 1m, rpo_target: 1m}
            - name: default-namespace
              pool: rbd
              images: ["*"]
              remote: {mode: snapshot, interval: 1m, rpo_target: 1m}
            - name: other-pool
              pool: volumes
              namespace: water
              images: ["*"]
              same_city:
                mode: snapshot
                interval: 30s
                rpo_target: 30s
              remote:
                mode: snapshot
                interval: 59s
                rpo_target: 59s
        """)
    granted = "the site config grants it: rbd/water"
    assert issues_of(path, site) == [
        f"{path}:6: protection.block[0].namespace: tenant 'water' may not select images in "
        f"rbd/sewage; {granted}",
        f"{path}:9: protection.block[1].namespace: tenant 'water' may not select images in "
        f"rbd (default namespace); {granted}",
        f"{path}:14: protection.block[2].pool: tenant 'water' may not select images in "
        f"volumes/water; {granted}",
        f"{path}:19: protection.block[2].same_city.interval: 30s is shorter than the "
        f"shortest snapshot interval site 'a' allows, 1m (limits.min_snapshot_interval in "
        f"its site config)",
        f"{path}:23: protection.block[2].remote.interval: 59s is shorter than the shortest "
        f"snapshot interval site 'a' allows, 1m (limits.min_snapshot_interval in its site "
        f"config)",
    ]
    # Without a site config the same policy is valid: these rules are the platform's.
    assert load_policy(path).tenant == "water"


def test_a_tenant_unknown_to_the_site_config_is_refused(
        tmp_path: Path, site: SiteConfig) -> None:
    path = write(tmp_path, WATER.replace("water", "sewage"), name="sewage.yaml")
    assert issues_of(path, site) == [
        f"{path}:1: tenant: tenant 'sewage' is not known to site 'a' (tenants: transport, "
        f"water); the platform operator adds it under tenants: in the site config"]


def test_every_namespace_grant_and_an_rpo_limit(site: SiteConfig) -> None:
    policy = TenantPolicy.model_validate({"tenant": "transport", "protection": {"block": [
        {"name": "any-namespace", "pool": "transport-vms", "namespace": "buses",
         "images": ["*"], "same_city": {"mode": "journal", "rpo_target": 1}},
        {"name": "default-namespace", "pool": "transport-vms", "images": ["*"],
         "same_city": {"mode": "journal", "rpo_target": "1s"}},
    ]}})
    assert policy_platform_issues(policy, site) == []
    strict = site.model_copy(update={"limits": site.limits.model_copy(
        update={"min_rpo_target": timedelta(seconds=2)})})
    assert policy_platform_issues(policy, strict) == [
        RuleViolation(("protection", "block", index, "same_city", "rpo_target"),
                      "1s is shorter than the shortest RPO target site 'a' allows, 2s "
                      "(limits.min_rpo_target in its site config)")
        for index in (0, 1)]


def test_a_tenant_without_grants_is_told_it_has_none(site: SiteConfig) -> None:
    bare = site.model_copy(update={"tenants": {"water": site.tenants["water"].model_copy(
        update={"grants": ()})}})
    policy = load_policy(EXAMPLES / "water.yaml")
    messages = [issue.message for issue in policy_platform_issues(policy, bare)]
    # Two block selections and two backup sources, all in rbd/water.
    assert messages == ["tenant 'water' may not select images in rbd/water; the site "
                        "config grants it: nothing"] * 4


def test_the_site_config_holds_tenants_grants_and_limits(tmp_path: Path) -> None:
    site = load_site_config(GRANTS)
    assert sorted(site.tenants) == ["transport", "water"]
    assert [(grant.pool, grant.namespace) for grant in site.tenants["transport"].grants] == [
        ("rbd", "transport"), ("transport-vms", "*")]
    assert site.limits.min_snapshot_interval == timedelta(minutes=1)
    without = load_site_config(DATA / "site-a.yaml")
    assert without.tenants == {}
    assert (without.limits.min_snapshot_interval, without.limits.min_rpo_target) == (
        timedelta(minutes=1), timedelta(seconds=1))

    path = tmp_path / "site.yaml"
    text = GRANTS.read_text()
    path.write_text(text.replace("  water:", "  Water:")
                    .replace("        namespace: transport\n", "")
                    .replace("min_snapshot_interval: 1m", "min_snapshot_interval: 0s"))
    with pytest.raises(ConfigError) as caught:
        load_site_config(path)
    assert [issue.render() for issue in caught.value.issues] == [
        f"{path}:31: tenants.Water: 'Water' is not a tenant name: use a lowercase letter "
        f"followed by up to 62 lowercase letters, digits or '-'",
        f"{path}:37: tenants.transport.grants[0].namespace: required key is missing",
        f"{path}:41: limits.min_snapshot_interval: must be longer than zero, got '0s'",
    ]


def test_load_policies_returns_every_policy_or_every_issue_of_every_file(
        tmp_path: Path, site: SiteConfig, lab_password_file: Path) -> None:
    for name in ("water.yaml", "transport.yaml", "README.md", "schema.json"):
        (tmp_path / name).write_text((EXAMPLES / name).read_text().replace(
            "/var/lib/drd-lab/restic/water.password", str(lab_password_file)))
    (tmp_path / ".water.yaml.swp").write_text("editor junk")
    policies = load_policies(tmp_path, site)
    assert sorted(policies) == ["transport", "water"]
    assert policies["water"] == load_policy(tmp_path / "water.yaml")

    write(tmp_path, WATER.replace("interval: 1m", "interval: 10s"))
    write(tmp_path, "tenant: sewage\n", name="sewage.yaml")
    write(tmp_path, "tenant: roads\n", name="roads.yml")
    with pytest.raises(ConfigError) as caught:
        load_policies(tmp_path, site)
    assert [issue.render() for issue in caught.value.issues] == [
        f"{tmp_path}/roads.yml: policy files end in .yaml; rename it to roads.yaml, or it is "
        f"never read",
        f"{tmp_path}/sewage.yaml:1: tenant: tenant 'sewage' is not known to site 'a' "
        f"(tenants: transport, water); the platform operator adds it under tenants: in the "
        f"site config",
        f"{tmp_path}/water.yaml:13: protection.block[0].remote.interval: 10s is shorter than "
        f"the shortest snapshot interval site 'a' allows, 1m (limits.min_snapshot_interval "
        f"in its site config)",
    ]


def test_load_policies_reports_an_unreadable_directory(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_policies(tmp_path / "nowhere", None)
    assert str(caught.value) == (f"{tmp_path}/nowhere: cannot read the policies directory: "
                                 f"No such file or directory")


def test_the_schema_describes_every_field_and_forbids_unknown_keys() -> None:
    schema = policy_json_schema()
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    models = [schema, *(d for d in schema["$defs"].values() if d["type"] == "object")]
    # policy, protection, block and object selections, 3 destinations, service probes;
    # backup, its sources, schedules, retention, prune, check, restore test and its sample
    assert len(models) == 16
    for model in models:
        assert model["additionalProperties"] is False
        for name, field in model["properties"].items():
            assert field.get("description"), name
            assert field.get("examples"), name
    assert schema["required"] == ["tenant"]
    remote = schema["$defs"]["RemoteDestination"]["properties"]["mode"]
    assert remote["enum"] == ["snapshot"]
    same_city = schema["$defs"]["SameCityDestination"]
    assert same_city["else"] == {"required": ["interval"]}
