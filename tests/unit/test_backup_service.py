"""Which backup jobs a site runs for its tenants, when they are due, and backups on
demand; the jobs' work is faked at the BackupActions boundary, the state store is real."""

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from drd.api.schemas import TenantUsageOut
from drd.backup.job_run import JobOutcome
from drd.backup.scheduler import BackupScheduler
from drd.backup.service import (
    LIMITS,
    BackupService,
    ImageSource,
    PathSource,
    Restored,
    TenantBackup,
)
from drd.domain.backup_jobs import JobKey, JobKind
from drd.domain.replication_plan import ImageRef, MirrorMode, MirrorState, ObservedImage
from drd.domain.tenant_policy import TenantPolicy
from drd.state import RunState, StateStore

NOW = datetime(2026, 11, 22, 6, 0, tzinfo=UTC)
POLICY = {
    "tenant": "water",
    "backup": {
        "sources": [
            {"name": "databases", "pool": "rbd", "namespace": "water", "images": ["db-*"]},
            {"name": "replicas", "pool": "rbd", "namespace": "water", "images": ["ro-*"],
             "from": "remote"},
            {"name": "scada", "paths": ["/srv/water/scada"]},
        ],
        "schedule": {"cron": "0 18 * * *"},
        "password_file": "/etc/drd/restic/water.password",
        "retention": {"keep_daily": 7},
        "prune": {"schedule": {"cron": "0 20 * * 0"}},
    },
}


def image(name: str, state: MirrorState, primary: bool | None) -> ObservedImage:
    mode = None if state is MirrorState.DISABLED else MirrorMode.SNAPSHOT
    return ObservedImage(ImageRef("rbd", "water", name), f"id-{name}", state, mode, primary,
                         None)


IMAGES = [image("db-1", MirrorState.ENABLED, True),
          image("db-2", MirrorState.ENABLED, False),  # a copy: backed up where primary
          image("db-3", MirrorState.DISABLED, None),  # not mirrored: only here
          image("web-1", MirrorState.ENABLED, True),  # no source selects it
          image("ro-1", MirrorState.ENABLED, True)]  # source replicas: from remote


UNUSED_RESTIC: Any = object()  # the fake actions never call restic


class FakeActions:
    def __init__(self) -> None:
        self.backed_up: list[str] = []

    async def backup_image(self, plan: TenantBackup, source: ImageSource,
                           progress: Any) -> JobOutcome:
        self.backed_up.append(source.key)
        return JobOutcome(bytes_added=1024, snapshot_id=f"snap-{len(self.backed_up)}")

    async def backup_files(self, plan: TenantBackup, files: PathSource,
                           progress: Any) -> JobOutcome:
        self.backed_up.append(files.key)
        return JobOutcome(bytes_added=1024, snapshot_id=f"snap-{len(self.backed_up)}")

    async def prune(self, plan: TenantBackup) -> JobOutcome:
        return JobOutcome()

    async def check(self, plan: TenantBackup) -> JobOutcome:
        return JobOutcome()

    async def restore_test(self, plan: TenantBackup) -> JobOutcome:
        return JobOutcome()

    async def restore(self, plan: TenantBackup, source: ImageRef, snapshot: str,
                      target: ImageRef, force: bool) -> Restored:
        raise AssertionError("not restoring here")

    async def usage(self, tenant: str) -> TenantUsageOut:
        raise AssertionError("not metering here")


@pytest.fixture
def store(tmp_path: Path) -> Iterator[StateStore]:
    with StateStore.initialise(tmp_path / "state", "a") as opened:
        yield opened


def service(store: StateStore, actions: FakeActions, *, clock: Any = lambda: NOW,
            remote_site: str | None = None) -> BackupService:
    return BackupService(
        scheduler_for=lambda s: BackupScheduler(store, LIMITS, s.next_due, clock=clock,
                                                poll_seconds=0.05),
        actions=actions, list_images=lambda pool, namespace: IMAGES,
        open_repository=lambda tenant, policy: (f"/srv/restic/{tenant}", UNUSED_RESTIC),
        clock=clock, remote_site=remote_site)


def policies() -> dict[str, TenantPolicy]:
    return {"water": TenantPolicy.model_validate(yaml.safe_load(yaml.safe_dump(POLICY)))}


async def test_each_selected_image_held_here_is_one_backup_job_and_the_rest_say_why(
        store: StateStore) -> None:
    backups = service(store, FakeActions())
    backups.set_policies(policies())
    await backups.refresh()
    plan = backups.state.plans["water"]
    assert [i.key for i in plan.images] == ["databases:rbd/water/db-1",
                                           "databases:rbd/water/db-3"]
    assert plan.not_backed_up == (
        "source replicas: from remote, but the site config names no remote peer with a "
        "ceph_conf to read it from",)
    assert plan.files == (PathSource("scada", ("/srv/water/scada",)),)
    jobs = backups.scheduler.job_keys()
    assert {(j.kind, j.source) for j in jobs} == {
        (JobKind.BACKUP, "databases:rbd/water/db-1"), (JobKind.BACKUP, "databases:rbd/water/db-3"),
        (JobKind.BACKUP, "scada:files"), (JobKind.PRUNE, None)}


async def test_a_source_from_remote_reads_the_remote_sites_copy_of_images_held_here(
        store: StateStore) -> None:
    backups = service(store, FakeActions(), remote_site="c")
    backups.set_policies(policies())
    await backups.refresh()
    plan = backups.state.plans["water"]
    assert plan.not_backed_up == ()
    assert [(i.key, i.read_remote) for i in plan.images] == [
        ("databases:rbd/water/db-1", False), ("databases:rbd/water/db-3", False),
        ("replicas:rbd/water/ro-1", True)]


async def test_a_new_image_is_backed_up_at_once_and_then_on_its_schedule(
        store: StateStore) -> None:
    backups = service(store, FakeActions())
    backups.set_policies(policies())
    await backups.refresh()
    key = JobKey("water", JobKind.BACKUP, "databases:rbd/water/db-1", "/srv/restic/water")
    prune = JobKey("water", JobKind.PRUNE, None, "/srv/restic/water")
    assert backups.next_due(key, None, NOW) == NOW
    assert backups.next_due(key, NOW, NOW) == datetime(2026, 11, 22, 18, 0, tzinfo=UTC)
    # A run missed while the daemon was down is due once, at the first slot after the last.
    last = NOW - timedelta(days=3)
    assert backups.next_due(key, last, NOW) == datetime(2026, 11, 19, 18, 0, tzinfo=UTC)
    assert backups.next_due(prune, None, NOW) == datetime(2026, 11, 22, 20, 0, tzinfo=UTC)


async def test_backups_asked_for_now_run_and_are_recorded(store: StateStore) -> None:
    actions = FakeActions()
    backups = service(store, actions)
    backups.set_policies(policies())
    task = asyncio.create_task(backups.loop())
    try:
        for _ in range(200):  # the three new jobs are due at once: wait for all three
            runs = store.backup_history("water", 10)
            if len(runs) == 3 and all(r.state is not RunState.RUNNING for r in runs):
                break
            await asyncio.sleep(0.05)
        runs = store.backup_history("water", 10)
        assert sorted(r.job.source or "" for r in runs) == ["databases:rbd/water/db-1",
                                                            "databases:rbd/water/db-3",
                                                            "scada:files"]
        assert all(r.state is RunState.SUCCEEDED and r.bytes_added == 1024 for r in runs)
        with pytest.raises(KeyError, match="nothing to back up in source replicas"):
            backups.request_backups("water", "replicas")
        with pytest.raises(KeyError, match="no backup policy"):
            backups.request_backups("transport")
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
