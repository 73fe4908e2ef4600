"""The chaos invariants judged from observations: split brains found however short, writes
acknowledged beside another primary caught, lost writes counted exactly."""

from drd.chaos.invariants import (
    AckedWrite,
    Sample,
    first_primary,
    judge,
    lost_writes,
    overlaps,
    split_brain_writes,
)


def looks(site: str, states: list[bool | None], image: str = "i0", step: float = 1.0
          ) -> list[Sample]:
    return [Sample(n * step, site, image, primary) for n, primary in enumerate(states)]


def test_a_handover_between_samples_is_no_split_brain() -> None:
    samples = looks("a", [True, True, False, False]) + looks("b", [False, False, True, True])
    assert overlaps(samples) == []


def test_two_primaries_seen_together_for_one_interval_are_a_split_brain() -> None:
    samples = looks("a", [True, True, True, False]) + looks("b", [False, True, True, True])
    (found,) = overlaps(samples)
    assert (found.image, found.sites, found.start, found.end) == ("i0", ("a", "b"), 1.0, 2.0)


def test_an_unanswered_look_proves_nothing_either_way() -> None:
    # a frozen: its look at 1 s got no answer, so a is not known primary from 0 s to 2 s.
    samples = looks("a", [True, None, True, False]) + looks("b", [False, True, True, True])
    assert [(o.start, o.end) for o in overlaps(samples)] == []


def test_other_images_never_make_a_split_brain() -> None:
    samples = looks("a", [True, True], image="i0") + looks("b", [True, True], image="i1")
    assert overlaps(samples) == []


def write(site: str, at: float, block: int = 0, image: str = "i0") -> AckedWrite:
    return AckedWrite(image, block, site, at, f"digest-{site}-{block}")


def test_a_write_acknowledged_by_a_site_not_holding_the_lease_is_caught() -> None:
    writes = [write("a", 0.5), write("b", 0.9), write("a", 1.5), write("b", 2.5)]
    assert split_brain_writes(writes, handed_over_at=1.0) == [write("b", 0.9),
                                                              write("a", 1.5)]
    assert split_brain_writes(writes, handed_over_at=None) == [write("b", 0.9),
                                                               write("b", 2.5)]


def test_lost_writes_are_those_whose_block_holds_something_else() -> None:
    kept, lost, missing = write("a", 1, block=1), write("a", 2, block=2), write("a", 3, block=3)
    found = {("i0", 1): kept.digest, ("i0", 2): "zeros"}
    assert lost_writes([kept, lost, missing], found) == [lost, missing]


def test_first_primary_waits_for_every_image() -> None:
    samples = (looks("b", [False, True, True], image="i0")
               + looks("b", [False, False, True], image="i1"))
    assert first_primary(samples, "b", after=0.0) == 2.0
    assert first_primary(samples, "c", after=0.0) is None


def test_loss_beyond_the_rpo_and_an_unexpected_takeover_break_their_invariants() -> None:
    writes = [write("a", float(n), block=n) for n in range(20)]
    found = {("i0", n): writes[n].digest for n in range(5)}  # 5..19 lost: 14 s of writes
    verdicts = {v.invariant: v for v in judge(
        samples=looks("a", [True, True]), writes=writes, found=found, handed_over_at=None,
        expect_takeover=False,
        took_over=True, lost_allowed_seconds=10.0, converged=True, converge_detail="ok")}
    assert verdicts["one primary at a time"].held
    assert not verdicts["loss within the RPO"].held
    assert "15 of 20" in verdicts["loss within the RPO"].detail
    assert not verdicts["takeover as designed"].held
    held = judge(samples=[], writes=writes, found={("i0", n): w.digest
                                                   for n, w in enumerate(writes)},
                 handed_over_at=None, expect_takeover=True, took_over=True,
                 lost_allowed_seconds=None,
                 converged=True, converge_detail="ok")
    assert all(v.held for v in held)
