"""The restic adapter's queries that read a repository: its snapshots, what they store,
and the objects a restore test verifies against (a snapshot, a tree, the index).

A mixin of `drd.backup.restic.Restic`, which runs each command: argv from restic_argv,
output read by restic_messages and restic_objects, and any failure raised as
ResticError by the adapter's `_output`. Every one of them takes restic's shared lock,
as `dump` does: a prune (another site's drd sharing the repository) then cannot remove
an index or pack between two of them.
"""

from abc import ABC, abstractmethod
from datetime import timedelta
from typing import Protocol

from drd.backup import restic_argv as argv
from drd.backup.restic_messages import (
    RawDataStats,
    Snapshot,
    parse_ids,
    parse_raw_data_stats,
    parse_snapshots,
)
from drd.backup.restic_objects import (
    FileNode,
    SnapshotObject,
    parse_file_node,
    parse_index_lengths,
    parse_snapshot_object,
)


class _Located(Protocol):
    @property
    def url(self) -> str: ...


class ResticReads(ABC):
    """`restic snapshots`, `stats`, `cat snapshot|blob|index` and `list index`."""

    repository: _Located
    retry_lock: timedelta

    @abstractmethod
    async def _output(self, action: str, args: list[str]) -> str:
        """restic's stdout; ResticError unless it succeeded."""

    async def snapshots(self, selection: argv.SnapshotFilter = argv.ALL_SNAPSHOTS
                        ) -> list[Snapshot]:
        return parse_snapshots(await self._output(
            "snapshots", argv.snapshots(self.repository.url, selection)))

    async def stats_raw_data(self, selection: argv.SnapshotFilter = argv.ALL_SNAPSHOTS
                             ) -> RawDataStats:
        """Bytes the repository stores for `selection`, after dedup and compression."""
        return parse_raw_data_stats(await self._output("stats", argv.stats_raw_data(
            self.repository.url, selection, retry_lock=self.retry_lock)))

    async def snapshot_object(self, snapshot_id: str) -> SnapshotObject:
        """The snapshot with this full ID: its root tree, paths and host."""
        return parse_snapshot_object(await self._output("cat snapshot", argv.cat_snapshot(
            self.repository.url, snapshot_id, retry_lock=self.retry_lock)))

    async def file_node(self, tree_id: str, name: str) -> FileNode:
        """The file `name` in the tree `tree_id`: its size and data blob IDs in order;
        ResticOutputError if the tree holds no such file."""
        text = await self._output("cat blob", argv.cat_tree(
            self.repository.url, tree_id, retry_lock=self.retry_lock))
        return parse_file_node(text, name)

    async def index_ids(self) -> list[str]:
        """The IDs of the repository's index files."""
        return parse_ids(await self._output("list index", argv.list_index(
            self.repository.url, retry_lock=self.retry_lock)))

    async def index_lengths(self, index_id: str) -> dict[str, int]:
        """The plaintext length of each data blob one index file lists, by blob ID."""
        return parse_index_lengths(await self._output("cat index", argv.cat_index(
            self.repository.url, index_id, retry_lock=self.retry_lock)))
