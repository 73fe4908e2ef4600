"""The invariants of DESIGN.md section 4, judged from what a chaos run observed: samples of
which site held each image as primary, and every write the load got acknowledged.

Pure: the runner gathers the observations, this module only reads them. Judgements are
conservative in the direction of safety: a site counts as primary between two samples
only when both samples say so, yet one such span overlapping another site's is a split
brain, however short.
"""

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import pairwise


@dataclass(frozen=True)
class Sample:
    """One look at one image on one site; `primary` None when the site did not answer."""

    at: float  # seconds since the run began
    site: str
    image: str
    primary: bool | None


@dataclass(frozen=True)
class AckedWrite:
    """A write the load got acknowledged: where, when, and what it wrote."""

    image: str
    block: int
    site: str
    acked_at: float
    digest: str


@dataclass(frozen=True)
class Span:
    site: str
    image: str
    start: float
    end: float


@dataclass(frozen=True)
class Overlap:
    """Two sites both primary for one image for a while: a split brain."""

    image: str
    sites: tuple[str, str]
    start: float
    end: float


@dataclass(frozen=True)
class Verdict:
    invariant: str
    held: bool
    detail: str


def primary_spans(samples: Iterable[Sample]) -> list[Span]:
    """For each site and image, the spans between consecutive samples that both saw it
    primary. A sample that got no answer ends a span: nothing is known after it."""
    by_copy: dict[tuple[str, str], list[Sample]] = defaultdict(list)
    for sample in samples:
        by_copy[(sample.site, sample.image)].append(sample)
    spans = []
    for (site, image), seen in by_copy.items():
        seen.sort(key=lambda s: s.at)
        spans += [Span(site, image, before.at, after.at)
                  for before, after in pairwise(seen)
                  if before.primary and after.primary]
    return spans


def overlaps(samples: Iterable[Sample]) -> list[Overlap]:
    """Every stretch of time two sites both held one image as primary."""
    spans = primary_spans(samples)
    found = []
    for index, first in enumerate(spans):
        for second in spans[index + 1:]:
            if first.image != second.image or first.site == second.site:
                continue
            start, end = max(first.start, second.start), min(first.end, second.end)
            if start < end:
                low, high = sorted((first.site, second.site))
                found.append(Overlap(first.image, (low, high), start, end))
    return found


def split_brain_writes(writes: Iterable[AckedWrite], handed_over_at: float | None,
                       old: str = "a", new: str = "b") -> list[AckedWrite]:
    """Writes acknowledged by a site that did not hold the lease then: by `new` before the
    lease moved to it at `handed_over_at` (never, if None), by `old` after."""
    def holder(at: float) -> str:
        return old if handed_over_at is None or at < handed_over_at else new
    return [write for write in writes if write.site != holder(write.acked_at)]


def lost_writes(writes: Iterable[AckedWrite], found: dict[tuple[str, int], str]
                ) -> list[AckedWrite]:
    """Acknowledged writes whose block no longer holds what they wrote. Each write of a
    run has a block of its own, so no later write can have replaced it."""
    return [write for write in writes if found.get((write.image, write.block)) != write.digest]


def loss_window(lost: Sequence[AckedWrite]) -> float:
    """Seconds from the first lost write's acknowledgement to the last one's."""
    if not lost:
        return 0.0
    times = [write.acked_at for write in lost]
    return max(times) - min(times)


def first_primary(samples: Iterable[Sample], site: str, after: float) -> float | None:
    """When every image was first seen primary on `site` after `after`; None if never."""
    firsts: dict[str, float] = {}
    images: set[str] = set()
    for sample in sorted(samples, key=lambda s: s.at):
        images.add(sample.image)
        if sample.site == site and sample.primary and sample.at >= after:
            firsts.setdefault(sample.image, sample.at)
    if not images or set(firsts) != images:
        return None
    return max(firsts.values())


def judge(*, samples: Sequence[Sample], writes: Sequence[AckedWrite],
          found: dict[tuple[str, int], str], handed_over_at: float | None,
          expect_takeover: bool, took_over: bool,
          lost_allowed_seconds: float | None, converged: bool, converge_detail: str
          ) -> list[Verdict]:
    """Every invariant, held or not, with the figures that decided it.

    `lost_allowed_seconds` None: no acknowledged write may be lost; otherwise the loss
    window may span at most that many seconds (the group's RPO target).
    """
    split = overlaps(samples)
    stray = split_brain_writes(writes, handed_over_at)
    lost = lost_writes(writes, found)
    window = loss_window(lost)
    verdicts = [
        Verdict("one primary at a time", not split and not stray,
                f"{len(split)} overlapping primary spans"
                + (f" over {_covered(split):.1f} s" if split else "")
                + f", {len(stray)} writes acknowledged by a site not holding the lease"
                + "".join(f"; {o.image} on {'+'.join(o.sites)} {o.start:.1f}-{o.end:.1f} s"
                          for o in split[:3])),
    ]
    if lost_allowed_seconds is None:
        verdicts.append(Verdict("no acknowledged write lost", not lost,
                                f"{len(lost)} of {len(writes)} acknowledged writes lost"))
    else:
        verdicts.append(Verdict(
            "loss within the RPO", window <= lost_allowed_seconds,
            f"{len(lost)} of {len(writes)} acknowledged writes lost, spanning {window:.1f} s "
            f"(RPO target {lost_allowed_seconds:.0f} s)"))
    verdicts.append(Verdict("takeover as designed", took_over == expect_takeover,
                            f"takeover {'happened' if took_over else 'did not happen'}; "
                            f"expected {'one' if expect_takeover else 'none'}"))
    verdicts.append(Verdict("converged", converged, converge_detail))
    return verdicts


def _covered(found: Sequence[Overlap]) -> float:
    """Seconds during which any image had two primaries (overlapping stretches merged)."""
    total, end = 0.0, float("-inf")
    for overlap in sorted(found, key=lambda o: o.start):
        if overlap.end > end:
            total += overlap.end - max(overlap.start, end)
            end = overlap.end
    return total
