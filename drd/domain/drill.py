"""A drill's names, marks and judgements. Pure.

A drill clones, at a replica site, a point in time of every image in scope that drd
fixed on the source with a user snapshot, verifies each clone against that snapshot on
the source, and removes the clones and snapshots again. Everything a drill leaves on a
cluster is named by its run id, so a run finds its own leftovers and never another's:

- the snapshot `drd-drill-run<id>` of each source image (and, in journal mode, the
  snapshot `drd-drill-run<id>-end` taken right after it; see `compare_sectors`);
- the clone `<tenant>-<image>-run<id>` in the namespace `drd-drill` of the image's pool
  on the replica, with image metadata saying what it is a clone of.
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from drd.domain.rbd_snapshot_codec import (
    MIRROR_NON_PRIMARY,
    MIRROR_NON_PRIMARY_DEMOTED,
    NAMESPACE_USER,
    SnapshotInfo,
)
from drd.domain.replication_plan import ImageRef

DRILL_NAMESPACE = "drd-drill"
SECTOR = 512  # the smallest write a block device takes
BLOCK = 4096
MARK_PREFIX = "drd.drill."
_RUN, _TENANT, _SOURCE_SITE, _SOURCE, _SNAPSHOT, _WINDOW_END = (
    f"{MARK_PREFIX}{key}" for key in ("run", "tenant", "source_site", "source", "snapshot",
                                      "window_end"))


def drill_snapshot(run_id: int) -> str:
    """The user snapshot that fixes the drill's point in time on each source image."""
    return f"drd-drill-run{run_id}"


def window_end_snapshot(run_id: int) -> str:
    """Taken right after `drill_snapshot` on a journal-mode source image."""
    return f"{drill_snapshot(run_id)}-end"


def run_snapshots(run_id: int) -> tuple[str, str]:
    return drill_snapshot(run_id), window_end_snapshot(run_id)


def clone_ref(tenant: str, source: ImageRef, run_id: int) -> ImageRef:
    """Where the clone of `source` goes: the drill namespace of the same pool."""
    return ImageRef(source.pool, DRILL_NAMESPACE, f"{tenant}-{source.name}-run{run_id}")


@dataclass(frozen=True)
class DrillImage:
    tenant: str
    source: ImageRef
    clone: ImageRef


def plan_clones(images: Sequence[tuple[str, ImageRef]], run_id: int
                ) -> tuple[list[DrillImage], list[str]]:
    """A clone for each (tenant, image); and why an image gets none: its clone's name
    would be another's (tenant `a` with image `b-c`, tenant `a-b` with image `c`)."""
    by_clone: dict[ImageRef, list[tuple[str, ImageRef]]] = {}
    for tenant, source in images:
        by_clone.setdefault(clone_ref(tenant, source, run_id), []).append((tenant, source))
    planned, refused = [], []
    for clone, owners in sorted(by_clone.items()):
        if len(owners) == 1:
            planned.append(DrillImage(owners[0][0], owners[0][1], clone))
            continue
        names = ", ".join(f"{tenant}:{source}" for tenant, source in owners)
        refused += [f"{source}: its clone would be named {clone}, as would that of "
                    f"another image ({names}); rename one of them to drill it"
                    for _, source in owners]
    return planned, refused


@dataclass(frozen=True)
class CloneMarks:
    """What a clone is, kept in its image metadata so that any later step finds it."""

    run_id: int
    tenant: str
    source_site: str
    source: ImageRef
    snapshot: str
    window_end: str | None  # journal mode: the snapshot closing the replay window

    def metadata(self) -> dict[str, str]:
        found = {_RUN: str(self.run_id), _TENANT: self.tenant, _SOURCE_SITE: self.source_site,
                 _SOURCE: f"{self.source.pool}/{self.source.namespace}/{self.source.name}",
                 _SNAPSHOT: self.snapshot}
        if self.window_end is not None:
            found[_WINDOW_END] = self.window_end
        return found


def read_marks(metadata: Mapping[str, str]) -> CloneMarks | None:
    """The marks of a drill clone; None for an image that carries none or broken ones."""
    try:
        pool, namespace, name = metadata[_SOURCE].split("/", 2)
        return CloneMarks(int(metadata[_RUN]), metadata[_TENANT], metadata[_SOURCE_SITE],
                          ImageRef(pool, namespace, name), metadata[_SNAPSHOT],
                          metadata.get(_WINDOW_END))
    except (KeyError, ValueError):
        return None


def arrived(snapshots: Sequence[SnapshotInfo], name: str, source_snap_id: int,
            snapshot_mode: bool, then: str | None = None) -> bool:
    """Whether the user snapshot `name` (id `source_snap_id` on the source) is on the
    replica with all its data.

    Journal replay creates the snapshot in order, after the writes before it; `then`,
    the snapshot the source took right after it, must be there too, so that the replay
    has moved past it (on the lab, a clone made as soon as the snapshot appeared failed
    once in some 1,600 with "image not found"). Snapshot mode creates the user snapshots
    between two mirror snapshots before it copies their data, so the data is there only
    once a later mirror snapshot is complete here.
    """
    users = {s.name for s in snapshots if s.namespace_type == NAMESPACE_USER}
    if name not in users:
        return False
    if not snapshot_mode:
        return then is None or then in users
    return any(s.mirror is not None and s.mirror.complete
               and s.mirror.state in (MIRROR_NON_PRIMARY, MIRROR_NON_PRIMARY_DEMOTED)
               and s.mirror.primary_snap_id > source_snap_id for s in snapshots)


@dataclass(frozen=True)
class SectorCheck:
    """How a chunk of a clone compares with the source: sectors holding the source's
    data from just after the snapshot, and offsets of sectors holding neither."""

    window_sectors: int
    bad_offsets: tuple[int, ...]


def compare_sectors(clone: bytes, start: bytes, end: bytes | None, offset: int
                    ) -> SectorCheck:
    """Check a chunk of a clone sector by sector against the source at the drill
    snapshot (`start`) and, in journal mode, at the window's end (`end`).

    Ceph 16.2.15's journal replay applies the writes that reach the journal between a
    snapshot's start and finish events (the writes the snapshot held back) before it
    creates the snapshot on the replica; measured here: one to a few dozen 4 KiB writes
    under load. So a journal-mode replica's snapshot lies between the source's drill
    snapshot and a snapshot taken right after it. A sector nobody wrote in between is
    the same in both and must match exactly; a sector written in between may hold
    either value, both of which the source really held.
    """
    bad: list[int] = []
    window = 0
    for block in range(0, len(clone), BLOCK):
        ours = clone[block:block + BLOCK]
        if ours == start[block:block + BLOCK]:
            continue
        for sector in range(block, min(block + BLOCK, len(clone)), SECTOR):
            piece = clone[sector:sector + SECTOR]
            if piece == start[sector:sector + SECTOR]:
                continue
            if end is not None and piece == end[sector:sector + SECTOR]:
                window += 1
            else:
                bad.append(offset + sector)
    return SectorCheck(window, tuple(bad))


@dataclass(frozen=True)
class Comparison:
    """A clone read whole against its source snapshot."""

    size: int
    source_size: int
    sha256: str
    source_sha256: str
    window_sectors: int
    bad_sectors: int
    first_bad: int | None

    @property
    def verified(self) -> bool:
        return self.size == self.source_size and self.bad_sectors == 0

    def verdict(self, clone: ImageRef, source: str) -> str:
        """One line for the operator; `source` names the snapshot compared with."""
        if self.size != self.source_size:
            return (f"{clone}: FAILED: {self.size} bytes, but {source} has "
                    f"{self.source_size}")
        if self.bad_sectors:
            return (f"{clone}: FAILED: {self.bad_sectors} sectors of 512 bytes differ from "
                    f"{source}, the first at byte {self.first_bad}; sha256 "
                    f"{self.sha256[:16]}, {source} {self.source_sha256[:16]}")
        if self.window_sectors == 0:
            return f"{clone}: verified, sha256 {self.sha256[:16]} equals {source}'s"
        return (f"{clone}: verified, equal to {source} but for {self.window_sectors} "
                f"sectors that hold what the source wrote there right after it (journal "
                f"replay applies those first); sha256 {self.sha256[:16]}")


def seconds_between(start: datetime, end: datetime) -> float:
    return round((end - start).total_seconds(), 3)
