"""What this site does next about one protection group's lease. Pure.

Each round, every site decides for every group whose policy sets `takeover: automatic`:
the site whose images are primary claims the lease when nobody holds it yet; the holder
renews it; the same-city site takes it over only once its own failure detector judges
the holder lost *and* its own promise to the holder has run out (the witness's vote,
asked next, checks the same on the witness's side). Nobody else moves: the remote site
never takes over by itself (with a and b lost it could not win a majority anyway), and a
site that took over never hands back by itself; a failback is an operator's decision.
"""

from dataclasses import dataclass
from enum import StrEnum

from drd.domain.failure_detector import PeerState
from drd.domain.lease import Promise
from drd.domain.site import SiteKind


class Move(StrEnum):
    CLAIM = "claim"  # nobody holds it, or it was handed over: ask for the next epoch
    RENEW = "renew"
    RELEASE = "release"  # the holder's images were moved away by an operator: hand over
    TAKE_OVER = "take over"
    WAIT = "wait"  # the holder is lost, but its lease still runs here
    STAY = "stay"  # nothing to do


@dataclass(frozen=True)
class NextMove:
    move: Move
    reason: str
    epoch: int | None = None  # the epoch to ask at, for claim, renew and take over


def next_move(site: str, kind: SiteKind, promise: Promise | None, *,
              primary_here: bool | None, holder_state: PeerState | None,
              remaining: float | None, taking_over: bool = False,
              service_served: str | None = None) -> NextMove:
    """`promise` is this site's own voter's; `primary_here` whether the group's images
    are primary here (None: this site's Ceph did not say); `holder_state` its detector's
    verdict on the holder; `remaining` how long its own promise to the holder still runs;
    `taking_over` whether this site's takeover run is still promoting the images;
    `service_served` why the tenant's service still counts as served at the holder, if
    it does (drd.domain.service_probes): a veto on taking over."""
    if promise is None:
        if primary_here:
            return NextMove(Move.CLAIM, "the images are primary here and nobody holds the "
                                        "lease yet", 1)
        return NextMove(Move.STAY, "nobody holds the lease yet; the primary site claims it")
    if promise.holder == site:
        return _as_holder(promise, primary_here, taking_over)
    if promise.released:
        if primary_here:
            return NextMove(Move.CLAIM, f"{promise.holder} handed the lease over and the "
                                        f"images are primary here", promise.epoch + 1)
        return NextMove(Move.STAY, f"{promise.holder} handed the lease over; the site the "
                                   f"images moved to claims it")
    if kind is not SiteKind.SAME_CITY:
        return NextMove(Move.STAY, f"{promise.holder} holds epoch {promise.epoch}; only the "
                                   f"same-city site takes over by itself")
    if holder_state is not PeerState.LOST:
        state = holder_state.value if holder_state else "unknown"
        return NextMove(Move.STAY, f"{promise.holder} holds epoch {promise.epoch} and is "
                                   f"{state}")
    if service_served is not None:
        return NextMove(Move.STAY, f"{promise.holder} is lost to drd, but {service_served}")
    if remaining is not None and remaining > 0:
        return NextMove(Move.WAIT, f"{promise.holder} is lost; its lease runs "
                                   f"{remaining:.1f} s more here")
    return NextMove(Move.TAKE_OVER, f"{promise.holder} is lost and its lease ran out",
                    promise.epoch + 1)


def _as_holder(promise: Promise, primary_here: bool | None, taking_over: bool) -> NextMove:
    """The move of the site `promise` names as holder."""
    if promise.released:
        if primary_here:
            return NextMove(Move.CLAIM, f"this site handed epoch {promise.epoch} over, and "
                                        f"the images are primary here again",
                            promise.epoch + 1)
        if primary_here is False:
            # Said again each round, for a voter that restarted since (releases are not
            # persisted).
            return NextMove(Move.RELEASE, f"this site handed epoch {promise.epoch} over; its "
                                          f"images are not primary", promise.epoch)
        return NextMove(Move.STAY, f"this site handed epoch {promise.epoch} over; its Ceph "
                                   f"does not say whether the images are primary here again")
    if primary_here is False and taking_over:
        # Won, and promoting: the images are not primary yet, and handing the lease
        # over now would leave the group to nobody.
        return NextMove(Move.RENEW, f"this site holds epoch {promise.epoch} and is "
                                    f"taking over", promise.epoch)
    if primary_here is False:
        return NextMove(Move.RELEASE, f"this site holds epoch {promise.epoch} but its "
                                      f"images are not primary any more (moved by an "
                                      f"operator, or fenced): hand the lease over",
                        promise.epoch)
    return NextMove(Move.RENEW, f"this site holds epoch {promise.epoch}", promise.epoch)
