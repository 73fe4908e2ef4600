"""Runbooks through the daemons on the real lab: a switchover by `drd switchover` keeps
every byte and proves replication back; a daemon killed with SIGKILL in the middle of a
switchover, at several different steps, is restarted and `drd runbook resume` finishes
the run with nothing doubled; a runbook with an invalid step is refused before anything
runs; every run is in the audit log."""

import json
import os
import signal
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
import rbd

from drd.lab.description import DaemonRole, LabDescription, SiteRecord
from tests.integration.rbd_images import (
    MiB,
    create_mirrored_image,
    image_sha256,
    pool,
    random_bytes,
    wait_for_checksum,
    write,
)
from tests.integration.runbook_helpers import (
    api,
    is_primary,
    kill,
    mirroring_enabled,
    pids,
    restart_dead,
    steps_told,
    take_mirror_snapshots,
    wait_answers,
    wait_ended,
)
from tests.integration.runbook_helpers import checksums as checksums_of
from tests.integration.test_replication import drd, eventually

pytestmark = pytest.mark.timeout(900)

RUN = uuid.uuid4().hex[:6]
JOURNAL = [f"rb-{RUN}-j{n}" for n in range(3)]
SNAPSHOT = [f"rb-{RUN}-s{n}" for n in range(3)]
IMAGES = JOURNAL + SNAPSHOT
SIZE = 16 * MiB
POLICY = f"""\
tenant: water
protection:
  block:
    - name: runbook-journal
      pool: rbd
      namespace: water
      images: ["rb-{RUN}-j*"]
      same_city: {{mode: journal, rpo_target: 10s}}
    - name: runbook-snapshot
      pool: rbd
      namespace: water
      images: ["rb-{RUN}-s*"]
      same_city: {{mode: snapshot, interval: 1m, rpo_target: 2m}}
"""


def checksums(site: SiteRecord) -> dict[str, str]:
    return checksums_of(site, IMAGES)


@pytest.fixture(scope="module")
def mirrored(lab: LabDescription, tmp_path_factory: pytest.TempPathFactory) -> None:
    """The images on a, mirrored to b by the daemons under a water policy every site
    holds (the site running a runbook needs the tenant's policy)."""
    with pool(lab.sites["a"], "water") as ioctx:
        for number, name in enumerate(IMAGES):
            rbd.RBD().create(ioctx, name, SIZE, old_format=False)
            with rbd.Image(ioctx, name) as image:
                image.write(random_bytes(number, SIZE), 0)
    # Another tenant's image in the same pool, which stays primary on a: c pulls the pool
    # from one peer, so no switchover of water alone may re-point it.
    create_mirrored_image(lab.sites["a"], f"rb-{RUN}-bystander", MiB, "snapshot")
    directory = tmp_path_factory.mktemp("runbook-policy")
    for site in ("a", "b", "c"):
        applied = apply_policy_at(lab, directory, site)
        assert applied.returncode == 0, applied.stderr
    expected = checksums(lab.sites["a"])
    eventually(lambda: all(mirroring_enabled(lab.sites["a"], name) for name in IMAGES), 120,
               "drd enabled mirroring of every image")
    take_mirror_snapshots(lab.sites["a"], SNAPSHOT)
    for name in IMAGES:
        wait_for_checksum(lab.sites["b"], name, expected[name], timeout=180,
                          namespace="water")


def apply_policy_at(lab: LabDescription, directory: Path, site: str) -> Any:
    path = directory / "water.yaml"
    path.write_text(POLICY)
    return drd(lab, "policy", "apply", str(path), site=site)


def switch(lab: LabDescription, source: str, target: str, *args: str) -> Any:
    return drd(lab, "switchover", "--tenant", "water", "--from", source, "--to", target,
               "--json", *args, site=target)


def test_a_switchover_by_the_daemon_keeps_every_byte_and_proves_replication_back(
        lab: LabDescription, mirrored: None) -> None:
    before = checksums(lab.sites["a"])
    started = switch(lab, "a", "b", "--no-wait")
    assert started.returncode == 0, started.stderr + started.stdout
    # Waited for here, not by the CLI: a run slower than the CLI's patience on a busy
    # machine still ends, and the steps say where the time went.
    view = wait_ended(lab, "b", json.loads(started.stdout)["id"], timeout=600)
    print("\n" + steps_told(view))
    assert view["state"] == "succeeded", steps_told(view)
    assert checksums(lab.sites["b"]) == before  # RPO 0
    assert all(is_primary(lab.sites["b"], name) for name in IMAGES)
    assert not any(is_primary(lab.sites["a"], name) for name in IMAGES)
    report = view["report"]
    assert report["unprotected_seconds"] >= 0 and report["rto_seconds"] > 0
    proof = next(s for s in view["steps"] if s["name"] == "replication-to-source")
    assert proof["state"] == "succeeded"
    assert_c_follows_a(view, "b")
    # b writes; the write reaches a, the old primary, by replication.
    write(lab.sites["b"], JOURNAL[0], 0, random_bytes(99, MiB), "water")
    wait_for_checksum(lab.sites["a"], JOURNAL[0],
                      image_sha256(lab.sites["b"], JOURNAL[0], "water"), namespace="water")
    audit = api(lab, "b", "/v1/audit")["entries"]
    assert any(e["action"] == "runbook.run" and e["target"] == f"run {view['id']}"
               for e in audit)


def assert_c_follows_a(view: dict[str, Any], target: str) -> None:
    """The bystander stays primary on a, so c, which pulls the pool from a, is never
    re-pointed to b, and the run says why (the step failed; the run went on). A move
    back to a finds c following a, its copies repaired where the round trip left them
    split-brained (journal mode does)."""
    follow = next(s for s in view["steps"] if s["name"] == "remote-follows-target")
    told = "\n".join([follow["error"] or "", *follow["output"]])
    if target == "b":
        assert follow["state"] == "failed", told
        assert "Ceph Pacific takes a single rx peer per pool" in follow["error"], told
    else:
        assert follow["state"] == "succeeded", told
        assert "c already pulls pool rbd from a" in told, told


def kill_during(lab: LabDescription, site: str, run_id: int, step: str) -> str | None:
    """SIGKILL `site`'s daemon once `step` has started (or, if it went by, whatever runs
    then); return the step the journal shows as interrupted, if any."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        view = api(lab, site, f"/v1/runs/{run_id}")
        states = {s["name"]: s["state"] for s in view["steps"]}
        if states.get(step) in ("running", "succeeded") or view["state"] != "running":
            break
        time.sleep(0.02)
    kill(pids(lab.dir, site, {DaemonRole.DRD}))
    restart_dead(lab)
    wait_answers(lab, site)
    view = api(lab, site, f"/v1/runs/{run_id}")
    running = [s["name"] for s in view["steps"] if s["state"] in ("running", "cancelled")]
    return running[0] if running else None


def test_a_daemon_killed_mid_switchover_resumes_the_run_and_doubles_nothing(
        lab: LabDescription, mirrored: None) -> None:
    """Three switchovers back and forth, each killed at a different step."""
    interrupted: list[str | None] = []
    source = "a" if all(is_primary(lab.sites["a"], name) for name in IMAGES) else "b"
    for number, step in enumerate(("demote-source", "promote-target",
                                   "replication-to-source")):
        target = "b" if source == "a" else "a"
        if not all(is_primary(lab.sites[source], name) for name in IMAGES):
            pytest.fail(f"the images are not primary on {source} before move {number}")
        write(lab.sites[source], SNAPSHOT[0], MiB, random_bytes(200 + number, MiB), "water")
        write(lab.sites[source], JOURNAL[1], MiB, random_bytes(300 + number, MiB), "water")
        before = checksums(lab.sites[source])
        started = switch(lab, source, target, "--no-wait")
        assert started.returncode == 0, started.stderr
        run_id = json.loads(started.stdout)["id"]
        interrupted.append(kill_during(lab, target, run_id, step))
        resumed = drd(lab, "runbook", "resume", str(run_id), "--json", "--no-wait",
                      site=target)
        assert resumed.returncode == 0, resumed.stderr
        view = wait_ended(lab, target, run_id)
        assert view["state"] == "succeeded", steps_told(view)
        assert checksums(lab.sites[target]) == before, f"move {number} lost data"
        assert all(is_primary(lab.sites[target], name) for name in IMAGES)
        assert not any(is_primary(lab.sites[source], name) for name in IMAGES)
        for step_view in view["steps"]:
            # Each step ended succeeded exactly once; an interrupted one shows its
            # earlier attempt too, and nothing ran after the run had succeeded.
            if step_view["name"] != "remote-follows-target":  # checked below
                assert step_view["state"] == "succeeded", step_view
        assert_c_follows_a(view, target)
        source = target
    assert len({step for step in interrupted if step is not None}) >= 2, interrupted


def test_a_runbook_with_an_invalid_step_is_refused_before_anything_runs(
        lab: LabDescription, tmp_path: Path) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text("""\
name: broken
source: a
target: b
groups:
  - name: only
    steps:
      - {name: demote, type: rbd_demote, params: {site: source}}
      - {name: jump, type: rbd_teleport, params: {site: target}}
""")
    site_dir = lab.dir / "b" / "drd" / "runbooks"
    (site_dir / "broken.yaml").write_text(broken.read_text())
    try:
        os.kill(pids(lab.dir, "b", {DaemonRole.DRD})[0], signal.SIGHUP)
        eventually(lambda: any("rbd_teleport" in p for p in
                               api(lab, "b", "/v1/runbooks")["problems"]), 30,
                   "the daemon refused the runbook")
        listed = api(lab, "b", "/v1/runbooks")
        assert "broken" not in {b["name"] for b in listed["runbooks"]}
        assert any("broken.yaml:8: groups[0].steps[1].type: unknown type 'rbd_teleport'"
                   in p for p in listed["problems"])
        before = len(api(lab, "b", "/v1/runs?limit=500")["runs"])
        refused = drd(lab, "runbook", "run", "broken", site="b")
        assert refused.returncode != 0 and "no runbook 'broken'" in refused.stderr
        assert len(api(lab, "b", "/v1/runs?limit=500")["runs"]) == before
    finally:
        (site_dir / "broken.yaml").unlink()
        os.kill(pids(lab.dir, "b", {DaemonRole.DRD})[0], signal.SIGHUP)
