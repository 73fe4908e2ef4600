"""Who moves about a group's lease, and when."""

from drd.api.schemas import LeaseVoteOut
from drd.daemon.lease_quorum import newer_epoch_held
from drd.domain.failure_detector import PeerState
from drd.domain.lease import Promise
from drd.domain.site import SiteKind
from drd.domain.takeover import Move, NextMove, next_move

TO_A = Promise("a", 4, until=100.0)
KINDS = {"a": SiteKind.PRODUCTION, "b": SiteKind.SAME_CITY, "c": SiteKind.REMOTE}


def move(site: str, promise: Promise | None, *, primary: bool | None = False,
         holder: PeerState | None = None, remaining: float | None = None) -> NextMove:
    return next_move(site, KINDS[site], promise, primary_here=primary, holder_state=holder,
                     remaining=remaining)


def test_the_primary_site_claims_an_unheld_lease_and_the_others_wait_for_it() -> None:
    claim = move("a", None, primary=True)
    assert (claim.move, claim.epoch) == (Move.CLAIM, 1)
    assert move("b", None).move is Move.STAY


def test_the_holder_renews_at_its_epoch() -> None:
    renew = move("a", TO_A, primary=True, remaining=3.0)
    assert (renew.move, renew.epoch) == (Move.RENEW, 4)


def test_the_same_city_site_takes_over_a_lost_holder_once_its_lease_ran_out() -> None:
    assert move("b", TO_A, holder=PeerState.SUSPECT, remaining=0.0).move is Move.STAY
    assert move("b", TO_A, holder=PeerState.LOST, remaining=2.5).move is Move.WAIT
    take = move("b", TO_A, holder=PeerState.LOST, remaining=0.0)
    assert (take.move, take.epoch) == (Move.TAKE_OVER, 5)


def test_the_remote_site_and_a_returning_production_never_take_over() -> None:
    to_b = Promise("b", 5, until=100.0)
    assert move("c", to_b, holder=PeerState.LOST, remaining=0.0).move is Move.STAY
    back = move("a", to_b, primary=True, holder=PeerState.LOST, remaining=0.0)
    assert back.move is Move.STAY and "only the same-city site" in back.reason


def test_a_holder_whose_images_moved_away_hands_over_and_the_new_primary_claims() -> None:
    release = move("a", TO_A, primary=False)
    assert (release.move, release.epoch) == (Move.RELEASE, 4)
    assert move("a", TO_A, primary=None).move is Move.RENEW  # its Ceph did not say
    released = Promise("a", 4, until=100.0, released=True)
    claim = move("b", released, primary=True)
    assert (claim.move, claim.epoch) == (Move.CLAIM, 5)
    assert move("c", released, primary=False).move is Move.STAY


def test_a_holder_that_handed_over_never_renews_and_claims_anew_if_primary_again() -> None:
    released = Promise("b", 2, until=100.0, released=True)
    # Its Ceph not answering once (a resync of its copies) must not take the lease back
    # from the site the images moved to.
    assert move("b", released, primary=None).move is Move.STAY
    again = move("b", released, primary=False)
    assert (again.move, again.epoch) == (Move.RELEASE, 2)  # told again, for restarted voters
    back = move("b", released, primary=True)
    assert (back.move, back.epoch) == (Move.CLAIM, 3)


def vote_for(site: str, holder: str | None, epoch: int | None,
             released: bool = False) -> LeaseVoteOut:
    return LeaseVoteOut(site=site, answer="refused", reason="", holder=holder, epoch=epoch,
                        remaining_seconds=None, released=released)


def test_a_holder_learns_a_newer_epoch_only_from_a_majority_of_voters() -> None:
    # b lost its takeover vote but still names itself: a must not fence on b's word alone.
    alone = [vote_for("a", "a", 1), vote_for("b", "b", 2), vote_for("c", "a", 1)]
    assert newer_epoch_held(alone, 1, "a") is None
    # b won epoch 2 while a was away: b and c both name it.
    won = [vote_for("a", "a", 1), vote_for("b", "b", 2), vote_for("c", "b", 2)]
    found = newer_epoch_held(won, 1, "a")
    assert found is not None and (found.holder, found.epoch) == ("b", 2)
    assert newer_epoch_held(won, 2, "a") is None  # nothing newer than what a holds


def test_the_winner_renews_while_its_takeover_is_still_promoting() -> None:
    won = Promise("b", 2, 100.0)
    promoting = next_move("b", SiteKind.SAME_CITY, won, primary_here=False,
                          holder_state=None, remaining=5.0, taking_over=True)
    assert (promoting.move, promoting.epoch) == (Move.RENEW, 2)
    moved_away = next_move("b", SiteKind.SAME_CITY, won, primary_here=False,
                           holder_state=None, remaining=5.0)
    assert moved_away.move is Move.RELEASE
