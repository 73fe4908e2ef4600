"""Runbook files: the built-ins are valid, and a bad runbook is refused with every
problem at its line before anything could run."""

from pathlib import Path

import pytest

from drd.config.runbook_loader import builtin_runbooks_dir, load_runbooks, parse_runbook
from drd.config.yaml_document import ConfigError

SITES = {"a", "b", "c"}


def test_the_built_in_runbooks_are_valid() -> None:
    books, issues = load_runbooks(None, SITES)
    assert issues == []
    assert {"switchover", "drill"} <= set(books)
    assert all(book.builtin for book in books.values())
    assert books["switchover"].path.parent == builtin_runbooks_dir()


def test_a_site_runbook_replaces_the_built_in_of_its_name(tmp_path: Path) -> None:
    text = (builtin_runbooks_dir() / "drill.yaml").read_text().replace(
        "target: b", "target: c")
    (tmp_path / "drill.yaml").write_text(text)
    books, _ = load_runbooks(tmp_path, SITES)
    assert books["drill"].runbook.target == "c" and not books["drill"].builtin


def test_every_problem_is_reported_with_its_line() -> None:
    text = """\
name: broken
source: a
target: d
groups:
  - name: only
    steps:
      - {name: x, type: rbd_demote, params: {site: source}}
      - name: y
        type: rbd_teleport
        params: {site: target}
      - name: z
        type: rbd_promote
        params: {site: target, force: true}
      - {name: x, type: wait_in_sync, params: {site: target}}
      - {name: w, type: mirror_snapshot, params: {site: nowhere}}
"""
    with pytest.raises(ConfigError) as caught:
        parse_runbook(text, Path("broken.yaml"), SITES)
    rendered = str(caught.value).splitlines()
    assert any(line.startswith("broken.yaml:9: groups[0].steps[1].type: unknown type "
                               "'rbd_teleport'") for line in rendered)
    assert ("broken.yaml:13: groups[0].steps[2].params.force: unknown key 'force' is not "
            "allowed; allowed keys here: site, propagation_timeout") in rendered
    assert ("broken.yaml:14: groups[0].steps[3].params.primary: required key is missing"
            in rendered)


def test_unknown_sites_and_duplicate_step_names_are_refused() -> None:
    text = """\
name: sites
source: a
target: d
groups:
  - name: only
    steps:
      - {name: x, type: rbd_demote, params: {site: source}}
      - {name: x, type: mirror_snapshot, params: {site: nowhere}}
"""
    with pytest.raises(ConfigError) as caught:
        parse_runbook(text, Path("sites.yaml"), SITES)
    rendered = str(caught.value)
    assert "sites.yaml:3: target: unknown site 'd'; known: a, b, c" in rendered
    assert "sites.yaml:8: groups[0].steps[1].name: step 'x' is named twice" in rendered
    assert "sites.yaml:8: groups[0].steps[1].params.site: unknown site 'nowhere'" in rendered


def test_the_daemon_has_an_executor_for_every_step_type() -> None:
    from drd.domain.runbook_steps import STEP_TYPES
    from drd.runbooks.library import step_executors
    assert set(step_executors()) == set(STEP_TYPES)


def test_every_built_in_step_has_an_executor_and_the_rgw_zone_moves_with_the_blocks() -> None:
    from drd.runbooks.library import step_executors
    books, _ = load_runbooks(None, SITES)
    rgw = {name: [(step.name, step.type, step.params.model_dump())  # type: ignore[attr-defined]
                  for _, step in book.runbook.steps() if step.type.startswith("rgw_")]
           for name, book in books.items()}
    assert rgw == {
        "switchover": [("promote-zone", "rgw_zone_promote", {"site": "target"})],
        "failover": [("promote-zone", "rgw_zone_promote", {"site": "target"})],
        "failback": [("fail-back-zone", "rgw_zone_failback", {"site": "target"})],
        "drill": []}
    used = {step.type for book in books.values() for _, step in book.runbook.steps()}
    assert used <= set(step_executors())
