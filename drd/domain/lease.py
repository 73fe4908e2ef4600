"""The primary site's lease on a protection group, granted by a majority of the three
sites' daemons, and the rules for a takeover. Pure; times are each site's own
monotonic seconds, never compared across sites.

Patroni keeps its leader key in a DCS with a TTL; drd has no DCS, so each daemon is
a voter that keeps one promise per group: "site H holds epoch E until my time T".

- The holder renews by asking every voter, itself included. It holds the lease while
  a majority promised, until `sent + ttl * (1 - drift)`, counted from *before* it
  asked: every voter's promise runs from when the request *arrived*, later, so each
  voter's promise outlives the holder's belief, even with clocks running at rates
  `drift` apart.
- A voter refuses any other site while its promise runs. Once it has run out, it
  grants a new holder only with a strictly higher epoch, and only when its own
  failure detector sees the old holder lost: the witness (the remote site) therefore
  vetoes a takeover while it still reaches production, and a partition in which
  production reaches the witness never moves the lease.
- A holder that cannot renew fences itself `fence_margin` before its belief runs out
  (it demotes its images), so that it is no longer writable by the time any voter
  could grant another site.
- A voter's promises are persisted before it answers; a voter that restarts treats
  each one as running for a full ttl from its restart, as it cannot know how much
  had passed.
"""

from dataclasses import dataclass
from enum import StrEnum


@dataclass(frozen=True)
class LeaseSettings:
    ttl: float = 6.0  # seconds a promise runs from its request's arrival
    renew_every: float = 1.0  # seconds between the holder's renewals
    fence_margin: float = 2.5  # demote this long before the holder's belief ends
    drift: float = 0.01  # largest relative clock rate difference between sites

    def __post_init__(self) -> None:
        if not 0 < self.renew_every < self.ttl:
            raise ValueError("need 0 < renew_every < ttl")
        if not 0 < self.fence_margin < self.ttl * (1 - self.drift) - self.renew_every:
            raise ValueError("need 0 < fence_margin < ttl * (1 - drift) - renew_every, so "
                             "that a renewal can land before fencing starts")
        if not 0 <= self.drift < 0.5:
            raise ValueError("need 0 <= drift < 0.5")


@dataclass(frozen=True)
class Promise:
    """A voter's promise: `holder` holds the group at `epoch` until the voter's `until`.
    `released`: the holder gave it up, its images demoted by a planned move (a switchover,
    a failback), so the site they moved to may claim it at once. A release is final: the
    holder cannot renew that epoch again, as a renewal arriving after the release (one
    sent before it, or sent while the holder's Ceph did not say where the images are
    primary) would take the lease back from under the site the images moved to."""

    holder: str
    epoch: int
    until: float
    released: bool = False


@dataclass(frozen=True)
class Ask:
    """A site asks a voter to promise it the group at `epoch`."""

    candidate: str
    epoch: int


class Answer(StrEnum):
    GRANTED = "granted"
    REFUSED = "refused"


@dataclass(frozen=True)
class Vote:
    answer: Answer
    reason: str
    promise: Promise | None  # the voter's promise after this vote (to persist)


def vote(promise: Promise | None, ask: Ask, now: float, settings: LeaseSettings,
         holder_lost: bool) -> Vote:
    """A voter's answer to `ask` at its time `now`; `holder_lost` is its own failure
    detector's verdict on the site it promised to."""
    if ask.epoch < 1:
        return Vote(Answer.REFUSED, "epochs start at 1", promise)
    if promise is None:
        granted = Promise(ask.candidate, ask.epoch, now + settings.ttl)
        return Vote(Answer.GRANTED, f"first holder: {ask.candidate} at epoch {ask.epoch}",
                    granted)
    if ask.epoch < promise.epoch:
        return Vote(Answer.REFUSED, f"epoch {ask.epoch} is stale: {promise.holder} holds "
                                    f"epoch {promise.epoch}", promise)
    if ask.candidate == promise.holder and ask.epoch == promise.epoch and not promise.released:
        renewed = Promise(promise.holder, promise.epoch, now + settings.ttl)
        return Vote(Answer.GRANTED, f"renewed for {settings.ttl:g} s", renewed)
    if ask.candidate != promise.holder and not promise.released:
        if now < promise.until:
            return Vote(Answer.REFUSED, f"promised to {promise.holder} (epoch "
                                        f"{promise.epoch}) for {promise.until - now:.1f} s "
                                        f"more", promise)
        if not holder_lost:
            return Vote(Answer.REFUSED, f"{promise.holder}'s lease ran out, but this site "
                                        f"does not see {promise.holder} lost", promise)
    if ask.epoch == promise.epoch:
        return Vote(Answer.REFUSED, f"a new term needs an epoch above {promise.epoch}",
                    promise)
    granted = Promise(ask.candidate, ask.epoch, now + settings.ttl)
    how = "is handed" if promise.released else "takes over"
    return Vote(Answer.GRANTED, f"{ask.candidate} {how} the lease at epoch {ask.epoch} "
                                f"(was {promise.holder} at epoch {promise.epoch})", granted)


def release(promise: Promise | None, holder: str, epoch: int, now: float) -> Promise | None:
    """The holder gives its lease up (only the holder, at its own epoch): the promise
    ends now, and another site may claim it without waiting or seeing it lost."""
    if promise is None or (promise.holder, promise.epoch) != (holder, epoch):
        return promise
    return Promise(holder, epoch, min(promise.until, now), released=True)


def restored(promise: Promise | None, now: float, settings: LeaseSettings) -> Promise | None:
    """A persisted promise as a restarted voter must keep it: running a full ttl."""
    if promise is None:
        return None
    return Promise(promise.holder, promise.epoch, now + settings.ttl)


def majority(sites: int) -> int:
    return sites // 2 + 1


def held_until(asked_at: float, granted: int, sites: int,
               settings: LeaseSettings) -> float | None:
    """Until when the site that asked at its time `asked_at` holds the lease, given how
    many voters (itself included) granted; None without a majority."""
    if granted < majority(sites):
        return None
    return asked_at + settings.ttl * (1 - settings.drift)


def must_fence(now: float, holds_until: float | None, settings: LeaseSettings) -> bool:
    """Whether a holder must demote now: its lease ends within the fence margin."""
    return holds_until is None or now >= holds_until - settings.fence_margin
