"""What the backup service and the scheduler ask of restic, as a Protocol.

`drd.backup.restic.Restic` is the real thing; unit tests of the services pass a fake
here and nowhere else. Everything named in it is pure (argv values, results, parsed
messages), so a test needs no restic to build one.
"""

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Protocol

from drd.backup.restic_argv import ALL_SNAPSHOTS, KeepRules, SnapshotFilter
from drd.backup.restic_locks import StaleLockReport
from drd.backup.restic_messages import BackupStatus, RawDataStats, Snapshot
from drd.backup.restic_objects import FileNode, SnapshotObject
from drd.backup.restic_outcome import (
    BackupResult,
    CheckResult,
    ForgetResult,
    Outcome,
    RepositoryState,
    RestoreResult,
)

ProgressCallback = Callable[[BackupStatus], None]


class ResticRepositoryPort(Protocol):
    """One repository. Jobs return results that carry their outcome; queries raise
    `drd.backup.restic.ResticError`. Cancelling any call stops its restic."""

    async def ensure_repository(self, initialise: bool) -> RepositoryState: ...

    async def backup_from_command(
            self, command: Sequence[str], *, stdin_filename: str, host: str,
            tags: Sequence[str] = (), limit_upload_kib: int | None = None,
            time: datetime | None = None, progress: ProgressCallback | None = None,
            deadline: float | None = None) -> BackupResult: ...

    async def backup_paths(
            self, paths: Sequence[str], *, host: str, tags: Sequence[str] = (),
            limit_upload_kib: int | None = None, progress: ProgressCallback | None = None,
            deadline: float | None = None) -> BackupResult: ...

    async def snapshots(self, selection: SnapshotFilter = ALL_SNAPSHOTS
                        ) -> list[Snapshot]: ...

    async def forget(self, rules: KeepRules, selection: SnapshotFilter = ALL_SNAPSHOTS, *,
                     group_by: Sequence[str] = ..., dry_run: bool = False,
                     deadline: float = ...) -> ForgetResult: ...

    async def forget_snapshots(self, snapshot_ids: Sequence[str], *,
                               deadline: float = ...) -> Outcome: ...

    async def prune(self, *, deadline: float = ...) -> Outcome: ...

    async def check(self, read_data_subset: str | None = None, *,
                    deadline: float = ...) -> CheckResult: ...

    async def dump_to(self, snapshot: str, path: str, consumer: Sequence[str], *,
                      selection: SnapshotFilter = ALL_SNAPSHOTS,
                      deadline: float | None = None) -> RestoreResult: ...

    async def stats_raw_data(self, selection: SnapshotFilter = ALL_SNAPSHOTS
                             ) -> RawDataStats: ...

    async def remove_stale_locks(self, is_holder_alive: Callable[[int], bool]
                                 ) -> StaleLockReport: ...

    # What a restore test verifies against: the snapshot's file node and the index.
    # These raise ResticError, and ResticOutputError for output drd cannot read.

    async def snapshot_object(self, snapshot_id: str) -> SnapshotObject: ...

    async def file_node(self, tree_id: str, name: str) -> FileNode: ...

    async def index_ids(self) -> list[str]: ...

    async def index_lengths(self, index_id: str) -> dict[str, int]: ...
