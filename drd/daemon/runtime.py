"""The daemon's live state, and the DaemonContext the API reads it through.

The loops write observations here (Ceph health, peer heartbeats, ticks); the API
reads consistent snapshots. Everything runs on the event loop thread, so plain
attribute swaps of immutable values are atomic enough; blocking work (SQLite,
librados) goes to worker threads.
"""

import asyncio
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from drd import __version__
from drd.api.metrics import DaemonMetrics
from drd.api.schemas import (
    AuditList,
    AuditOut,
    CephView,
    HeartbeatIn,
    HeartbeatOut,
    LeaseAskIn,
    LeaseReleaseIn,
    LeaseView,
    LeaseVoteOut,
    PeerView,
    PolicyAccepted,
    Probe,
    ProtectionView,
    RunList,
    RunOut,
    ServiceProbeView,
    SiteStatus,
)
from drd.api.tokens import TokenRegistry
from drd.backup.service import BackupService
from drd.daemon.backup_context import BackupContext
from drd.daemon.lease_voter import LeaseVoter
from drd.daemon.peer_detector import PeerSignals
from drd.daemon.service_prober import ServiceProber
from drd.daemon.takeover_service import TakeoverService
from drd.domain.access import Principal
from drd.domain.failure_detector import PeerState, Signal
from drd.domain.group_protection import Protection
from drd.domain.lease import Ask
from drd.domain.peer_liveness import PeerObservation, judge_peer
from drd.domain.site_config import SiteConfig
from drd.replication.group_watch import GroupWatch
from drd.replication.policies import PolicyBook
from drd.replication.reporting import rpo_report, tenant_protection
from drd.replication.views import RpoReport, TenantProtection
from drd.runbooks.service import RunbookService
from drd.state.records import AuditResult
from drd.state.store import StateStore

# Liveness fails when the main loop has not ticked for this many tick intervals.
LIVENESS_TICKS = 5
# Readiness wants a Ceph probe younger than this many probe intervals.
READINESS_PROBES = 3


@dataclass
class LoadedConfig:
    """A config together with the secrets it points at, swapped as one on reload."""

    config: SiteConfig
    tokens: TokenRegistry
    peer_tokens: dict[str, str] = field(repr=False)  # peer name -> token we present
    loaded_at: datetime


class SiteRuntime(BackupContext):
    """Implements drd.api.context.DaemonContext."""

    def __init__(self, *, loaded: LoadedConfig, store: StateStore, metrics: DaemonMetrics,
                 started_at: datetime, tick_seconds: float, probe_seconds: float,
                 policy_book: PolicyBook, runbooks: RunbookService | None = None) -> None:
        self.loaded = loaded
        self.runbooks = runbooks
        self.policy_book = policy_book
        self.store = store
        self._metrics = metrics
        self.started_at = started_at
        self.tick_seconds = tick_seconds
        self.probe_seconds = probe_seconds
        self.last_tick = time.monotonic()
        self.ceph = CephView(reachable=False, health="unknown", detail="not probed yet")
        self.ceph_probed_monotonic: float | None = None
        self.peers: dict[str, PeerObservation] = {p.name: PeerObservation()
                                                  for p in loaded.config.peers}
        self.signals = PeerSignals(loaded.config.takeover.detector(),
                                   [p.name for p in loaded.config.peers])
        self.voter = LeaseVoter(store, loaded.config.site.name,
                                loaded.config.takeover.lease(), self.peer_lost)
        self.takeover: TakeoverService | None = None
        self.group_watch = GroupWatch()
        self.service_prober = ServiceProber()

    @property
    def config(self) -> SiteConfig:
        return self.loaded.config

    @property
    def tokens(self) -> TokenRegistry:
        return self.loaded.tokens

    @property
    def metrics(self) -> DaemonMetrics:
        return self._metrics

    @property
    def backups(self) -> BackupService | None:
        return self.policy_book.backups

    def swap_config(self, loaded: LoadedConfig) -> None:
        self.loaded = loaded
        self.peers = {p.name: self.peers.get(p.name, PeerObservation())
                      for p in loaded.config.peers}
        self.signals.reconfigure(loaded.config.takeover.detector(),
                                 [p.name for p in loaded.config.peers])
        self.voter.settings = loaded.config.takeover.lease()

    def peer_reachable(self, name: str) -> bool:
        """Whether peer `name` answered heartbeats recently enough to count as reachable."""
        observation = self.peers.get(name)
        if observation is None:
            return False
        beat = self.config.heartbeat
        return judge_peer(observation, datetime.now(UTC), beat.interval_seconds,
                          beat.lost_after_missed).reachable

    def peer_lost(self, name: str) -> bool:
        """This site's failure detector judges `name` lost."""
        return self.signals.verdict(name).state is PeerState.LOST

    def tick(self) -> None:
        self.last_tick = time.monotonic()
        self.group_watch.observe(self.policy_book.service, datetime.now(UTC))

    def record_ceph(self, view: CephView) -> None:
        self.ceph = view
        self.ceph_probed_monotonic = time.monotonic()
        self._metrics.set_ceph_health(view.reachable, view.health)

    def peer_views(self, now: datetime) -> list[PeerView]:
        beat = self.config.heartbeat
        views = []
        for peer in self.config.peers:
            observation = self.peers.get(peer.name, PeerObservation())
            liveness = judge_peer(observation, now, beat.interval_seconds,
                                  beat.lost_after_missed)
            verdict = self.signals.verdict(peer.name)
            ceph_track = self.signals.track(peer.name, Signal.CEPH)
            views.append(PeerView(
                name=peer.name, kind=peer.kind, url=str(peer.url),
                reachable=liveness.reachable, last_seen=observation.last_seen,
                last_heartbeat_received=observation.last_heartbeat_received,
                last_heartbeat_answered=observation.last_heartbeat_answered,
                round_trip_ms=observation.round_trip_ms, missed=liveness.missed,
                last_error=observation.last_error,
                peer_ceph_health=observation.peer_ceph_health,
                detector=verdict.state.value, detector_reason=verdict.reason,
                lost_since=verdict.since,
                ceph_probe=ceph_track.detail if ceph_track else "not probed (no ceph_conf)"))
            self._metrics.peer_reachable.labels(peer=peer.name).set(int(liveness.reachable))
            for state in PeerState:
                self._metrics.peer_detector_state.labels(peer=peer.name, state=state.value).set(
                    int(state is verdict.state))
            if observation.last_seen is not None:
                self._metrics.peer_last_seen.labels(peer=peer.name).set(
                    observation.last_seen.timestamp())
        return views

    # --- DaemonContext -------------------------------------------------------------

    def status(self, now: datetime) -> SiteStatus:
        rpo = rpo_report(self.policy_book.service, objects=self.policy_book.objects)
        return SiteStatus(
            site=self.config.site.name, kind=self.config.site.kind, version=__version__,
            started_at=self.started_at,
            uptime_seconds=round((now - self.started_at).total_seconds(), 3),
            config_loaded_at=self.loaded.loaded_at, ceph=self.ceph,
            peers=self.peer_views(now), rpo_breaches=rpo.breaches, rpo_warnings=rpo.warnings,
            policy_problems=[issue.render() for issue in self.policy_book.issues],
            object_sync=self._object_sync_lines(), leases=self._lease_views(),
            protection=self._protection_views(),
            service_probes=[ServiceProbeView(
                tenant=r.tenant, probe=r.probe, site_kind=r.kind, endpoint=r.endpoint,
                answering=r.answering, result=r.result,
                seconds_since_answer=r.seconds_since_answer)
                for r in self.service_prober.results()])

    def _with_protection(self, group: str, takeover: dict[str, Any]) -> dict[str, Any]:
        """A takeover's record with how long the new primary stayed unprotected."""
        clock = self.group_watch.clocks.get(group)
        if not takeover or clock is None:
            return takeover
        return {**takeover, "protection": clock.state.value,
                "protected_again_seconds": clock.protected_again_seconds}

    def _protection_views(self) -> list[ProtectionView]:
        watch = self.group_watch
        return [ProtectionView(group=group, state=judged.state.value, reason=judged.reason,
                               unprotected_since=watch.clocks[group].unprotected_since
                               if judged.state is Protection.UNPROTECTED else None,
                               protected_again_seconds=watch.clocks[group]
                               .protected_again_seconds)
                for group, judged in sorted(watch.judged.items())]

    def _lease_views(self) -> list[LeaseView]:
        if self.takeover is None:
            return []
        views = []
        for group, state in sorted(self.takeover.groups.items()):
            promise = self.voter.promise(group)
            views.append(LeaseView(
                group=group, holder=promise.holder if promise else None,
                epoch=promise.epoch if promise else None,
                remaining_seconds=self.voter.remaining(group),
                move=state.last.move.value if state.last else "",
                reason=state.last.reason if state.last else "not decided yet",
                fenced=state.fenced, takeover=self._with_protection(group, state.takeover)))
        return views

    def _object_sync_lines(self) -> list[str]:
        objects = self.policy_book.objects
        if objects is None:
            return []
        return [objects.state.role, *(f"zone of site {site}: {line}"
                                      for site, lines in sorted(objects.state.zones.items())
                                      for line in lines)]

    def liveness(self, now: datetime) -> Probe:
        silent = time.monotonic() - self.last_tick
        if silent > LIVENESS_TICKS * self.tick_seconds:
            return Probe(ok=False, reasons=[f"main loop has not ticked for {silent:.1f} s"])
        return Probe(ok=True)

    def readiness(self, now: datetime) -> Probe:
        reasons = []
        if self.ceph_probed_monotonic is None:
            reasons.append("Ceph not probed yet")
        elif time.monotonic() - self.ceph_probed_monotonic > READINESS_PROBES * max(
                self.probe_seconds, 1.0):
            reasons.append("last Ceph probe is stale")
        if not self.ceph.reachable:
            reasons.append(f"Ceph unreachable: {self.ceph.detail}")
        return Probe(ok=not reasons, reasons=reasons)

    async def vote_on_lease(self, ask: LeaseAskIn) -> LeaseVoteOut:
        result = await self.voter.answer(ask.group, Ask(ask.candidate, ask.epoch))
        return self.voter.view(ask.group, result.answer.value, result.reason)

    async def release_lease(self, released: LeaseReleaseIn) -> LeaseVoteOut:
        promise = await self.voter.release(released.group, released.holder, released.epoch)
        done = promise is not None and promise.released
        return self.voter.view(released.group, "released" if done else "refused",
                               "released" if done else "not the holder at that epoch here")

    def receive_heartbeat(self, beat: HeartbeatIn, now: datetime) -> HeartbeatOut:
        if beat.site in self.peers:
            self.peers[beat.site] = self.peers[beat.site].received(
                now, beat.ceph_health, beat.version)
            self.signals.record(beat.site, Signal.API, True, now, "called us")
        return HeartbeatOut(site=self.config.site.name, kind=self.config.site.kind,
                            received_at=now, version=__version__,
                            ceph_health=self.ceph.health)

    async def record_audit(self, principal: Principal | None, action: str, target: str,
                           result: str, now: datetime) -> None:
        await asyncio.to_thread(
            self.store.audit, actor=principal.name if principal else "anonymous",
            role=principal.role if principal else "none", action=action, target=target,
            result=AuditResult(result), now=now, detail={})

    async def audit_log(self, limit: int) -> AuditList:
        entries = await asyncio.to_thread(self.store.audit_log, limit)
        return AuditList(entries=[
            AuditOut(id=e.id, at=e.at, actor=e.actor, role=e.role, action=e.action,
                     target=e.target, result=e.result) for e in entries])

    async def tenant_runs(self, tenant: str, limit: int) -> RunList:
        runs = await asyncio.to_thread(self.store.list_runs, limit, subject=tenant)
        return RunList(runs=[
            RunOut(id=r.id, kind=r.kind, subject=r.subject, state=r.state,
                   started_at=r.started_at, finished_at=r.finished_at) for r in runs])

    def tenant_protection(self, tenant: str) -> TenantProtection:
        return tenant_protection(self.policy_book.service, tenant, self.policy_book.objects)

    def rpo_report(self, tenant: str | None) -> RpoReport:
        return rpo_report(self.policy_book.service, tenant, self.policy_book.objects)

    async def put_policy(self, tenant: str, text: str) -> PolicyAccepted:
        policy = await self.policy_book.put(self.config, tenant, text)
        return PolicyAccepted(tenant=tenant, selections=len(policy.protection.block),
                              applied=True)
