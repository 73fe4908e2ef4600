"""RBD steps that change which site is primary: demote, promote, guarded forced promote,
and a mirror snapshot now.

Each looks before it acts: an image already as the step wants it is left alone and
said so, so a step repeated after a crash or a resume doubles nothing. An image the
step must not act on (not mirrored, mirroring still being enabled) fails the step
before any image is touched.

Forced promotion and replay from the lost site, measured on Ceph 16.2.15: rbd-mirror
replays nothing into a primary image. In journal mode the forced promotion opens a new
journal tag owned by this site and, with the lost peer alive, the replayer stops at
once ("stopped", then "local image is primary"); with the peer's cluster dead it keeps
the image's lock for good, and drd fences it (drd.runbooks.stuck_replay). In snapshot
mode librbd first has rbd-mirror shut its replayer down (status "orphan (force
promoting)", 2 s with the peer alive, 5-8 s with it dead) and then takes a primary
snapshot. Beyond that, drd fences the lost site's writers where it can reach them.
"""

import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_delay, wait_fixed

from drd.ceph import rbd_fencing, rbd_images, rbd_promotion
from drd.ceph.rbd_promotion import NotPropagated, NotWritableYet
from drd.domain.loss_window import HeldUpTo, journal_copy_held, loss_window, snapshot_copy_held
from drd.domain.rbd_step_decisions import (
    Act,
    Decision,
    demote_decision,
    fence_decision,
    promote_decision,
)
from drd.domain.replication_plan import ImageRef, MirrorMode, ObservedImage
from drd.domain.runbook_steps import AnyStep, ForcePromoteParams, PromoteParams, SiteParams
from drd.runbooks.image_work import (
    each,
    failed_images,
    params_of,
    refuse_if_any,
    summary,
)
from drd.runbooks.site_images import SiteImage, images_on, on_site
from drd.runbooks.step_api import (
    IMAGE_PARALLEL,
    ImageThreads,
    StepContext,
    StepFailed,
    for_each,
)
from drd.runbooks.stuck_replay import (
    LOST_SITE_GRACE_SECONDS,
    RELEASE_GRACE_SECONDS,
    StuckReplayers,
)

PROMOTE_RETRY_SECONDS = 0.1  # measured: a demotion reaches the peer in 0.1-1 s
# How long a promoted copy may stay unwritable while the local rbd-mirror lets go of it.
WRITABLE_PATIENCE_SECONDS = 60.0
_PROMOTE_LABELS = {Act.ACT: "non-primary", Act.SKIP: "already primary or not mirrored",
                   Act.REFUSE: "refused"}


def _decided(images: list[SiteImage],
             decide: Callable[[ObservedImage], Decision]) -> dict[ImageRef, Decision]:
    return {image.ref: decide(image.observed) for image in images}


def _to_act(images: list[SiteImage], decisions: dict[ImageRef, Decision]) -> list[SiteImage]:
    return [image for image in images if decisions[image.ref].act is Act.ACT]


def _per_mode(images: list[SiteImage]) -> dict[str, int]:
    counts = {mode.value: 0 for mode in MirrorMode}
    for image in images:
        if image.mode is not None:
            counts[image.mode.value] += 1
    return counts


class RbdDemote:
    """`rbd_demote {site}`: every primary image in scope on the site becomes non-primary."""

    async def plan(self, step: AnyStep, context: StepContext) -> list[str]:
        site = context.site(params_of(step, SiteParams).site)
        images = await images_on(context, site)
        return summary(context, "demote", site, images,
                       decisions=_decided(images, demote_decision),
                       labels={Act.ACT: "primary", Act.SKIP: "already non-primary",
                               Act.REFUSE: "refused"})

    async def run(self, step: AnyStep, context: StepContext) -> None:
        site = context.site(params_of(step, SiteParams).site)
        images = await images_on(context, site)
        decisions = _decided(images, demote_decision)
        refuse_if_any(images, decisions, "demote", site)
        work = _to_act(images, decisions)
        handle = context.sites.cluster(site)
        results = await for_each(work, lambda image: handle.run(
            lambda cluster: rbd_promotion.demote(cluster, image.ref)))
        done = [image for image, result in zip(work, results, strict=True) if result is True]
        # Demoted meanwhile by someone else: found non-primary when opened.
        raced = [image for image, result in zip(work, results, strict=True) if result is False]
        out = context.output
        for image in done:
            out.say(f"{image.ref}: demoted on {site} ({_mode_of(image)})")
        failed = failed_images(work, results)
        out.facts["demoted"] = _per_mode(done)
        out.facts["already_non_primary"] = len(images) - len(work) + len(raced)
        if failed:
            raise StepFailed(f"demoting on site {site} failed for {len(failed)} of "
                             f"{len(work)} image(s): " + "; ".join(failed))
        out.facts["demoted_at"] = context.now().isoformat()
        out.say(f"{len(done)} image(s) demoted on {site}, "
                f"{out.facts['already_non_primary']} already non-primary")


class RbdPromote:
    """`rbd_promote {site, propagation_timeout}`: every non-primary image in scope on the
    site becomes primary, each retried while its peer's demotion propagates."""

    async def plan(self, step: AnyStep, context: StepContext) -> list[str]:
        site = context.site(params_of(step, PromoteParams).site)
        images = await images_on(context, site)
        return summary(context, "promote", site, images,
                       decisions=_decided(images, promote_decision), labels=_PROMOTE_LABELS)

    async def run(self, step: AnyStep, context: StepContext) -> None:
        params = params_of(step, PromoteParams)
        site = context.site(params.site)
        images = await images_on(context, site)
        decisions = _decided(images, promote_decision)
        refuse_if_any(images, decisions, "promote", site)
        await _promote(context, site, images, decisions, force=False,
                       patience=params.propagation_timeout.total_seconds())


class RbdForcePromote:
    """`rbd_force_promote {site, lost}`: fence the lost site's writers where its Ceph
    answers, then force-promote every non-primary image in scope on the site."""

    async def plan(self, step: AnyStep, context: StepContext) -> list[str]:
        params = params_of(step, ForcePromoteParams)
        site, lost = context.site(params.site), context.site(params.lost)
        images = await images_on(context, site)
        lines = summary(context, "force-promote", site, images,
                        decisions=_decided(images, _force_decision), labels=_PROMOTE_LABELS)
        try:
            primaries = [i for i in await images_on(context, lost) if i.observed.primary]
        except StepFailed as error:
            return [f"first fence: site {lost}'s Ceph cannot be read now ({error}); "
                    f"nothing would be fenced", *lines]
        return [f"first fence: blocklist on {lost} the clients of {len(primaries)} image(s) "
                f"still primary there", *lines]

    async def run(self, step: AnyStep, context: StepContext) -> None:
        params = params_of(step, ForcePromoteParams)
        site, lost = context.site(params.site), context.site(params.lost)
        if site == lost:
            raise StepFailed(f"site {site} cannot take over from itself")
        out = context.output
        started = time.monotonic()

        def mark(phase: str) -> None:  # where the RTO goes, for operators and the bench
            out.facts.setdefault("phase_seconds", {})[phase] = round(
                time.monotonic() - started, 3)

        images = await images_on(context, site)
        decisions = _decided(images, _force_decision)
        refuse_if_any(images, decisions, "force-promote", site)
        mark("images read")
        await _fence(context, lost)
        mark("lost site fenced")
        held = await _held_up_to(context, site, _to_act(images, decisions))
        mark("replayed positions read")
        lost_drd = not context.sites.peer_reachable(lost)
        stuck = StuckReplayers(site, LOST_SITE_GRACE_SECONDS if lost_drd
                               else RELEASE_GRACE_SECONDS)
        if lost_drd:
            await stuck.fence_before(context, [i.ref for i in _to_act(images, decisions)])
            mark("stuck replayers fenced")
        await _promote(context, site, images, decisions, force=True, patience=0.0,
                       stuck=stuck)
        mark("promoted")
        await stuck.restart_fenced(context)
        mark("replayers restarted")
        out.say("phases (seconds from the step's start): " + ", ".join(
            f"{phase} {at}" for phase, at in out.facts["phase_seconds"].items()))
        writable = datetime.fromisoformat(out.facts["writable_at"])
        seconds, line = loss_window(list(held.values()), writable)
        out.facts["loss_window_seconds"] = seconds
        out.facts["held_up_to"] = {str(ref): {"as_of": h.as_of.isoformat() if h.as_of
                                              else None, "detail": h.detail}
                                   for ref, h in held.items()}
        out.say(line)


async def _held_up_to(context: StepContext, site: str,
                      images: list[SiteImage]) -> dict[ImageRef, HeldUpTo]:
    """How far each copy had replayed the lost primary, read before the promotion."""
    handle = context.sites.cluster(site)
    snapshot_mode = [i for i in images if i.mode is MirrorMode.SNAPSHOT]
    results = await for_each(snapshot_mode, lambda image: handle.run(
        lambda cluster: rbd_images.mirror_snapshots(cluster, image.ref)))
    held = {image.ref: journal_copy_held(image.status) for image in images
            if image.mode is not MirrorMode.SNAPSHOT}
    for image, result in zip(snapshot_mode, results, strict=True):
        held[image.ref] = (HeldUpTo(None, f"its snapshots cannot be read: {result}")
                           if isinstance(result, BaseException)
                           else snapshot_copy_held(result))
    return held


def _force_decision(image: ObservedImage) -> Decision:
    return promote_decision(image, force=True)


async def _fence(context: StepContext, lost: str) -> None:
    """Blocklist at the lost site every client holding an image in scope that is still
    primary there; say so, and fence nothing, when its Ceph cannot be reached."""
    out = context.output
    try:
        primaries = [image for image in await images_on(context, lost)
                     if image.observed.primary]
    except StepFailed as error:
        out.facts["fenced"] = []
        out.facts["fence_skipped"] = str(error)
        out.say(f"site {lost}'s Ceph cannot be reached ({error}): no client fenced there; "
                f"the lost site must fence itself (demote, or stop) when it loses quorum")
        return
    handle = context.sites.cluster(lost)
    results = await for_each(primaries, lambda image: handle.run(
        lambda cluster: rbd_fencing.image_holders(cluster, image.ref)))
    failed = failed_images(primaries, results)
    if failed:
        raise StepFailed(f"cannot list the clients holding images on {lost}, so nothing was "
                         f"fenced or promoted: " + "; ".join(failed))
    holders: dict[str, dict[str, Any]] = {}
    for image, found in zip(primaries, results, strict=True):
        for holder in found if isinstance(found, list) else []:
            decision = fence_decision(holder.entity)
            entry = holders.setdefault(holder.address, {
                "address": holder.address, "client": holder.client, "user": holder.entity,
                "fence": decision.act is Act.ACT, "reason": decision.reason, "images": []})
            entry["images"].append(f"{image.ref} ({holder.how})")
    fenced = [entry for entry in holders.values() if entry["fence"]]
    for entry in fenced:
        await _blocklist(context, lost, entry["address"], f"blocklisting {entry['client']} at "
                                                          f"{entry['address']}, so nothing "
                                                          f"was promoted")
        out.say(f"fenced {entry['client']} at {entry['address']} on {lost} (osd blocklist, "
                f"{rbd_fencing.FENCE_SECONDS / 3600:.0f} h; {entry['reason']}): held "
                f"{', '.join(entry['images'])}")
    for entry in holders.values():
        if not entry["fence"]:
            out.say(f"left {entry['client']} at {entry['address']} on {lost} alone "
                    f"({entry['reason']}): held {', '.join(entry['images'])}")
    out.facts["fenced"] = [_fence_fact(entry) for entry in fenced]
    out.facts["spared"] = [_fence_fact(entry) for entry in holders.values()
                           if not entry["fence"]]
    if not fenced:
        out.say(f"site {lost}'s Ceph answers: no client that may write holds any of the "
                f"{len(primaries)} image(s) in scope still primary there; nothing fenced")


def _fence_fact(entry: dict[str, Any]) -> dict[str, Any]:
    return {key: entry[key] for key in ("address", "client", "user", "reason", "images")}


async def _blocklist(context: StepContext, site: str, address: str, doing: str) -> None:
    await on_site(context, site, lambda cluster: rbd_fencing.blocklist(cluster, address), doing)


async def _promote(context: StepContext, site: str, images: list[SiteImage],
                   decisions: dict[ImageRef, Decision], *, force: bool, patience: float,
                   stuck: StuckReplayers | None = None) -> None:
    """Promote the images to act on; each counts once a writer can take its lock. With
    `stuck`, a copy whose local replayer keeps its lock has that replayer fenced."""
    handle = context.sites.cluster(site)
    work = _to_act(images, decisions)
    threads = ImageThreads(min(IMAGE_PARALLEL, len(work)))

    async def promote(image: SiteImage) -> Any:
        retrying = AsyncRetrying(retry=retry_if_exception_type(NotPropagated),
                                 stop=stop_after_delay(patience),
                                 wait=wait_fixed(PROMOTE_RETRY_SECONDS), reraise=True)
        async for attempt in retrying:
            with attempt:
                done = await threads.run(lambda: handle.run(
                    lambda cluster: rbd_promotion.promote(cluster, image.ref, force)))
        # Writable only once a writer can take the lock; writable_at means that.
        if stuck is None:
            await prove_writable(image, WRITABLE_PATIENCE_SECONDS)
        else:
            try:
                await prove_writable(image, stuck.grace)
            except NotWritableYet:
                await stuck.release(context, image.ref)
                await prove_writable(image, WRITABLE_PATIENCE_SECONDS)
        return (done, context.now())

    async def prove_writable(image: SiteImage, patience: float) -> None:
        writable = AsyncRetrying(retry=retry_if_exception_type(NotWritableYet),
                                 stop=stop_after_delay(patience),
                                 wait=wait_fixed(PROMOTE_RETRY_SECONDS), reraise=True)
        async for attempt in writable:
            with attempt:
                await threads.run(lambda: handle.run(
                    lambda cluster: rbd_promotion.prove_writable(cluster, image.ref)))

    with threads:
        results = await each(work, promote)
    out = context.output
    how = "force-promoted" if force else "promoted"
    promoted = []
    for image, result in zip(work, results, strict=True):
        if isinstance(result, tuple) and result[0]:
            promoted.append((image, result[1]))
            out.say(f"{image.ref}: {how} on {site} at {result[1]:%H:%M:%S.%f} "
                    f"({_mode_of(image)})")
    failed = failed_images(work, results)
    out.facts["promoted"] = _per_mode([image for image, _ in promoted])
    out.facts["already_primary"] = len(images) - len(promoted) - len(failed)
    if failed:
        doing = "force-promoting" if force else "promoting"
        raise StepFailed(f"{doing} on site {site} failed for {len(failed)} of {len(work)} "
                         f"image(s): " + "; ".join(failed))
    writable = max((at for _, at in promoted), default=context.now())
    out.facts["writable_at"] = writable.isoformat()
    out.say(f"{len(promoted)} image(s) {how} on {site}, {out.facts['already_primary']} "
            f"already primary or not mirrored; all writable at {writable:%H:%M:%S.%f}")


class MirrorSnapshot:
    """`mirror_snapshot {site}`: a mirror snapshot now of every snapshot-mode primary image
    in scope on the site, so that what was written so far ships to every peer."""

    async def plan(self, step: AnyStep, context: StepContext) -> list[str]:
        site = context.site(params_of(step, SiteParams).site)
        images = await images_on(context, site)
        return summary(context, "mirror-snapshot", site, images,
                       decisions=_snapshot_decisions(images),
                       labels={Act.ACT: "snapshot-mode primary", Act.SKIP: "skipped"})

    async def run(self, step: AnyStep, context: StepContext) -> None:
        site = context.site(params_of(step, SiteParams).site)
        images = await images_on(context, site)
        work = _to_act(images, _snapshot_decisions(images))
        handle = context.sites.cluster(site)
        results = await for_each(work, lambda image: handle.run(
            lambda cluster: rbd_images.take_mirror_snapshot(cluster, image.ref)))
        failed = failed_images(work, results)
        taken = {str(image.ref): result for image, result in zip(work, results, strict=True)
                 if isinstance(result, int)}
        context.output.facts["snapshots"] = taken
        if failed:
            raise StepFailed(f"mirror snapshots on site {site} failed for {len(failed)} of "
                             f"{len(work)} image(s): " + "; ".join(failed))
        context.output.facts["taken_at"] = context.now().isoformat()
        context.output.say(f"took a mirror snapshot of {len(taken)} image(s) on {site}; "
                           f"{len(images) - len(work)} skipped (journal mode, non-primary "
                           f"or not mirrored)")


def _snapshot_decisions(images: list[SiteImage]) -> dict[ImageRef, Decision]:
    decisions = {}
    for image in images:
        observed = image.observed
        if observed.mode is MirrorMode.SNAPSHOT and observed.primary:
            decisions[image.ref] = Decision(Act.ACT, "snapshot-mode primary: snapshot")
        elif observed.mode is MirrorMode.JOURNAL:
            decisions[image.ref] = Decision(Act.SKIP, "journal mode ships every write")
        else:
            decisions[image.ref] = Decision(Act.SKIP, "non-primary or not mirrored here")
    return decisions


def _mode_of(image: SiteImage) -> str:
    return f"{image.mode.value} mode" if image.mode is not None else "mode unknown"
