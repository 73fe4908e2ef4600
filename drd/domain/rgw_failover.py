"""RGW zone failover, the pure half: may a zone become master, and what was done. Pure.

The adapter (drd.ceph.rgw_failover) asks Ceph; this module judges what Ceph said and
holds the typed results a runbook journals: one FailoverStep per action, each saying
what it changed or that it was already so.
"""

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from drd.domain.rgw_sync_status import SyncSource, parse_bucket_sync_status

METADATA = "metadata"
MASTER_DETAIL = "this zone is the metadata master"


class CatchUpVerdict(StrEnum):
    CAUGHT_UP = "caught-up"
    IS_MASTER = "is-master"
    BEHIND = "behind"
    # Ceph could not compare with the master, usually because its gateway is down.
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class MetadataCatchUp:
    """Whether `zone` holds every metadata change (users, buckets) the master made."""

    zone: str
    verdict: CatchUpVerdict
    reason: str
    data: tuple[SyncSource, ...] = ()  # data sync per source zone, for the record

    @property
    def caught_up(self) -> bool:
        return self.verdict in (CatchUpVerdict.CAUGHT_UP, CatchUpVerdict.IS_MASTER)

    def data_caught_up_from(self, source: str) -> bool:
        return any(s.source == source and s.caught_up for s in self.data)


def judge_metadata(zone: str, sources: list[SyncSource], sync_state: str) -> MetadataCatchUp:
    """Judge `sync status` (parsed) and `metadata sync status` info.status of one zone."""
    data = tuple(s for s in sources if s.source != METADATA)
    metadata = next((s for s in sources if s.source == METADATA), None)
    if metadata is None:
        return MetadataCatchUp(zone, CatchUpVerdict.UNKNOWN,
                               "radosgw-admin sync status printed no metadata section", data)
    if metadata.detail == MASTER_DETAIL:
        return MetadataCatchUp(zone, CatchUpVerdict.IS_MASTER, MASTER_DETAIL, data)
    if metadata.detail.startswith("failed to"):
        return MetadataCatchUp(zone, CatchUpVerdict.UNKNOWN,
                               f"cannot compare with the master: {metadata.detail}", data)
    if sync_state != "sync":
        # Full sync (or its set-up) still running: the shard counts mean little yet.
        return MetadataCatchUp(zone, CatchUpVerdict.BEHIND,
                               f"metadata sync is in state {sync_state!r}, not incremental",
                               data)
    if metadata.caught_up:
        return MetadataCatchUp(zone, CatchUpVerdict.CAUGHT_UP, metadata.detail, data)
    if metadata.behind_shards:
        oldest = f", oldest change {metadata.oldest_change}" if metadata.oldest_change else ""
        return MetadataCatchUp(zone, CatchUpVerdict.BEHIND, metadata.detail + oldest, data)
    return MetadataCatchUp(zone, CatchUpVerdict.UNKNOWN, metadata.detail, data)


class PromoteAction(StrEnum):
    NOTHING = "nothing"
    PROMOTE = "promote"
    REFUSE = "refuse"


@dataclass(frozen=True)
class PromoteDecision:
    action: PromoteAction
    reason: str


def decide_promotion(zone: str, master: str, catch_up: MetadataCatchUp | None,
                     force: bool) -> PromoteDecision:
    """Promote `zone` (master now: `master`) only when its metadata has caught up, or when
    forced: metadata changes the master made and `zone` lacks would be lost."""
    if zone == master:
        return PromoteDecision(PromoteAction.NOTHING, f"zone {zone} is already master")
    if catch_up is None:
        return PromoteDecision(PromoteAction.REFUSE, f"zone {zone}: metadata sync not checked")
    if catch_up.caught_up:
        return PromoteDecision(PromoteAction.PROMOTE,
                               f"zone {zone} has caught up with master {master}: "
                               f"{catch_up.reason}")
    if force:
        return PromoteDecision(PromoteAction.PROMOTE,
                               f"forced: zone {zone} is not proven caught up with master "
                               f"{master} ({catch_up.reason}); metadata changes it lacks "
                               "are lost")
    return PromoteDecision(PromoteAction.REFUSE,
                           f"zone {zone} is not proven caught up with master {master}: "
                           f"{catch_up.reason}; promote with force to accept losing the "
                           "metadata changes it lacks")


@dataclass(frozen=True)
class PeriodInfo:
    """One committed period as a zone's cluster holds it."""

    id: str
    epoch: int
    realm_epoch: int
    master_zone: str  # the zone's name
    endpoints: tuple[tuple[str, tuple[str, ...]], ...]  # (zone name, its endpoints)

    def endpoint(self, zone: str) -> str:
        found = dict(self.endpoints).get(zone, ())
        if not found:
            raise ValueError(f"period {self.id} lists no endpoint for zone {zone}")
        return found[0]

    def newer_than(self, other: "PeriodInfo") -> bool:
        return (self.realm_epoch, self.epoch) > (other.realm_epoch, other.epoch)

    def __str__(self) -> str:
        return (f"period {self.id[:8]} epoch {self.epoch} (realm epoch {self.realm_epoch}, "
                f"master {self.master_zone})")


def parse_period(document: Mapping[str, Any]) -> PeriodInfo:
    """`radosgw-admin period get` (or `period update --commit`) JSON."""
    zones = [zone for group in document.get("period_map", {}).get("zonegroups", [])
             for zone in group.get("zones", [])]
    master_id = str(document.get("master_zone", ""))
    master = next((str(z["name"]) for z in zones if z.get("id") == master_id), "")
    if not master:
        raise ValueError(f"period {document.get('id')} names no known master zone "
                         f"({master_id or 'none'})")
    return PeriodInfo(
        id=str(document["id"]), epoch=int(document["epoch"]),
        realm_epoch=int(document["realm_epoch"]), master_zone=master,
        endpoints=tuple((str(z["name"]), tuple(str(e) for e in z.get("endpoints", [])))
                        for z in zones))


@dataclass(frozen=True)
class FailoverStep:
    """One idempotent action: what it did, or that it was already so."""

    name: str
    zone: str
    changed: bool
    detail: str
    elapsed_s: float
    check: bool = False  # a look (catch-up, who is master) rather than an action

    def __str__(self) -> str:
        return f"{self.name} on zone {self.zone}: {self.detail}" + \
            ("" if self.changed or self.check else " (already so)")


class _StepsOutcome:
    """What a promotion and a failback both report about their steps."""

    steps: tuple[FailoverStep, ...]
    period_after: PeriodInfo

    @property
    def master_after(self) -> str:
        return self.period_after.master_zone

    @property
    def changed(self) -> bool:
        return any(step.changed for step in self.steps)


@dataclass(frozen=True)
class PromoteResult(_StepsOutcome):
    zone: str
    steps: tuple[FailoverStep, ...]
    elapsed_s: float
    period_before: PeriodInfo
    period_after: PeriodInfo
    forced: bool = False


@dataclass(frozen=True)
class FailbackResult(_StepsOutcome):
    zone: str
    previous_master: str
    steps: tuple[FailoverStep, ...]
    elapsed_s: float
    period_before: PeriodInfo  # the current master's, when failback started
    period_after: PeriodInfo


@dataclass(frozen=True)
class MetadataSyncInfo:
    """`metadata sync status` info: which period a secondary's gateway syncs from."""

    state: str  # init, building-full-sync-maps, sync
    period: str
    realm_epoch: int

    def follows(self, period: PeriodInfo) -> bool:
        """Its gateway runs metadata sync against `period` (or a newer one)."""
        return self.state == "sync" and self.realm_epoch >= period.realm_epoch


def parse_metadata_sync_info(document: Mapping[str, Any]) -> MetadataSyncInfo:
    info = document.get("sync_status", {}).get("info", {})
    return MetadataSyncInfo(state=str(info.get("status", "")), period=str(info.get("period", "")),
                            realm_epoch=int(info.get("realm_epoch", 0)))


def bucket_caught_up(text: str) -> tuple[bool, str]:
    """`radosgw-admin bucket sync status --bucket B --source-zone Z`: caught up, and
    Ceph's verdict line ("bucket is behind on 4 shards")."""
    sources = parse_bucket_sync_status(text)
    if not sources:
        return False, "no verdict printed"
    behind = [source for source in sources if not source.caught_up]
    return not behind, (behind or sources)[0].detail
