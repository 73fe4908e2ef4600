"""What `radosgw-admin sync status` says, reduced to one line per sync source. Pure.

Pacific prints this command only as text, for people:

          realm 3444... (drd-lab)
      zonegroup 4547... (city)
           zone 47f2... (b)
  metadata sync syncing
                full sync: 0/16 shards
                incremental sync: 16/16 shards
                metadata is caught up with master
      data sync source: ad5e... (a)
                        syncing
                        full sync: 0/16 shards
                        incremental sync: 16/16 shards
                        data is behind on 2 shards
                        behind shards: [3,9]
                        oldest incremental change not applied: 2026-11-22T01:50:35.8+0000 [3]

The JSON-speaking commands (`metadata sync status`, `data sync status`) carry the
markers but not the verdicts, so the overview comes from here.

`radosgw-admin bucket sync status --bucket NAME` prints the same kind of verdict for
one bucket, per source zone:

         bucket :water-docs[ad5e....4194.1])

    source zone 00d0... (c)
  source bucket water-docs:ad5e....4194.1
                full sync: 2/11 shards
                full sync: 0 objects completed
                incremental sync: 1/11 shards
                bucket is behind on 4 shards
                behind shards: [1,4,6,10]
"""

import re
from dataclasses import dataclass

_SOURCE = re.compile(r"^(?:data sync )?source: \S+ \((?P<zone>[^)]+)\)")
_BUCKET_SOURCE = re.compile(r"^source zone \S+ \((?P<zone>[^)]+)\)")
_BEHIND = re.compile(r"is behind on (?P<shards>\d+) shards?")
_OLDEST = re.compile(r"oldest incremental change not applied: (?P<when>\S+)")


@dataclass(frozen=True)
class SyncSource:
    """Sync of metadata (source "metadata") or of one source zone's data."""

    source: str
    caught_up: bool
    behind_shards: int
    oldest_change: str  # as Ceph prints it, "" when nothing is waiting
    detail: str  # Ceph's own verdict line

    def summary(self) -> str:
        if self.caught_up:
            return f"{self.source}: caught up"
        oldest = f", oldest change {self.oldest_change}" if self.oldest_change else ""
        return f"{self.source}: {self.detail}{oldest}"


def parse_sync_status(text: str) -> list[SyncSource]:
    """One entry for metadata (on a secondary) and one per data source zone."""
    sources: list[SyncSource] = []
    current: str | None = None
    lines: list[str] = []

    def close() -> None:
        if current is not None:
            sources.append(_source(current, lines))

    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("metadata sync"):
            close()
            current, lines = "metadata", [line]
        elif (match := _SOURCE.search(line)) is not None:
            close()
            current, lines = match["zone"], []
        elif current is not None:
            lines.append(line)
    close()
    return sources


def parse_bucket_sync_status(text: str) -> list[SyncSource]:
    """One entry per zone the bucket syncs from."""
    sources: list[SyncSource] = []
    current: str | None = None
    lines: list[str] = []
    for raw in text.splitlines():
        line = raw.strip()
        if (match := _BUCKET_SOURCE.search(line)) is not None:
            if current is not None:
                sources.append(_source(current, lines))
            current, lines = match["zone"], []
        elif current is not None:
            lines.append(line)
    if current is not None:
        sources.append(_source(current, lines))
    return sources


def _source(name: str, lines: list[str]) -> SyncSource:
    # With the peer's gateway down Ceph prints "failed to fetch master sync status:
    # (5) Input/output error" (metadata) or "failed to retrieve sync info: ..." (data)
    # instead of a verdict: that is its answer, and it is not "caught up".
    verdict = next((line for line in lines
                    if "caught up" in line or "is behind" in line
                    or "master zone" in line or line.startswith("failed to")), "")
    if "no sync (zone is master)" in " ".join(lines):
        verdict = "this zone is the metadata master"
    behind = _BEHIND.search(verdict)
    oldest = next((m["when"] for line in lines if (m := _OLDEST.search(line))), "")
    caught_up = "caught up" in verdict or verdict == "this zone is the metadata master"
    return SyncSource(source=name, caught_up=caught_up,
                      behind_shards=int(behind["shards"]) if behind else 0,
                      oldest_change=oldest, detail=verdict or "no verdict printed")
