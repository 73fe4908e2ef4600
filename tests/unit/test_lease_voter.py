"""The voter keeps its promises across a restart: a new holder is stored before the answer,
and a restarted voter refuses everyone else for a full ttl (a real state store)."""

from pathlib import Path

from drd.daemon.lease_voter import LeaseVoter
from drd.domain.lease import Answer, Ask, LeaseSettings
from drd.state.store import StateStore

SETTINGS = LeaseSettings(ttl=6.0, renew_every=1.0, fence_margin=2.5)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_a_takeover_is_stored_and_survives_a_restart(tmp_path: Path) -> None:
    lost: set[str] = set()
    clock = Clock()
    with StateStore.initialise(tmp_path / "state", "c") as store:
        voter = LeaseVoter(store, "c", SETTINGS, lost.__contains__, clock)
        await voter.load()
        assert (await voter.answer("water/db", Ask("a", 1))).answer is Answer.GRANTED
        assert store.epoch("water/db").primary_site == "a"  # type: ignore[union-attr]
        clock.now += 3
        assert (await voter.answer("water/db", Ask("a", 1))).answer is Answer.GRANTED  # renewed
        clock.now += 6.5
        refused = await voter.answer("water/db", Ask("b", 2))
        assert refused.answer is Answer.REFUSED and "does not see a lost" in refused.reason
        lost.add("a")
        assert (await voter.answer("water/db", Ask("b", 2))).answer is Answer.GRANTED
        stored = store.epoch("water/db")
        assert stored is not None and (stored.primary_site, stored.epoch) == ("b", 2)

    with StateStore.open(tmp_path / "state", "c") as store:
        clock.now = 5.0  # a new process: its monotonic clock starts elsewhere
        voter = LeaseVoter(store, "c", SETTINGS, lost.__contains__, clock)
        await voter.load()
        assert voter.remaining("water/db") == SETTINGS.ttl
        lost.add("b")
        refused = await voter.answer("water/db", Ask("a", 3))
        assert refused.answer is Answer.REFUSED and "promised to b" in refused.reason
        clock.now += SETTINGS.ttl
        assert (await voter.answer("water/db", Ask("a", 3))).answer is Answer.GRANTED


async def test_the_holders_own_vote_never_sees_itself_lost(tmp_path: Path) -> None:
    clock = Clock()
    with StateStore.initialise(tmp_path / "state", "a") as store:
        voter = LeaseVoter(store, "a", SETTINGS, lambda _site: True, clock)
        assert (await voter.answer("g", Ask("a", 1))).answer is Answer.GRANTED
        clock.now += 60  # a's own promise ran out: a did not renew
        refused = await voter.answer("g", Ask("b", 2))
        assert refused.answer is Answer.REFUSED and "does not see a lost" in refused.reason


async def test_a_handed_over_epoch_learnt_from_peers_lets_this_site_claim_at_once(
        tmp_path: Path) -> None:
    """A site that returned with a stale epoch learns from a majority that b held epoch 2
    and handed it over (a failback moved the images here): it may claim 3 at once."""
    clock = Clock()
    with StateStore.initialise(tmp_path / "state", "a") as store:
        voter = LeaseVoter(store, "a", SETTINGS, lambda _site: False, clock)
        assert (await voter.answer("g", Ask("a", 1))).answer is Answer.GRANTED
        await voter.adopt("g", "b", 2, released=True)
        view = voter.view("g", "refused", "")
        assert (view.holder, view.epoch, view.released) == ("b", 2, True)
        assert (await voter.answer("g", Ask("b", 2))).answer is Answer.REFUSED  # final
        assert (await voter.answer("g", Ask("a", 3))).answer is Answer.GRANTED
        stored = store.epoch("g")
        assert stored is not None and (stored.primary_site, stored.epoch) == ("a", 3)
