"""The RBD steps of the runbook library on the real lab: a switchover of a tenant with
journal- and snapshot-mode images from a to b and back, step by step in the order of
runbooks/switchover.yaml, proven by sha256; steps repeated do nothing; and the
unplanned path: a guarded forced promote that fences a writer, and a split-brain
resync that waits for the operator's confirmation of the winner.

The steps run as a daemon on site b would run them (ConfiguredSites from b's config),
in a namespace of this test's own that no daemon's policy selects.
"""

import asyncio
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import rbd
import yaml

from drd.ceph.cluster import connect
from drd.ceph.rbd_mirror_setup import ensure_namespace
from drd.config.site_loader import load_site_config
from drd.domain.runbook import Runbook, RunbookKind, RunTarget
from drd.domain.runbook_steps import AnyStep, OnFailure
from drd.domain.tenant_policy import TenantPolicy
from drd.lab.description import DaemonRole, LabDescription, SiteRecord
from drd.lab.processes import is_running
from drd.runbooks.library import step_executors
from drd.runbooks.sites import ConfiguredSites
from drd.runbooks.step_api import StepContext, StepExecutor, StepFailed
from tests.integration.conftest import run_drd
from tests.integration.rbd_images import (
    JOURNAL_FEATURES,
    MODES,
    MiB,
    create_mirrored_image,
    demote,
    image_sha256,
    pool,
    promote,
    random_bytes,
    wait_for_checksum,
    wait_journal_peers,
    write,
)

RUN = uuid.uuid4().hex[:6]
WATER = f"steps-{RUN}"
SEWAGE = f"steps-sb-{RUN}"
JOURNAL = [f"db-{n:02d}" for n in range(10)]
SNAPSHOT = [f"vol-{n:02d}" for n in range(10)]
SIZE = 8 * MiB
WRITTEN = 2 * MiB
SWITCHOVER = Path(__file__).parents[2] / "runbooks" / "switchover.yaml"
EXECUTORS = step_executors()
FAILOVER = RunbookKind.FAILOVER
# Each leg took 6-12 s here; a leg still running after this long is stuck, and says where.
LEG_SECONDS = 240


def _policy(tenant: str, namespace: str) -> TenantPolicy:
    return TenantPolicy.model_validate({"tenant": tenant, "protection": {"block": [
        {"name": "databases", "pool": "rbd", "namespace": namespace, "images": ["db-*"],
         "same_city": {"mode": "journal", "rpo_target": "30s"}},
        {"name": "volumes", "pool": "rbd", "namespace": namespace, "images": ["vol-*"],
         "same_city": {"mode": "snapshot", "interval": "1m", "rpo_target": "2m"}}]}})


POLICIES = {"water": _policy("water", WATER), "sewage": _policy("sewage", SEWAGE)}


def _mirrored_images(lab: LabDescription, namespace: str, journal: list[str],
                     snapshot: list[str], seed: int) -> dict[str, str]:
    """Create, mirror and fill the images on a; their sha256 once b holds them."""
    for site in lab.sites.values():
        with connect(site.conf) as cluster:
            ensure_namespace(cluster, site.rbd_pool, namespace)
    a, b = lab.sites["a"], lab.sites["b"]
    with pool(a, namespace) as ioctx:
        for name in journal + snapshot:
            mode = "journal" if name in journal else "snapshot"
            rbd.RBD().create(ioctx, name, SIZE, old_format=False,
                             features=JOURNAL_FEATURES if mode == "journal" else None)
            with rbd.Image(ioctx, name) as image:
                image.mirror_image_enable(MODES[mode])
    _wait_journal_peers(lab, journal, namespace)
    expected = {}
    for index, name in enumerate(journal + snapshot):
        data = random_bytes(seed + index, WRITTEN)
        write(a, name, 0, data, namespace=namespace)
        if name in snapshot:
            with pool(a, namespace) as ioctx, rbd.Image(ioctx, name) as image:
                image.mirror_image_create_snapshot()
        expected[name] = image_sha256(a, name, namespace)
    for name, digest in expected.items():
        wait_for_checksum(b, name, digest, namespace=namespace)
    return expected


def _wait_journal_peers(lab: LabDescription, names: list[str], namespace: str) -> None:
    """Wait until every peer replays the new journal images. rbd-mirror 16.2.15 can
    crash while it bootstraps a batch of them, written to or not (seen here: b's
    rbd-mirror, `~ImageWatcher`: FAILED ceph_assert(m_pending_ops == 0), with 20 new
    images and no write yet); the lab then restarts it and the wait is repeated once."""
    try:
        wait_journal_peers(lab.sites["a"], names, namespace=namespace)
    except AssertionError:
        dead = [p.entity for _, p in lab.all_processes()
                if p.role is DaemonRole.RBD_MIRROR and not is_running(p)]
        if not dead:
            raise
        print(f"\nrbd-mirror died while bootstrapping journal images: {dead}; restarting")
        restarted = run_drd("lab", "up", "--dir", str(lab.dir), "--block", str(lab.block))
        assert restarted.returncode == 0, restarted.stderr
        wait_journal_peers(lab.sites["a"], names, namespace=namespace)


@pytest.fixture(scope="module")
def water(lab: LabDescription) -> dict[str, str]:
    return _mirrored_images(lab, WATER, JOURNAL, SNAPSHOT, seed=500)


@pytest.fixture(scope="module")
def sewage(lab: LabDescription) -> dict[str, str]:
    return _mirrored_images(lab, SEWAGE, ["db-00"], ["vol-00"], seed=600)


@pytest.fixture(scope="module")
def bystanders(lab: LabDescription) -> None:
    """Other tenants' images in the same pool, as a shared pool holds them: one primary
    on a, so no move of water alone may re-point c (it pulls the pool from a); one
    moved to b, whose copy on c, pulling from a, reports "remote image is not primary"
    for as long as it stays there: a copy no move of water may wait for."""
    a, b, c = lab.sites["a"], lab.sites["b"], lab.sites["c"]
    create_mirrored_image(a, f"steps-stays-{RUN}", MiB, "snapshot")
    moved = f"steps-moved-{RUN}"
    create_mirrored_image(a, moved, MiB, "snapshot")
    digest = image_sha256(a, moved)
    for site in (b, c):
        wait_for_checksum(site, moved, digest)
    demote(a, moved)
    promote(b, moved)


@pytest.fixture
def sites(lab: LabDescription) -> Iterator[ConfiguredSites]:
    config = lab.sites["b"].drd_config
    assert config is not None
    access = ConfiguredSites(load_site_config(config))
    yield access
    access.close()


def _context(sites: ConfiguredSites, source: str, target: str, tenant: str = "water", *,
             kind: RunbookKind = RunbookKind.SWITCHOVER, confirmed: str | None = None,
             facts: dict[str, Any] | None = None) -> StepContext:
    return StepContext(run_id=1, kind=kind, target=RunTarget(source, target, (tenant,)),
                       policies=POLICIES, sites=sites, facts=facts or {},
                       now=lambda: datetime.now(UTC), confirmed_winner=confirmed)


def _switchover() -> Runbook:
    return Runbook.model_validate(yaml.safe_load(SWITCHOVER.read_text()))


def _step(step_type: str, **params: Any) -> AnyStep:
    runbook = Runbook.model_validate({"name": "one", "source": "a", "target": "b", "groups": [
        {"name": "g", "steps": [{"name": "s", "type": step_type, "params": params}]}]})
    return runbook.steps()[0][1]


def _executor(step: AnyStep) -> StepExecutor:
    return EXECUTORS[step.type]


async def _run(step: AnyStep, context: StepContext) -> StepContext:
    async with asyncio.timeout(step.timeout.total_seconds()):
        await _executor(step).run(step, context)
    return context


async def _drive(sites: ConfiguredSites, source: str, target: str
                 ) -> tuple[dict[str, dict[str, Any]], dict[str, float], dict[str, list[str]]]:
    """Plan, then run the switchover runbook's steps group by group (a group's steps at
    once, as the engine runs them); each step's facts, seconds and output lines."""
    facts: dict[str, dict[str, Any]] = {}
    seconds: dict[str, float] = {}
    lines: dict[str, list[str]] = {}
    runbook = _switchover()
    for _, step in runbook.steps():
        lines[f"plan {step.name}"] = await _executor(step).plan(
            step, _context(sites, source, target))
    for group in runbook.groups:
        contexts = [_context(sites, source, target, facts=dict(facts)) for _ in group.steps]

        async def timed(step: AnyStep, context: StepContext) -> float:
            started = time.monotonic()
            try:
                await _run(step, context)
            except StepFailed as error:  # as the engine does: noted, and the run goes on
                if step.on_failure is not OnFailure.CONTINUE:
                    raise
                context.output.facts["failed"] = str(error)
            return time.monotonic() - started

        try:
            took = await asyncio.gather(*(timed(s, c) for s, c in zip(group.steps, contexts,
                                                                        strict=True)))
        except asyncio.CancelledError:  # the leg's deadline: say where it stood
            print(f"\n{source}->{target} stopped in group {group.name}; so far: "
                  + ", ".join(f"{name} {spent:.2f} s" for name, spent in seconds.items()))
            for step, context in zip(group.steps, contexts, strict=True):
                print("\n".join(f"{step.name}: {line}" for line in context.output.lines))
            raise
        for step, context, spent in zip(group.steps, contexts, took, strict=True):
            facts[step.name] = context.output.facts
            seconds[step.name] = spent
            lines[step.name] = context.output.lines
    return facts, seconds, lines


def _assert_c_follows(facts: dict[str, dict[str, Any]], primary: str) -> None:
    """c follows the new primary, proven by the probe; or, where another test's image of
    the pool stays primary elsewhere in the shared lab, it was left alone, saying why."""
    follow = facts["remote-follows-target"]
    if "failed" in follow:
        reasons = ["Ceph Pacific takes a single rx peer per pool"]
        if primary == "a":  # not re-pointed, c's journal copies split by the round trip
            reasons.append("still cannot link")  # and not cured: see the closing notes
        assert any(reason in follow["failed"] for reason in reasons), follow
    else:
        assert follow["remote_protected"] is True and "c" in follow["probe_seconds"], follow


def _primary(site: SiteRecord, namespace: str, name: str) -> bool:
    with pool(site, namespace) as ioctx, rbd.Image(ioctx, name, read_only=True) as image:
        return bool(image.mirror_image_get_info()["primary"])


def _assert_roles(lab: LabDescription, namespace: str, names: list[str], primary: str,
                  secondary: str) -> None:
    for name in names:
        assert _primary(lab.sites[primary], namespace, name), f"{name} primary on {primary}"
        assert not _primary(lab.sites[secondary], namespace, name), \
            f"{name} non-primary on {secondary}"


async def test_switchover_of_twenty_images_to_b_and_back_keeps_every_byte(
        lab: LabDescription, water: dict[str, str], bystanders: None,
        sites: ConfiguredSites) -> None:
    names = JOURNAL + SNAPSHOT
    a, b = lab.sites["a"], lab.sites["b"]
    assert {name: image_sha256(b, name, WATER) for name in names} == water
    rpo = await _run(_step("rpo_within", site="a"), _context(sites, "a", "b"))
    assert len(rpo.output.facts["rpo"]) == 20, "each image at b, its one destination"

    started = time.monotonic()
    async with asyncio.timeout(LEG_SECONDS):
        facts, seconds, lines = await _drive(sites, "a", "b")
    total = time.monotonic() - started
    print(f"\nswitchover a->b of {len(names)} images: {total:.1f} s; per step: "
          + ", ".join(f"{name} {spent:.2f} s" for name, spent in seconds.items()))
    print("\n".join(f"{step}: {line}" for step, got in lines.items() for line in got))

    assert lines["plan demote-source"][0] == \
        "demote 20 images of water on a: 20 primary"
    _assert_roles(lab, WATER, names, primary="b", secondary="a")
    assert {name: image_sha256(b, name, WATER) for name in names} == water, "RPO 0"
    assert facts["demote-source"]["demoted"] == {"journal": 10, "snapshot": 10}
    assert facts["promote-target"]["promoted"] == {"journal": 10, "snapshot": 10}
    assert "only a run of all tenants moves it" in facts["promote-zone"]["skipped"]
    _assert_c_follows(facts, "b")
    verified = facts["replication-to-source"]
    assert datetime.fromisoformat(verified["protected_at"]) >= \
        datetime.fromisoformat(facts["promote-target"]["writable_at"])
    assert verified["unprotected_seconds"] > 0
    print(f"unprotected window a->b: {verified['unprotected_seconds']} s; "
          f"repairs: {facts['resync-source'].get('repairs')}")

    # Steps repeated after they finished do nothing the second time.
    again = await _run(_step("rbd_demote", site="a"), _context(sites, "a", "b"))
    assert again.output.facts["demoted"] == {"journal": 0, "snapshot": 0}
    assert again.output.facts["already_non_primary"] == 20
    again = await _run(_step("rbd_promote", site="b"), _context(sites, "a", "b"))
    assert again.output.facts["promoted"] == {"journal": 0, "snapshot": 0}
    assert again.output.facts["already_primary"] == 20
    # Repeated after the promotion (a resumed run): b's copies of the demotion
    # snapshots are pruned by now, yet the step finds nothing to wait for.
    again = await _run(_step("wait_in_sync", site="b", primary="a"), _context(sites, "a", "b"))
    assert again.output.facts["already_primary"] == 20
    _assert_roles(lab, WATER, names, primary="b", secondary="a")

    # b, primary now, is within its RPO bounds towards a.
    rpo = await _run(_step("rpo_within", site="b"), _context(sites, "a", "b"))
    print("\n".join(rpo.output.lines[:3]))

    # b takes writes; switching back brings them to a intact.
    changed = {}
    for index, name in enumerate(names):
        write(b, name, WRITTEN, random_bytes(700 + index, MiB), namespace=WATER)
        changed[name] = image_sha256(b, name, WATER)
    snapped = await _run(_step("mirror_snapshot", site="b"), _context(sites, "a", "b"))
    assert sorted(snapped.output.facts["snapshots"]) == \
        [f"rbd/{WATER}/{name}" for name in SNAPSHOT]
    started = time.monotonic()
    c_followed_b = "failed" not in facts["remote-follows-target"]
    async with asyncio.timeout(LEG_SECONDS):
        facts, seconds, lines = await _drive(sites, "b", "a")
    print(f"switchover b->a of {len(names)} images: {time.monotonic() - started:.1f} s; "
          f"per step: " + ", ".join(f"{name} {spent:.2f} s" for name, spent in seconds.items()))
    print("\n".join(f"remote-follows-target: {line}" for line in lines["remote-follows-target"]))
    _assert_roles(lab, WATER, names, primary="a", secondary="b")
    assert {name: image_sha256(a, name, WATER) for name in names} == changed, "RPO 0 back"
    _assert_c_follows(facts, "a")
    if c_followed_b:
        # a's journal still named c's copies from before c followed b: only with those
        # registrations gone could c's journal copies follow a again.
        assert sorted(facts["remote-follows-target"]["stale_registrations_cleared"]["c"]) \
            == [f"rbd/{WATER}/{name}" for name in JOURNAL]
    assert facts["replication-to-source"]["unprotected_seconds"] > 0


_WRITER = """
import sys, rados, rbd, os
cluster = rados.Rados(conffile=sys.argv[1], rados_id="admin"); cluster.connect()
ioctx = cluster.open_ioctx("rbd"); ioctx.set_namespace(sys.argv[2])
image = rbd.Image(ioctx, sys.argv[3])
image.write(b"w" * 4096, 0); image.flush()
print("holding", flush=True)
sys.stdin.readline()
try:
    image.write(b"x" * 4096, 0); image.flush(); print("wrote", flush=True)
except Exception as error:
    print(type(error).__name__, flush=True)
os._exit(0)  # a blocklisted client cannot close its image cleanly
"""


async def test_forced_promote_fences_the_writer_and_resync_waits_for_the_winner(
        lab: LabDescription, sewage: dict[str, str], sites: ConfiguredSites) -> None:
    a, b = lab.sites["a"], lab.sites["b"]
    writer = await asyncio.create_subprocess_exec(
        sys.executable, "-c", _WRITER, str(a.conf), SEWAGE, "db-00",
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE)
    try:
        assert writer.stdout is not None and writer.stdin is not None
        assert (await writer.stdout.readline()).strip() == b"holding"
        forced = await _run(_step("rbd_force_promote", site="b", lost="a"),
                            _context(sites, "a", "b", "sewage", kind=FAILOVER))
        fenced = forced.output.facts["fenced"]
        assert [(entry["user"], entry["images"]) for entry in fenced] == \
            [("client.admin", [f"rbd/{SEWAGE}/db-00 (watch and exclusive lock)"])], fenced
        # The peers' rbd-mirror daemons read a's primaries to replicate them: spared.
        assert all("rbd-mirror" in entry["user"]
                   for entry in forced.output.facts["spared"]), forced.output.facts
        writer.stdin.write(b"go\n")
        await writer.stdin.drain()
        assert (await writer.stdout.readline()).strip() == b"ConnectionShutdown"
    finally:
        if writer.returncode is None:
            writer.kill()
        await writer.wait()
    assert forced.output.facts["promoted"] == {"journal": 1, "snapshot": 1}

    # Both sides are primary. b takes writes; a's copies are demoted: split-brain.
    for name in ("db-00", "vol-00"):
        write(b, name, WRITTEN, random_bytes(800, MiB), namespace=SEWAGE)
    with pool(b, SEWAGE) as ioctx, rbd.Image(ioctx, "vol-00") as image:
        image.mirror_image_create_snapshot()
    winner = {name: image_sha256(b, name, SEWAGE) for name in ("db-00", "vol-00")}
    await _run(_step("rbd_demote", site="a"), _context(sites, "a", "b", "sewage", kind=FAILOVER))

    resync = _step("rbd_resync", site="a", winner="b")
    with pytest.raises(StepFailed, match="--confirm-winner b") as refused:
        await _run(resync, _context(sites, "a", "b", "sewage", kind=FAILOVER))
    assert "split-brain" in str(refused.value)
    assert f"The snapshots say: rbd/{SEWAGE}/vol-00: a: last snapshot as primary" \
        in str(refused.value)
    assert str(refused.value).endswith("of those, b's is the newer")
    print(f"\nrefused: {refused.value}\nforced: {forced.output.lines}")
    with pytest.raises(StepFailed, match="confirmed a as the winner"):
        await _run(resync, _context(sites, "a", "b", "sewage", confirmed="a", kind=FAILOVER))

    started = time.monotonic()
    done = await _run(resync, _context(sites, "a", "b", "sewage", confirmed="b", kind=FAILOVER))
    repairs = done.output.facts["repairs"]
    print(f"\nresync of 2 split-brained images: {time.monotonic() - started:.1f} s; {repairs}")
    assert sorted(r["image"] for r in repairs) == [f"rbd/{SEWAGE}/db-00", f"rbd/{SEWAGE}/vol-00"]
    assert all("replaying_at" in r for r in repairs)
    for name, digest in winner.items():
        wait_for_checksum(a, name, digest, namespace=SEWAGE, timeout=60)

    # Nothing split-brained any more: repeated, the step resyncs nothing.
    again = await _run(resync, _context(sites, "a", "b", "sewage", confirmed="b", kind=FAILOVER))
    assert again.output.facts["resynced"] == 0
    verified = await _run(_step("verify_replication", primary="b", replicas=["a"]),
                          _context(sites, "a", "b", "sewage", kind=FAILOVER))
    assert "protected_at" in verified.output.facts
