"""The site's backup actions against a fake at the restic Protocol boundary: how jobs
admitted together prepare the repository they share."""

import asyncio
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from drd.api.metrics import DaemonMetrics
from drd.backup.actions import SiteBackupActions
from drd.backup.ceph_access import CephAccess
from drd.backup.job_run import JobFailed
from drd.backup.restic_argv import ALL_SNAPSHOTS, SnapshotFilter
from drd.backup.restic_locks import StaleLockReport, UnlockPlan
from drd.backup.restic_messages import Snapshot
from drd.backup.restic_outcome import RepositoryState
from drd.backup.service import ImageSource, TenantBackup
from drd.domain.backup_policy import BackupPolicy
from drd.domain.replication_plan import ImageRef
from drd.state import StateStore

REPOSITORY = "/srv/restic/shared"
POLICY = BackupPolicy.model_validate({
    "sources": [{"name": "disks", "pool": "rbd", "images": ["disk-*"]}],
    "schedule": {"cron": "0 3 * * *"}, "password_file": "/etc/drd/shared.password",
    "restore_test": {"schedule": {"cron": "0 5 * * 6"}}})


class InitialisingRestic:
    """A repository that does not exist until the first ensure_repository creates it,
    which takes a while: long enough for a second job to come along meanwhile."""

    def __init__(self) -> None:
        self.exists = False
        self.ensured: list[RepositoryState] = []
        self.at_once = 0
        self.most_at_once = 0

    async def ensure_repository(self, initialise: bool) -> RepositoryState:
        self.at_once += 1
        self.most_at_once = max(self.most_at_once, self.at_once)
        try:
            await asyncio.sleep(0.05)  # `restic cat config`, then `restic init`
            state = RepositoryState.EXISTED if self.exists else RepositoryState.INITIALISED
            self.exists = True
            self.ensured.append(state)
            return state
        finally:
            self.at_once -= 1

    async def remove_stale_locks(self, is_holder_alive: Callable[[int], bool]
                                 ) -> StaleLockReport:
        return StaleLockReport(UnlockPlan(False, "no locks", ()), (), None)

    async def snapshots(self, selection: SnapshotFilter = ALL_SNAPSHOTS) -> list[Snapshot]:
        return []

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"these jobs must not call restic's {name}")


@pytest.fixture
def store(tmp_path: Path) -> Iterator[StateStore]:
    with StateStore.initialise(tmp_path / "state", "a") as opened:
        yield opened


async def test_jobs_admitted_together_prepare_their_shared_repository_once_one_at_a_time(
        store: StateStore, tmp_path: Path) -> None:
    # Two concurrent `restic init`s both exit 0 and leave a repository restic cannot
    # open: the second job must wait for the first's preparation, then find it done.
    restic = InitialisingRestic()
    actions = SiteBackupActions(store=store, ceph=CephAccess(tmp_path / "ceph.conf", "drd"),
                                metrics=DaemonMetrics("a", "production", "test"))
    plans = [TenantBackup(tenant, POLICY, REPOSITORY, restic,
                          (ImageSource("disks", ImageRef("rbd", "", f"disk-{tenant}")),))
             for tenant in ("water", "transport")]
    results = await asyncio.gather(*(actions.restore_test(plan) for plan in plans),
                                   return_exceptions=True)
    assert restic.ensured == [RepositoryState.INITIALISED]
    assert restic.most_at_once == 1
    # Nothing was ever backed up, so each restore test fails, after the preparation.
    assert all(isinstance(result, JobFailed) and "no snapshot of source disks" in
               result.reason for result in results), results
