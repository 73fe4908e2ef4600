"""A protection group's protection on its primary site, and the clock that times how
long a takeover's new primary stayed unprotected."""

from datetime import UTC, datetime, timedelta

from drd.domain.group_protection import (
    CopyReading,
    Protection,
    ProtectionClock,
    judge_group,
)
from drd.domain.rpo import RpoState

T0 = datetime(2026, 11, 22, 23, 0, tzinfo=UTC)


def copy(image: str, destination: str, site: str | None, state: RpoState = RpoState.OK, *,
         peer: str = "replaying", said: str = "") -> CopyReading:
    return CopyReading(image=image, destination=destination, site=site, rpo_state=state,
                       peer_state=peer, peer_description=said)


def both_within(image: str) -> list[CopyReading]:
    return [copy(image, "same_city", "a"), copy(image, "remote", "c")]


def test_every_copy_within_target_everywhere_is_protected() -> None:
    judged = judge_group(both_within("rbd/w/db-0") + both_within("rbd/w/db-1"))
    assert judged.state is Protection.PROTECTED
    assert "all 2 image(s)" in judged.reason


def test_the_lost_sites_copy_missing_leaves_the_group_degraded_and_names_it() -> None:
    judged = judge_group([copy("rbd/w/db-0", "same_city", "a", RpoState.UNKNOWN,
                               peer="unknown", said="peer unreachable"),
                          copy("rbd/w/db-0", "remote", "c")])
    assert judged.state is Protection.DEGRADED
    assert "same_city (a): unknown: peer unreachable" in judged.reason


def test_an_image_with_no_copy_within_target_anywhere_is_unprotected() -> None:
    judged = judge_group([*both_within("rbd/w/db-0"),
                          copy("rbd/w/db-1", "same_city", "a", RpoState.BREACH),
                          copy("rbd/w/db-1", "remote", "c", RpoState.WARN)])
    assert judged.state is Protection.UNPROTECTED
    assert "1 of 2 image(s)" in judged.reason and "rbd/w/db-1" in judged.reason


def test_a_copy_that_follows_no_one_does_not_count_however_fresh_its_data() -> None:
    """Right after a takeover, the remote copy still holds the old primary's last
    snapshot, within target by the clock, while rbd-mirror says it cannot replay."""
    judged = judge_group([
        copy("rbd/w/vol-0", "same_city", "a", RpoState.UNKNOWN, peer="unknown"),
        copy("rbd/w/vol-0", "remote", "c", RpoState.OK, peer="error",
             said="local image linked to unknown peer")])
    assert judged.state is Protection.UNPROTECTED
    judged = judge_group([copy("rbd/w/db-0", "remote", "c", RpoState.OK, peer="error",
                               said="split-brain detected")])
    assert judged.state is Protection.UNPROTECTED


def test_no_image_primary_here_is_said_so() -> None:
    assert judge_group([]).state is Protection.NOT_PRIMARY_HERE


def test_the_clock_times_a_takeover_from_unprotected_until_a_copy_follows_again() -> None:
    clock = ProtectionClock()
    clock.observe(judge_group([]), T0)  # b, before the takeover: a copy here
    lost_a = copy("rbd/w/db-0", "same_city", "a", RpoState.UNKNOWN, peer="unknown")
    clock.observe(judge_group([lost_a, copy("rbd/w/db-0", "remote", "c", peer="error")]),
                  T0 + timedelta(seconds=10))
    assert clock.state is Protection.UNPROTECTED
    assert clock.unprotected_since == T0 + timedelta(seconds=10)
    clock.observe(judge_group([lost_a, copy("rbd/w/db-0", "remote", "c", peer="syncing",
                                            state=RpoState.BREACH)]),
                  T0 + timedelta(seconds=30))
    assert clock.protected_again_seconds is None, "still no copy within target"
    clock.observe(judge_group([lost_a, copy("rbd/w/db-0", "remote", "c")]),
                  T0 + timedelta(seconds=52.5))
    assert str(clock.state) == "degraded"  # (mypy keeps the narrowing above)
    assert clock.protected_again_seconds == 42.5
    assert clock.protected_again_at == T0 + timedelta(seconds=52.5)
    # Unprotected again later: a new episode, timed afresh.
    clock.observe(judge_group([lost_a]), T0 + timedelta(seconds=100))
    assert clock.unprotected_since == T0 + timedelta(seconds=100)
    assert clock.protected_again_seconds is None


def test_a_group_that_moves_away_while_unprotected_is_not_called_protected_again() -> None:
    clock = ProtectionClock()
    clock.observe(judge_group([copy("rbd/w/db-0", "remote", "c", RpoState.BREACH)]), T0)
    clock.observe(judge_group([]), T0 + timedelta(seconds=5))
    assert clock.state is Protection.NOT_PRIMARY_HERE
    assert clock.protected_again_seconds is None
