"""The object part of a tenant policy: bucket selections, their lag targets and owners."""

from datetime import timedelta
from pathlib import Path

from drd.config.policy_loader import load_policy
from drd.config.site_loader import load_site_config
from drd.domain.object_selection import (
    RepairMode,
    bucket_owner_issues,
    plain_bucket_names,
)
from tests.unit.test_tenant_policy import issues_of, write

DATA = Path(__file__).parent / "data"

DOCUMENTS = """\
    tenant: water
    protection:
      object:
        - name: documents
          buckets: ["docs-*", "exports"]
          same_city:
            lag_target: 2m
          remote:
            lag_target: 10m
          repair: auto
"""


def test_a_bucket_selection_loads_with_typed_targets(tmp_path: Path) -> None:
    policy = load_policy(write(tmp_path, DOCUMENTS))
    (selection,) = policy.protection.object
    assert selection.same_city is not None and selection.remote is not None
    assert selection.same_city.lag_target == timedelta(minutes=2)
    assert selection.remote.lag_target == timedelta(minutes=10)
    assert selection.repair is RepairMode.AUTO
    assert selection.selects("docs-2026") and selection.selects("exports")
    assert not selection.selects("exports-old")
    assert plain_bucket_names(policy.protection.object) == ["exports"]


def test_bad_bucket_selections_are_each_reported_at_their_line(tmp_path: Path) -> None:
    path = write(tmp_path, """\
        tenant: water
        protection:
          object:
            - name: documents
              buckets: ["Docs", "ab"]
              same_city:
                lag_target: soon
              repair: sometimes
            - name: nothing
              buckets: ["x-*"]
            - name: again
              buckets: ["docs-*", "docs-*"]
              remote:
                lag_target: 5m
    """)
    issues = issues_of(path)
    text = "\n".join(issues)
    assert f"{path}:5: protection.object[0].buckets[0]: 'Docs' is not a bucket name" in text
    assert f"{path}:5: protection.object[0].buckets[1]: 'ab' is not an S3 bucket name" in text
    assert f"{path}:12: protection.object[2].buckets: 'docs-*' is listed twice" in text
    assert f"{path}:7: protection.object[0].same_city.lag_target:" in text
    assert f"{path}:8: protection.object[0].repair:" in text
    assert f"{path}:9: protection.object[1]: watches nothing" in text


def test_two_selections_claiming_one_bucket_are_refused(tmp_path: Path) -> None:
    path = write(tmp_path, """\
        tenant: water
        protection:
          object:
            - name: documents
              buckets: ["docs-*"]
              remote: {lag_target: 5m}
            - name: documents
              buckets: ["archive", "docs-2026"]
              remote: {lag_target: 1h}
    """)
    issues = issues_of(path)
    assert any(":7: protection.object[1].name: selection 'documents' is already defined"
               in issue for issue in issues)
    assert any(":8: protection.object[1].buckets[1]: 'docs-2026' selects buckets that "
               "'documents' (protection.object[0]) also selects" in issue for issue in issues)


def test_a_lag_target_below_the_platform_minimum_is_refused(tmp_path: Path) -> None:
    site = load_site_config(DATA / "site-with-grants.yaml")
    path = write(tmp_path, DOCUMENTS.replace("lag_target: 2m", "lag_target: 20s"))
    issues = issues_of(path, site)
    assert any(":7: protection.object[0].same_city.lag_target: 20s is shorter than the "
               "shortest sync-lag target site" in issue for issue in issues)


def test_a_named_bucket_owned_by_another_user_is_refused(tmp_path: Path) -> None:
    policy = load_policy(write(tmp_path, DOCUMENTS))
    selections = policy.protection.object
    # Globs never claim: only the tenant's own buckets are matched against them.
    assert bucket_owner_issues(selections, "water", {"exports": "water"}) == []
    assert bucket_owner_issues(selections, "water", {"exports": None}) == []
    (issue,) = bucket_owner_issues(selections, "water", {"exports": "transport"})
    assert issue.path == ("protection", "object", 0, "buckets", 1)
    assert "owned by RGW user 'transport', not by this tenant's user 'water'" in issue.message


def test_the_tenants_rgw_user_defaults_to_its_name() -> None:
    site = load_site_config(DATA / "site-with-grants.yaml")
    assert site.rgw_user("water") == "water"
    assert site.rgw_user("unknown") == "unknown"
