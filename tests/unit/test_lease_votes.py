"""What a voter answers, rule by rule (the simulation in test_lease_simulation proves
that together they never let two sites hold a lease)."""

import pytest

from drd.domain.lease import (
    Answer,
    Ask,
    LeaseSettings,
    Promise,
    held_until,
    must_fence,
    release,
    restored,
    vote,
)

S = LeaseSettings(ttl=6.0, renew_every=1.0, fence_margin=2.5, drift=0.01)
TO_A = Promise("a", 3, until=100.0)


def test_the_first_ask_is_granted_for_a_ttl_from_its_arrival() -> None:
    result = vote(None, Ask("a", 1), 50.0, S, holder_lost=False)
    assert result.answer is Answer.GRANTED
    assert result.promise == Promise("a", 1, 56.0)


def test_the_holder_renews_at_its_epoch() -> None:
    result = vote(TO_A, Ask("a", 3), 97.0, S, holder_lost=False)
    assert result.answer is Answer.GRANTED and result.promise == Promise("a", 3, 103.0)


def test_another_site_is_refused_while_the_promise_runs_even_if_the_holder_looks_lost() -> None:
    result = vote(TO_A, Ask("b", 4), 99.9, S, holder_lost=True)
    assert result.answer is Answer.REFUSED and result.promise == TO_A
    assert "promised to a" in result.reason


def test_the_witness_vetoes_a_takeover_while_it_still_sees_the_holder() -> None:
    result = vote(TO_A, Ask("b", 4), 100.0, S, holder_lost=False)
    assert result.answer is Answer.REFUSED and result.promise == TO_A
    assert "does not see a lost" in result.reason


def test_a_takeover_needs_a_higher_epoch() -> None:
    assert vote(TO_A, Ask("b", 3), 101.0, S, holder_lost=True).answer is Answer.REFUSED
    assert vote(TO_A, Ask("b", 2), 101.0, S, holder_lost=True).answer is Answer.REFUSED
    result = vote(TO_A, Ask("b", 4), 101.0, S, holder_lost=True)
    assert result.answer is Answer.GRANTED and result.promise == Promise("b", 4, 107.0)


def test_a_stale_holder_is_refused_and_told_why() -> None:
    to_b = Promise("b", 4, until=107.0)
    result = vote(to_b, Ask("a", 3), 102.0, S, holder_lost=False)
    assert result.answer is Answer.REFUSED and "stale" in result.reason
    assert vote(to_b, Ask("a", 3), 200.0, S, holder_lost=True).answer is Answer.REFUSED


def test_a_lease_released_by_its_holder_goes_at_once_to_a_higher_epoch() -> None:
    assert release(TO_A, "b", 3, 50.0) == TO_A  # only the holder releases
    assert release(TO_A, "a", 2, 50.0) == TO_A  # at its own epoch
    released = release(TO_A, "a", 3, 50.0)
    assert released == Promise("a", 3, 50.0, released=True)
    assert vote(released, Ask("b", 3), 50.0, S, holder_lost=False).answer is Answer.REFUSED
    handed = vote(released, Ask("b", 4), 50.0, S, holder_lost=False)
    assert handed.answer is Answer.GRANTED and "handed" in handed.reason
    # A release is final: a renewal sent before it, or while the holder's Ceph did not
    # say where its images are, arrives later and must not take the lease back.
    late = vote(released, Ask("a", 3), 50.0, S, holder_lost=False)
    assert late.answer is Answer.REFUSED and late.promise == released
    again = vote(released, Ask("a", 4), 50.0, S, holder_lost=False)
    assert again.answer is Answer.GRANTED and again.promise == Promise("a", 4, 56.0)


def test_a_restarted_voter_keeps_its_promise_a_full_ttl() -> None:
    assert restored(TO_A, 5.0, S) == Promise("a", 3, 11.0)
    assert restored(None, 5.0, S) is None


def test_a_majority_of_three_is_two_and_the_lease_counts_from_the_ask() -> None:
    assert held_until(10.0, 1, 3, S) is None
    assert held_until(10.0, 2, 3, S) == pytest.approx(10.0 + 6.0 * 0.99)


def test_a_holder_fences_itself_before_its_lease_runs_out() -> None:
    until = held_until(10.0, 2, 3, S)
    assert not must_fence(12.0, until, S)
    assert must_fence(until - S.fence_margin, until, S)  # type: ignore[operator]
    assert must_fence(0.0, None, S)


@pytest.mark.parametrize("settings", [
    {"ttl": 1.0, "renew_every": 1.0},
    {"ttl": 6.0, "renew_every": 1.0, "fence_margin": 5.0},
    {"drift": 0.6},
])
def test_settings_that_could_not_fence_in_time_are_refused(settings: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="need"):
        LeaseSettings(**settings)
