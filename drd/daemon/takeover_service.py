"""Automatic takeover: every `lease_renew_seconds`, for every group whose policy says
`takeover: automatic`, this site claims, renews or takes over the group's lease
(drd.domain.takeover decides), asking every site's voter, its own included.

- A holder that cannot renew fences itself `fence_margin_seconds` before its lease runs
  out: it demotes its images of the group, so that it is no longer writable by the time
  any voter could promise the group to another site. A holder told by a peer that a
  newer epoch exists (it returned after a takeover) adopts it and fences itself too;
  it waits for an operator's failback.
- The same-city site, once a majority promised it the next epoch, runs the built-in
  `failover` runbook for the group's tenant from the lost holder to itself, and
  records when the holder was lost, when the lease let it act, and the run.
"""

import asyncio
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import aiohttp
import structlog

from drd.api.schemas import LeaseReleaseIn
from drd.ceph.cluster import ClusterHandle
from drd.daemon.lease_quorum import ask_all, newer_epoch_held, post_to_voter
from drd.daemon.lease_voter import LeaseVoter
from drd.daemon.peer_detector import PeerSignals
from drd.daemon.self_fence import fence_images, fence_returned, primaries_at
from drd.daemon.service_prober import ServiceProber
from drd.domain.failure_detector import PeerState
from drd.domain.lease import Answer, held_until, majority, must_fence
from drd.domain.replication_plan import ImageRef
from drd.domain.site_config import SiteConfig
from drd.domain.takeover import Move, NextMove, next_move
from drd.domain.tenant_policy import BlockSelection, TakeoverMode, TenantPolicy
from drd.runbooks.service import RunbookService
from drd.runbooks.views import ResumeRequest, RunRequest, RunView

log = structlog.get_logger()
TAKEOVER_RUNBOOK = "failover"
ACTOR = "drd-takeover"


# Asked beside the rounds, so it may wait as long as any Ceph call: a returning OSD is slow.
RETURNED_SITE_DEADLINE_SECONDS = 10.0
OPEN_RUN_STATES = frozenset({"running", "paused", "interrupted"})
# A refusal repeated unchanged is logged again only after this long.
REFUSAL_REPEAT_SECONDS = 30.0


@dataclass
class GroupState:
    tenant: str
    block: BlockSelection
    last: NextMove | None = None
    held_until: float | None = None  # this site's monotonic clock
    held_since: float | None = None
    fenced: str = ""  # why this site demoted its images of the group, if it did
    fence_pending: str = ""  # why a fence that has not finished is tried again each round
    stale_at: str | None = None  # the site taken over from, until its copies are seen fenced
    takeover: dict[str, Any] = field(default_factory=dict)  # the last one by this site
    refusal: tuple[str, ...] = ()  # the quorum's last refusal, as logged
    refusal_said_at: float = 0.0


class TakeoverService:
    def __init__(self, config: SiteConfig, voter: LeaseVoter, signals: PeerSignals,
                 runbooks: RunbookService | None, handle: ClusterHandle, *,
                 prober: ServiceProber | None = None) -> None:
        self.config = config
        self._prober = prober  # the tenants' service probes: a veto on taking over
        self._voter = voter
        self._signals = signals
        self._runbooks = runbooks
        self._handle = handle  # this site's own cluster
        self.groups: dict[str, GroupState] = {}
        self._started = time.monotonic()
        self._runs: set[asyncio.Task[None]] = set()  # takeover runs being followed
        self._by_tenant: dict[str, dict[str, Any]] = {}  # the last takeover of each tenant
        self._peer_handles: dict[str, ClusterHandle] = {}
        self._guards: dict[str, asyncio.Task[None]] = {}  # group -> its returned-site check

    def update(self, config: SiteConfig, policies: dict[str, TenantPolicy]) -> None:
        """The groups to lease, from the policies in force (automatic takeover only)."""
        self.config = config
        wanted = {f"{tenant}/{block.name}": (tenant, block)
                  for tenant, policy in policies.items() for block in policy.protection.block
                  if block.takeover is TakeoverMode.AUTOMATIC}
        self.groups = {name: self.groups.get(name) or GroupState(tenant, block)
                       for name, (tenant, block) in wanted.items()}
        for name, (_, block) in wanted.items():
            self.groups[name].block = block

    async def loop(self, session: aiohttp.ClientSession, config: Callable[[], SiteConfig],
                   policies: Callable[[], dict[str, TenantPolicy]]) -> None:
        self.update(config(), policies())
        await self._resume_interrupted()
        while True:
            started = time.monotonic()
            self.update(config(), policies())
            await asyncio.gather(*(self._act(session, name, state)
                                   for name, state in list(self.groups.items())))
            renew = self.config.takeover.lease_renew_seconds
            await asyncio.sleep(max(0.0, renew - (time.monotonic() - started)))

    async def _act(self, session: aiohttp.ClientSession, group: str, state: GroupState) -> None:
        site = self.config.site.name
        if state.fence_pending:
            await self._fence(group, state, state.fence_pending)
        promise = self._voter.promise(group)
        primary_here: bool | None = None
        if promise is None or promise.holder == site or promise.released:
            found = await self._own_primaries(state.block)
            primary_here = None if found is None else bool(found)
        holder = promise.holder if promise else None
        verdict = (self._signals.verdict(holder).state
                   if holder is not None and holder != site else None)
        decided = next_move(site, self.config.site.kind, promise, primary_here=primary_here,
                            holder_state=verdict, remaining=self._voter.remaining(group),
                            taking_over=bool(state.takeover.get("running")),
                            service_served=self._served_at(state.tenant, holder))
        if state.last is None or (decided.move, decided.reason) != (state.last.move,
                                                                   state.last.reason):
            log.info("lease", group=group, move=str(decided.move), reason=decided.reason)
        state.last = decided
        if decided.move is Move.CLAIM or (decided.move is Move.RENEW and not state.fenced):
            await self._hold(session, group, state, decided)
            if (state.stale_at is not None and state.held_until is not None
                    and group not in self._guards):
                # Beside the round, never in it: a dead site's Ceph takes seconds to
                # fail, and a round that long would let this site's own lease lapse.
                self._guards[group] = task = asyncio.create_task(
                    self._guard_returned(group, state, state.stale_at))
                task.add_done_callback(lambda _: self._guards.pop(group, None))
        elif decided.move is Move.RELEASE:
            await self._release(session, group, state, decided)
        elif decided.move is Move.TAKE_OVER and not state.takeover.get("running"):
            await self._take_over(session, group, state, decided)

    def _served_at(self, tenant: str, holder: str | None) -> str | None:
        kinds = {peer.name: peer.kind for peer in self.config.peers}
        if self._prober is None or holder is None or holder not in kinds:
            return None
        return self._prober.served_at(tenant, holder, kinds[holder])

    async def _hold(self, session: aiohttp.ClientSession, group: str, state: GroupState,
                    decided: NextMove) -> None:
        assert decided.epoch is not None
        asked_at = time.monotonic()
        votes = await ask_all(session, self.config, self._voter, group, decided.epoch)
        granted = sum(1 for vote in votes if vote.answer == Answer.GRANTED.value)
        settings = self.config.takeover.lease()
        until = held_until(asked_at, granted, len(votes), settings)
        if until is not None:
            state.held_until = max(state.held_until or until, until)
            state.held_since = state.held_since or asked_at
            if decided.move is Move.CLAIM:
                # the images moved here by an operator's run: unfenced
                state.fenced, state.fence_pending = "", ""
        # A claim loses to another holder at the epoch it asked for, too: that site won
        # the race to claim it, and the images primary here are the ones to fence.
        claiming = decided.move is Move.CLAIM
        vote = newer_epoch_held(votes, decided.epoch - 1 if claiming else decided.epoch,
                                self._voter.site)
        if vote is not None:
            assert vote.holder is not None and vote.epoch is not None
            handed = all(v.released for v in votes
                         if (v.holder, v.epoch) == (vote.holder, vote.epoch))
            await self._voter.adopt(group, vote.holder, vote.epoch, released=handed)
            if handed:
                return  # that holder gave it up: claimed next round if primary here
            await self._fence(group, state, (
                f"site {vote.site} knows {vote.holder} holds epoch {vote.epoch}, the one "
                f"this site claimed: it won the claim" if claiming else
                f"site {vote.site} knows {vote.holder} holds epoch {vote.epoch}, newer than "
                f"this site's {decided.epoch}: it took over meanwhile"))
            return
        # Fence only a lease this site renews, once held or never won within a ttl of
        # starting. A refused claim leaves the group to nobody else (nobody holds it, or
        # its holder handed it over): the claim is asked again next round. Fencing on it
        # would demote the images an operator's failback had just promoted here, because
        # two peers were slow to answer once.
        grace_over = time.monotonic() - self._started > settings.ttl
        if decided.move is Move.RENEW and must_fence(time.monotonic(), state.held_until,
                                                     settings) and (
                state.held_since is not None or grace_over):
            refused = "; ".join(f"{v.site}: {v.reason}" for v in votes
                                if v.answer != Answer.GRANTED.value)
            await self._fence(group, state, f"the lease could not be renewed by a majority "
                                            f"({granted} of {len(votes)}: {refused})")

    async def _release(self, session: aiohttp.ClientSession, group: str, state: GroupState,
                       decided: NextMove) -> None:
        """Hand the lease over: this site's images of the group are not primary."""
        assert decided.epoch is not None
        site = self.config.site.name
        await self._voter.release(group, site, decided.epoch)
        body = LeaseReleaseIn(group=group, holder=site, epoch=decided.epoch)
        await asyncio.gather(*(post_to_voter(session, self.config, peer,
                                             "/v1/peers/lease/release", body)
                               for peer in self.config.peers))
        state.held_until, state.held_since = None, None

    async def _take_over(self, session: aiohttp.ClientSession, group: str, state: GroupState,
                         decided: NextMove) -> None:
        assert decided.epoch is not None
        promise = self._voter.promise(group)
        lost = promise.holder if promise else "?"
        votes = await ask_all(session, self.config, self._voter, group, decided.epoch)
        granted = [vote.site for vote in votes if vote.answer == Answer.GRANTED.value]
        if len(granted) < majority(len(votes)):
            answers = tuple(f"{v.site}: {v.reason}" for v in votes)
            # Asked again every round while the peer stays suspect: said once per change
            # of answers, or every REFUSAL_REPEAT_SECONDS, not once a second.
            now = time.monotonic()
            if answers != state.refusal or now - state.refusal_said_at > REFUSAL_REPEAT_SECONDS:
                log.warning("takeover refused by the quorum", group=group, granted=granted,
                            answers=list(answers))
                state.refusal, state.refusal_said_at = answers, now
            return
        state.refusal = ()
        verdict = self._signals.verdict(lost)
        state.held_until, state.held_since = None, None
        state.stale_at = lost
        log.warning("taking over", group=group, lost=lost, epoch=decided.epoch,
                    granted_by=granted)
        running = self._by_tenant.get(state.tenant)
        if running is not None and running.get("running"):
            # One failover run moves the whole tenant: this group joins it.
            running["groups"].append(group)
            state.takeover = running
            return
        state.takeover = self._by_tenant[state.tenant] = {
            "groups": [group], "from": lost, "epoch": decided.epoch, "granted_by": granted,
            "running": True, "lost_since": verdict.since.isoformat() if verdict.since else None,
            "promised_at": datetime.now(UTC).isoformat()}
        self._runs.add(task := asyncio.create_task(self._run_failover(state, lost)))
        task.add_done_callback(self._runs.discard)

    async def _resume_interrupted(self) -> None:
        """Finish the takeover runs a previous life of this daemon started and did not end:
        a takeover won is owed to the tenant whether or not this daemon was killed during
        it, and no operator is expected to be there to resume it."""
        if self._runbooks is None:
            return
        listed = await self._runbooks.runs(limit=50, kind=TAKEOVER_RUNBOOK)
        for view in listed.runs:
            if view.actor != ACTOR or view.state != "interrupted":
                continue
            tenants = list(view.tenants or [])
            groups = [name for name, state in self.groups.items() if state.tenant in tenants]
            log.warning("resuming an interrupted takeover run", run=view.id, groups=groups)
            record: dict[str, Any] = {"groups": groups, "from": view.source, "running": True,
                                      "run": view.id, "resumed": True}
            for name in groups:
                self.groups[name].takeover = record
                self.groups[name].stale_at = view.source
            for tenant in tenants:
                self._by_tenant[tenant] = record
            self._runs.add(task := asyncio.create_task(self._follow(
                record, self._runbooks.resume(view.id, ResumeRequest(), ACTOR))))
            task.add_done_callback(self._runs.discard)

    async def _run_failover(self, state: GroupState, lost: str) -> None:
        runbooks = self._runbooks
        started = (runbooks.run(TAKEOVER_RUNBOOK, RunRequest(
            source=lost, target=self.config.site.name, tenants=[state.tenant]), ACTOR)
            if runbooks is not None else None)
        await self._follow(state.takeover, started)

    async def _follow(self, record: dict[str, Any],
                      started: Coroutine[Any, Any, RunView] | None) -> None:
        """Start (or resume) a takeover run and wait for its end, recording it."""
        try:
            if self._runbooks is None or started is None:
                raise RuntimeError("this daemon runs no runbooks")
            view = await started
            record["run"] = view.id
            while view.state == "running":
                await asyncio.sleep(0.5)
                view = await self._runbooks.run_detail(view.id)
            record["run_state"] = view.state
            record["report"] = view.report
        except Exception as error:  # recorded and shown; an operator takes it from here
            record["error"] = str(error)
            log.error("takeover run failed", groups=record.get("groups"), error=str(error))
        finally:
            record["running"] = False

    async def _own_primaries(self, block: BlockSelection) -> list[ImageRef] | None:
        """This site's primary images of the group; None when its Ceph does not say."""
        return await primaries_at(self._handle, block)

    async def _fence(self, group: str, state: GroupState, why: str) -> None:
        """Blocklist the writers of this site's primary images of the group and demote
        them; it stays fenced until an operator moves the group (a failback, a
        switchover)."""
        found = await self._own_primaries(state.block)
        if found is None:
            # Unknown is not none: a site just resumed from a freeze may not answer yet.
            state.fence_pending = why
            state.fenced = f"fencing: this site's Ceph did not say which images are primary; " \
                           f"trying again: {why}"
            return
        refs = found
        log.error("fencing: demoting this site's images of the group", group=group,
                  images=len(refs), reason=why)
        state.fenced = f"fencing ({len(refs)} image(s) to demote): {why}"
        # A peer not seen alive (suspect already: a lost lease has no time to wait for
        # "lost") may hold watches that never answer; they are cut off too.
        peer_gone = any(self._signals.verdict(peer.name).state is not PeerState.ALIVE
                        for peer in self.config.peers)
        outcome = await fence_images(self._handle, refs, peer_lost=peer_gone)
        log.error("fenced", group=group, blocklisted=outcome.blocklisted,
                  demoted=outcome.demoted, failed=outcome.failed)
        state.fenced = (f"{datetime.now(UTC).isoformat(timespec='seconds')}: {why}; "
                        + outcome.summary())
        state.fence_pending = why if outcome.failed else ""
        state.held_until = None

    async def _guard_returned(self, group: str, state: GroupState, old: str) -> None:
        peer = next((p for p in self.config.peers if p.name == old), None)
        if peer is None or peer.ceph_conf is None:
            state.stale_at = None
            return
        if await self._operator_moving(state.tenant):
            # An operator's run (a failback) now decides about the old site's copies; its
            # own clients there would look like writers to fence.
            state.stale_at = None
            return
        if old not in self._peer_handles:
            self._peer_handles[old] = ClusterHandle(peer.ceph_conf, self.config.ceph.client,
                                                    RETURNED_SITE_DEADLINE_SECONDS)
        try:
            done = await fence_returned(self._handle, self._peer_handles[old], state.block)
        except Exception as error:  # logged; the next round tries again
            log.warning("checking the site taken over from failed", group=group, site=old,
                        error=str(error))
            return
        if done is not None:
            log.warning("the site taken over from is back", group=group, site=old,
                        outcome=done)
            state.stale_at = None

    async def _operator_moving(self, tenant: str) -> bool:
        """Whether a run not started by a takeover is open for `tenant`."""
        if self._runbooks is None:
            return False
        listed = await self._runbooks.runs(limit=20)
        return any(view.actor != ACTOR and view.state in OPEN_RUN_STATES
                   and (view.tenants is None or tenant in view.tenants)
                   for view in listed.runs)

    def close(self) -> None:
        for task in [*self._runs, *self._guards.values()]:
            task.cancel()
        self._handle.close()
        for handle in self._peer_handles.values():
            handle.close()
