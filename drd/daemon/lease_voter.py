"""This site's vote on every protection group's lease (drd.domain.lease decides).

One promise per group, in memory with its expiry on this daemon's monotonic clock. A
promise to a new holder, or at a new epoch, is written to the state store's `epochs`
table *before* the answer leaves, so a voter that restarts cannot grant the same epoch
twice; renewals only move the in-memory expiry, so a lease costs no disk write per
second. On start every stored promise is restored as running for a full ttl.
"""

import asyncio
import time
from collections.abc import Callable
from datetime import UTC, datetime

import structlog

from drd.api.schemas import LeaseVoteOut
from drd.daemon.lease_threads import in_lease_thread
from drd.domain.lease import (
    Answer,
    Ask,
    LeaseSettings,
    Promise,
    Vote,
    release,
    restored,
    vote,
)
from drd.state.store import StateStore

log = structlog.get_logger()


class LeaseVoter:
    def __init__(self, store: StateStore, site: str, settings: LeaseSettings,
                 lost: Callable[[str], bool],
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._store = store
        self.site = site
        self.settings = settings
        self._lost = lost  # this site's failure detector: is that site lost?
        self._clock = clock
        self._promises: dict[str, Promise] = {}
        self._lock = asyncio.Lock()

    async def load(self) -> None:
        records = await in_lease_thread(self._store.epochs)
        now = self._clock()
        for record in records:
            kept = restored(Promise(record.primary_site, record.epoch, now), now,
                            self.settings)
            if kept is not None:
                self._promises[record.protection_group] = kept

    def promise(self, group: str) -> Promise | None:
        return self._promises.get(group)

    def remaining(self, group: str) -> float | None:
        """Seconds the promise of `group` still runs here; None without one."""
        promise = self._promises.get(group)
        return None if promise is None else max(0.0, promise.until - self._clock())

    async def answer(self, group: str, ask: Ask) -> Vote:
        """Vote on `ask`; a new holder or epoch is persisted before this returns."""
        async with self._lock:
            promise = self._promises.get(group)
            holder_lost = (promise is not None and promise.holder != self.site
                           and self._lost(promise.holder))
            result = vote(promise, ask, self._clock(), self.settings, holder_lost)
            granted = result.promise
            if result.answer is Answer.GRANTED and granted is not None and (
                    promise is None or (promise.holder, promise.epoch)
                    != (granted.holder, granted.epoch)):
                await in_lease_thread(
                    self._store.accept_epoch, group, epoch=granted.epoch,
                    primary=granted.holder, now=datetime.now(UTC), by=self.site)
                log.warning("lease promised to a new holder", group=group,
                            holder=granted.holder, epoch=granted.epoch, reason=result.reason)
            if granted is not None:
                self._promises[group] = granted
            return result

    async def adopt(self, group: str, holder: str, epoch: int, *,
                    released: bool = False) -> None:
        """Learn from a peer that `holder` holds `group` at a newer `epoch` (this site
        was away when it took over), or held it and handed it over (`released`):
        stored, and promised here from now on."""
        async with self._lock:
            promise = self._promises.get(group)
            if promise is not None and promise.epoch >= epoch:
                return
            await in_lease_thread(self._store.accept_epoch, group, epoch=epoch,
                                    primary=holder, now=datetime.now(UTC), by=self.site)
            until = self._clock() + (0.0 if released else self.settings.ttl)
            self._promises[group] = Promise(holder, epoch, until, released=released)
            log.warning("lease: a newer epoch learnt from a peer", group=group, holder=holder,
                        epoch=epoch, released=released)

    async def release(self, group: str, holder: str, epoch: int) -> Promise | None:
        """The holder hands the lease over (not persisted: the holder repeats it every
        round while its images are not primary, so a restarted voter hears it again)."""
        async with self._lock:
            promise = release(self._promises.get(group), holder, epoch, self._clock())
            if promise is not None:
                self._promises[group] = promise
            return promise

    def view(self, group: str, answer: str, reason: str) -> LeaseVoteOut:
        """An answer to a peer, with this voter's promise as it stands now."""
        promise = self._promises.get(group)
        return LeaseVoteOut(site=self.site, answer=answer, reason=reason,
                            holder=promise.holder if promise else None,
                            epoch=promise.epoch if promise else None,
                            remaining_seconds=self.remaining(group),
                            released=promise.released if promise else False)
