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
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import aiohttp
import structlog

from drd.api.schemas import LeaseAskIn, LeaseReleaseIn, LeaseVoteOut
from drd.api.tokens import TokenFileError, read_secret_file
from drd.ceph import rbd_images, rbd_promotion
from drd.ceph.cluster import CephError, ClusterHandle
from drd.daemon.lease_voter import LeaseVoter
from drd.daemon.peer_detector import PeerSignals
from drd.domain.lease import Answer, Ask, held_until, majority, must_fence
from drd.domain.replication_plan import ImageRef
from drd.domain.site_config import PeerConfig, SiteConfig
from drd.domain.takeover import Move, NextMove, next_move
from drd.domain.tenant_policy import BlockSelection, TakeoverMode, TenantPolicy
from drd.runbooks.service import RunbookService
from drd.runbooks.views import RunRequest

log = structlog.get_logger()
TAKEOVER_RUNBOOK = "failover"
ACTOR = "drd-takeover"


@dataclass
class GroupState:
    tenant: str
    block: BlockSelection
    last: NextMove | None = None
    held_until: float | None = None  # this site's monotonic clock
    held_since: float | None = None
    fenced: str = ""  # why this site demoted its images of the group, if it did
    takeover: dict[str, Any] = field(default_factory=dict)  # the last one by this site


class TakeoverService:
    def __init__(self, config: SiteConfig, voter: LeaseVoter, signals: PeerSignals,
                 runbooks: RunbookService | None, handle: ClusterHandle) -> None:
        self.config = config
        self._voter = voter
        self._signals = signals
        self._runbooks = runbooks
        self._handle = handle  # this site's own cluster
        self.groups: dict[str, GroupState] = {}
        self._started = time.monotonic()
        self._runs: set[asyncio.Task[None]] = set()  # takeover runs being followed
        self._by_tenant: dict[str, dict[str, Any]] = {}  # the last takeover of each tenant

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
        while True:
            started = time.monotonic()
            self.update(config(), policies())
            await asyncio.gather(*(self._act(session, name, state)
                                   for name, state in list(self.groups.items())))
            renew = self.config.takeover.lease_renew_seconds
            await asyncio.sleep(max(0.0, renew - (time.monotonic() - started)))

    async def _act(self, session: aiohttp.ClientSession, group: str, state: GroupState) -> None:
        site = self.config.site.name
        promise = self._voter.promise(group)
        primary_here: bool | None = None
        if promise is None or promise.holder == site or promise.released:
            found = await self._own_primaries(state.block)
            primary_here = None if found is None else bool(found)
        holder = promise.holder if promise else None
        verdict = (self._signals.verdict(holder).state
                   if holder is not None and holder != site else None)
        decided = next_move(site, self.config.site.kind, promise, primary_here=primary_here,
                            holder_state=verdict, remaining=self._voter.remaining(group))
        if state.last is None or (decided.move, decided.reason) != (state.last.move,
                                                                   state.last.reason):
            log.info("lease", group=group, move=str(decided.move), reason=decided.reason)
        state.last = decided
        if decided.move is Move.CLAIM or (decided.move is Move.RENEW and not state.fenced):
            await self._hold(session, group, state, decided)
        elif decided.move is Move.RELEASE:
            await self._release(session, group, state, decided)
        elif decided.move is Move.TAKE_OVER and not state.takeover.get("running"):
            await self._take_over(session, group, state, decided)

    async def _hold(self, session: aiohttp.ClientSession, group: str, state: GroupState,
                    decided: NextMove) -> None:
        assert decided.epoch is not None
        asked_at = time.monotonic()
        votes = await self._ask_all(session, group, decided.epoch)
        granted = sum(1 for vote in votes if vote.answer == Answer.GRANTED.value)
        settings = self.config.takeover.lease()
        until = held_until(asked_at, granted, len(votes), settings)
        if until is not None:
            state.held_until = max(state.held_until or until, until)
            state.held_since = state.held_since or asked_at
            if decided.move is Move.CLAIM:
                state.fenced = ""  # the images moved here by an operator's run: unfenced
        newer = [vote for vote in votes if vote.epoch is not None
                 and vote.epoch > decided.epoch and vote.holder not in (None, self._voter.site)]
        if newer:
            vote = max(newer, key=lambda v: v.epoch or 0)
            assert vote.holder is not None and vote.epoch is not None
            await self._voter.adopt(group, vote.holder, vote.epoch)
            await self._fence(group, state, f"site {vote.site} knows {vote.holder} holds "
                                            f"epoch {vote.epoch}, newer than this site's "
                                            f"{decided.epoch}: it took over meanwhile")
            return
        # Fence only a lease once held, or one never won within a ttl of starting.
        grace_over = time.monotonic() - self._started > settings.ttl
        if must_fence(time.monotonic(), state.held_until, settings) and (
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
        await asyncio.gather(*(self._post(session, peer, "/v1/peers/lease/release", body)
                               for peer in self.config.peers))
        state.held_until, state.held_since = None, None

    async def _take_over(self, session: aiohttp.ClientSession, group: str, state: GroupState,
                         decided: NextMove) -> None:
        assert decided.epoch is not None
        promise = self._voter.promise(group)
        lost = promise.holder if promise else "?"
        votes = await self._ask_all(session, group, decided.epoch)
        granted = [vote.site for vote in votes if vote.answer == Answer.GRANTED.value]
        if len(granted) < majority(len(votes)):
            log.warning("takeover refused by the quorum", group=group, granted=granted,
                        answers=[f"{v.site}: {v.reason}" for v in votes])
            return
        verdict = self._signals.verdict(lost)
        state.held_until, state.held_since = None, None
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

    async def _run_failover(self, state: GroupState, lost: str) -> None:
        record = state.takeover
        try:
            if self._runbooks is None:
                raise RuntimeError("this daemon runs no runbooks")
            view = await self._runbooks.run(TAKEOVER_RUNBOOK, RunRequest(
                source=lost, target=self.config.site.name, tenants=[state.tenant]), ACTOR)
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

    async def _ask_all(self, session: aiohttp.ClientSession, group: str,
                       epoch: int) -> list[LeaseVoteOut]:
        site = self.config.site.name
        own = await self._voter.answer(group, Ask(site, epoch))
        promise = own.promise
        mine = LeaseVoteOut(site=site, answer=own.answer.value, reason=own.reason,
                            holder=promise.holder if promise else None,
                            epoch=promise.epoch if promise else None,
                            remaining_seconds=self._voter.remaining(group))
        ask = LeaseAskIn(group=group, candidate=site, epoch=epoch)
        answers = await asyncio.gather(*(self._ask_peer(session, peer, ask)
                                         for peer in self.config.peers))
        return [mine, *answers]

    async def _ask_peer(self, session: aiohttp.ClientSession, peer: PeerConfig,
                        ask: LeaseAskIn) -> LeaseVoteOut:
        return await self._post(session, peer, "/v1/peers/lease", ask)

    async def _post(self, session: aiohttp.ClientSession, peer: PeerConfig, path: str,
                    body: LeaseAskIn | LeaseReleaseIn) -> LeaseVoteOut:
        """POST to the peer's voter; a refusal saying why when it does not answer."""
        timeout = aiohttp.ClientTimeout(total=self.config.takeover.lease_renew_seconds)
        try:
            token = read_secret_file(peer.token_file)
            async with session.post(str(peer.url).rstrip("/") + path,
                                    data=body.model_dump_json(), timeout=timeout,
                                    headers={"Authorization": f"Bearer {token}",
                                             "Content-Type": "application/json"}) as response:
                raw = await response.read()
                if response.status != 200:
                    raise ValueError(f"HTTP {response.status}: {raw[:200]!r}")
                return LeaseVoteOut.model_validate_json(raw)
        except (TimeoutError, aiohttp.ClientError, ValueError, TokenFileError) as error:
            return LeaseVoteOut(site=peer.name, answer=Answer.REFUSED.value,
                                reason=f"no answer: {error or type(error).__name__}",
                                holder=None, epoch=None, remaining_seconds=None)

    async def _own_primaries(self, block: BlockSelection) -> list[ImageRef] | None:
        """This site's primary images of the group; None when its Ceph does not say."""
        try:
            observed = await asyncio.to_thread(self._handle.run, lambda cluster:
                                               rbd_images.observe_pool(cluster, block.pool,
                                                                       block.namespace))
        except (CephError, TimeoutError):
            return None
        return [image.ref for image in observed
                if image.primary and block.selects(image.ref.name)]

    async def _fence(self, group: str, state: GroupState, why: str) -> None:
        """Demote this site's primary images of the group; it stays fenced until an
        operator moves the group (a failback, a switchover)."""
        refs = await self._own_primaries(state.block) or []
        log.error("fencing: demoting this site's images of the group", group=group,
                  images=len(refs), reason=why)
        state.fenced = f"fencing ({len(refs)} image(s) to demote): {why}"
        failed = []
        for ref in refs:
            try:
                await asyncio.to_thread(self._handle.run,
                                        lambda cluster, ref=ref: rbd_promotion.demote(cluster,
                                                                                      ref))
            except (CephError, TimeoutError) as error:
                failed.append(f"{ref}: {error}")
        state.fenced = (f"{datetime.now(UTC).isoformat(timespec='seconds')}: {why}; "
                        f"demoted {len(refs) - len(failed)} of {len(refs)} image(s)"
                        + (f"; failed: {'; '.join(failed)}" if failed else ""))
        state.held_until = None

    def close(self) -> None:
        for task in self._runs:
            task.cancel()
        self._handle.close()
