"""What the RBD steps share: their parameters, per-image work in parallel, and the
lines that tell an operator what a step would do or did, per tenant."""

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

from pydantic import BaseModel

from drd.domain.rbd_step_decisions import Act, Decision
from drd.domain.replication_plan import ImageRef
from drd.domain.runbook_steps import AnyStep
from drd.runbooks.site_images import SiteImage
from drd.runbooks.step_api import IMAGE_PARALLEL, StepContext, StepFailed

P = TypeVar("P", bound=BaseModel)
T = TypeVar("T")
R = TypeVar("R")


def params_of(step: AnyStep, kind: type[P]) -> P:
    """The step's parameters as `kind`; StepFailed if the engine handed the wrong step."""
    params = getattr(step, "params", None)
    if not isinstance(params, kind):
        raise StepFailed(f"step {step.name} has no {kind.__name__} parameters")
    return params


async def each(items: Sequence[T], work: Callable[[T], Awaitable[R]],
               width: int = IMAGE_PARALLEL) -> list[R | BaseException]:
    """`await work(item)` for every item, `width` at once; each result or the exception
    it raised, in the order of `items`. For work that retries between librbd calls,
    which `step_api.for_each` (one blocking call per item) does not."""
    gate = asyncio.Semaphore(width)

    async def one(item: T) -> R | BaseException:
        async with gate:
            try:
                return await work(item)
            except Exception as error:  # each image's failure is reported, not raised
                return error

    return list(await asyncio.gather(*(one(item) for item in items)))


def refusals(images: Sequence[SiteImage], decisions: dict[ImageRef, Decision]) -> list[str]:
    return [f"{image.ref}: {decisions[image.ref].reason}" for image in images
            if decisions[image.ref].act is Act.REFUSE]


def refuse_if_any(images: Sequence[SiteImage], decisions: dict[ImageRef, Decision],
                  doing: str, site: str) -> None:
    """StepFailed before anything is done when any image must not be acted on."""
    refused = refusals(images, decisions)
    if refused:
        raise StepFailed(f"will not {doing} on site {site}, nothing done: {len(refused)} "
                         f"image(s) cannot be: " + "; ".join(refused))


def summary(context: StepContext, verb: str, site: str, images: Sequence[SiteImage], *,
            decisions: dict[ImageRef, Decision], labels: dict[Act, str]) -> list[str]:
    """One line per tenant, "demote 20 images of water on a: 18 primary, 2 already
    non-primary", then one per image that will not be done as asked."""
    lines = []
    for tenant in context.tenants():
        mine = [image for image in images if image.scoped.tenant == tenant]
        if not mine:
            lines.append(f"{verb}: no images of {tenant} in scope on {site}")
            continue
        counts: dict[Act, int] = {}
        for image in mine:
            act = decisions[image.ref].act
            counts[act] = counts.get(act, 0) + 1
        parts = [f"{counts[act]} {labels.get(act, act.value)}" for act in Act if act in counts]
        lines.append(f"{verb} {len(mine)} image{'s' if len(mine) != 1 else ''} of {tenant} "
                     f"on {site}: {', '.join(parts)}")
        lines += grouped({image.ref: decisions[image.ref].reason for image in mine
                          if decisions[image.ref].act in (Act.REFUSE, Act.WAIT)})
    return lines


def grouped(reasons: dict[ImageRef, str], shown: int = 3) -> list[str]:
    """One line per distinct reason, with how many images it holds for and a few of
    them: a plan over a hundred images stays readable."""
    by_reason: dict[str, list[ImageRef]] = {}
    for ref, reason in sorted(reasons.items()):
        by_reason.setdefault(reason, []).append(ref)
    lines = []
    for reason, refs in by_reason.items():
        if len(refs) == 1:
            lines.append(f"  {refs[0]}: {reason}")
            continue
        named = ", ".join(str(ref) for ref in refs[:shown])
        more = f" and {len(refs) - shown} more" if len(refs) > shown else ""
        lines.append(f"  {len(refs)} images ({named}{more}): {reason}")
    return lines


def failed_images(items: Sequence[SiteImage], results: Sequence[object]) -> list[str]:
    """`image: reason` for each failed result of `each` or `for_each`."""
    return [f"{item.ref}: {result}" for item, result in zip(items, results, strict=True)
            if isinstance(result, BaseException)]
