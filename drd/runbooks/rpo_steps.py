"""`rpo_within {site, bound, lost}`: the measured RPO of every image in scope, primary on the
site, is within its bound at each destination.

The step measures as the daemon's replication service does: snapshot mode from the
mirror snapshots on both sides (the peer's newest complete copy, dated by the primary's
snapshot), journal mode from the journal's commit positions, sampled every 0.2 s. A
journal peer behind a position the step saw the primary at is dated once it passes that
position; one that has not passed it after `bound` seconds is over the bound by
definition. An RPO that cannot be measured fails the step: it is never counted as
within.
"""

import asyncio
from datetime import timedelta
from functools import partial
from typing import Any, Protocol, runtime_checkable

from drd.ceph import rbd_images
from drd.domain.journal_position import JournalRpoTracker
from drd.domain.replication_plan import ImageRef, MirrorMode
from drd.domain.rpo import snapshot_rpo
from drd.domain.rpo_bounds import RpoVerdict, destination_bounds, judge_reading
from drd.domain.runbook_steps import AnyStep, RpoParams
from drd.domain.site import SiteKind
from drd.runbooks.image_work import params_of
from drd.runbooks.site_images import SiteImage, images_on, namespaces_of, on_site
from drd.runbooks.step_api import StepContext, StepFailed

SAMPLE_SECONDS = 0.2
Pair = tuple[ImageRef, str]  # an image and one destination site


@runtime_checkable
class SiteKinds(Protocol):
    """Site access that also knows each site's fixed kind (ConfiguredSites does)."""

    def kind(self, site: str) -> SiteKind: ...


class RpoWithin:
    async def plan(self, step: AnyStep, context: StepContext) -> list[str]:
        params = params_of(step, RpoParams)
        site = context.site(params.site)
        images = await images_on(context, site)
        bound = (f"{params.bound.total_seconds():g} s" if params.bound is not None
                 else "each destination's target in the tenant's policy")
        return [f"check that the RPO of {len(images)} image(s) primary on {site} is within "
                f"{bound} at each destination"]

    async def run(self, step: AnyStep, context: StepContext) -> None:
        params = params_of(step, RpoParams)
        site = context.site(params.site)
        images = await images_on(context, site)
        not_primary = [f"{image.ref}: not primary on {site}" for image in images
                       if image.mode is None or not image.observed.primary]
        if not_primary:
            raise StepFailed("cannot measure RPO from " + site + ": " + "; ".join(not_primary))
        bounds = await _bounds(context, site, images, params.bound)
        out = context.output
        if params.lost is not None:
            lost = context.site(params.lost)
            left_out = sorted(str(ref) for ref, dest in bounds if dest == lost)
            bounds = {pair: bound for pair, bound in bounds.items() if pair[1] != lost}
            if left_out:
                out.facts["unprotected_at_lost_site"] = {lost: left_out}
                out.say(f"{len(left_out)} image(s) have no copy that follows them at {lost}, "
                        f"the lost site: unprotected there until a failback")
        modes = {image.ref: image.mode for image in images}
        verdicts = await _snapshot_verdicts(
            context, site, {p: b for p, b in bounds.items()
                            if modes[p[0]] is MirrorMode.SNAPSHOT})
        verdicts |= await _journal_verdicts(
            context, site, {p: b for p, b in bounds.items()
                            if modes[p[0]] is MirrorMode.JOURNAL})
        out.facts["rpo"] = {f"{ref}@{dest}": verdict.reason
                            for (ref, dest), verdict in sorted(verdicts.items())}
        bad = [f"{ref} at {dest}: {verdict.reason}"
               for (ref, dest), verdict in sorted(verdicts.items()) if verdict.within is not True]
        if bad:
            raise StepFailed(f"{len(bad)} of {len(verdicts)} RPO reading(s) from {site} are not "
                             f"within their bound: " + "; ".join(bad))
        for (ref, dest), verdict in sorted(verdicts.items()):
            out.say(f"{ref} at {dest}: {verdict.reason}")
        out.say(f"all {len(verdicts)} RPO reading(s) of {len(images)} image(s) from {site} "
                f"are within their bound")


async def _bounds(context: StepContext, site: str, images: list[SiteImage],
                  bound: timedelta | None) -> dict[Pair, timedelta]:
    """Each (image, destination site) to measure, with the bound it must meet. The
    destinations are the pool's mirror peers on the site."""
    pools = sorted({image.ref.pool for image in images})
    peers: dict[str, list[str]] = {}
    for pool in pools:
        peers[pool] = sorted(await on_site(context, site, partial(
            rbd_images.peer_mirror_uuids, pool=pool), f"listing the mirror peers of {pool}"))
    kinds = context.sites if isinstance(context.sites, SiteKinds) else None
    if bound is None and kinds is None:
        raise StepFailed("give the step a bound: this run cannot tell which destination "
                         "each peer site plays, so not which policy target applies")
    pairs: dict[Pair, timedelta] = {}
    for image in images:
        if bound is not None:
            pairs |= {(image.ref, peer): bound for peer in peers[image.ref.pool]}
            continue
        assert kinds is not None
        block = next(b for b in context.policies[image.scoped.tenant].protection.block
                     if b.name == image.scoped.selection)
        targets = destination_bounds(block, kinds.kind(site),
                                     {peer: kinds.kind(peer) for peer in peers[image.ref.pool]})
        pairs |= {(image.ref, peer): target for peer, target in targets.items()}
    return pairs


async def _snapshot_verdicts(context: StepContext, site: str,
                             bounds: dict[Pair, timedelta]) -> dict[Pair, RpoVerdict]:
    verdicts: dict[Pair, RpoVerdict] = {}
    for (pool, namespace), refs in namespaces_of({ref for ref, _ in bounds}).items():
        names = [ref.name for ref in refs]

        def snaps(cluster: Any, pool: str = pool, namespace: str = namespace,
                  names: list[str] = names) -> dict[str, Any]:
            ids = rbd_images.image_ids_by_name(cluster, pool, namespace)
            found = rbd_images.mirror_snapshots_many(
                cluster, pool, namespace, [ids[name] for name in names if name in ids])
            return {name: found.get(ids[name], "not read") if name in ids else "no copy"
                    for name in names}

        primary = await on_site(context, site, snaps, f"reading mirror snapshots in {pool}")
        for dest in sorted({dest for _, dest in bounds}):
            try:
                copies = await on_site(context, dest, snaps, f"reading mirror snapshots in "
                                                             f"{pool}")
            except StepFailed as error:
                copies = {name: str(error) for name in names}
            now = context.now()
            for ref in refs:
                if (ref, dest) not in bounds:
                    continue
                ours, theirs = primary[ref.name], copies[ref.name]
                if not isinstance(ours, list) or not isinstance(theirs, list):
                    problem = ours if not isinstance(ours, list) else theirs
                    verdicts[(ref, dest)] = RpoVerdict(None, f"not measurable ({problem})")
                    continue
                reading = snapshot_rpo(ours, theirs, now)
                verdicts[(ref, dest)] = judge_reading(reading.measured, bounds[(ref, dest)],
                                                      reading.detail)
    return verdicts


async def _journal_verdicts(context: StepContext, site: str,
                            bounds: dict[Pair, timedelta]) -> dict[Pair, RpoVerdict]:
    """Sample journal positions until each pair is dated, or has been behind the same
    sampled position for longer than its bound."""
    if not bounds:
        return {}
    verdicts: dict[Pair, RpoVerdict] = {}
    trackers: dict[ImageRef, JournalRpoTracker] = {}
    started = context.now()
    groups = namespaces_of({ref for ref, _ in bounds})
    while True:
        for (pool, namespace), refs in groups.items():
            commit_age, clients, peer_ids = await on_site(
                context, site, partial(_journal_round, pool=pool, namespace=namespace, refs=refs),
                f"reading journal positions in {pool}/{namespace}")
            now = context.now()
            for ref in refs:
                tracker = trackers.setdefault(ref, JournalRpoTracker(commit_age))
                found = clients.get(ref.name)
                for (image, dest), bound in bounds.items():
                    if image != ref or (ref, dest) in verdicts:
                        continue
                    if not isinstance(found, list):
                        verdicts[(ref, dest)] = RpoVerdict(None, f"not measurable ({found})")
                        continue
                    if dest not in peer_ids:
                        verdicts[(ref, dest)] = RpoVerdict(None, f"not measurable ({dest} is "
                                                                 f"not a mirror peer of {pool})")
                        continue
                    reading = tracker.observe(now, found, peer_ids[dest])
                    if reading.detail in ("caught up", "replaying"):
                        verdicts[(ref, dest)] = judge_reading(reading.measured, bound,
                                                              reading.detail)
                    elif reading.measured is None:
                        verdicts[(ref, dest)] = RpoVerdict(None, f"not measurable "
                                                                 f"({reading.detail})")
                    elif now - started > bound:
                        verdicts[(ref, dest)] = RpoVerdict(False, f"behind a position the "
                                                                  f"primary held {now - started} "
                                                                  f"ago: over the bound")
        if len(verdicts) == len(bounds):
            return verdicts
        await asyncio.sleep(SAMPLE_SECONDS)


def _journal_round(cluster: Any, pool: str, namespace: str, refs: list[ImageRef]
                   ) -> tuple[timedelta, dict[str, Any], dict[str, str]]:
    ids = rbd_images.image_ids_by_name(cluster, pool, namespace)
    found = rbd_images.journal_clients(cluster, pool, namespace,
                                       [ids[ref.name] for ref in refs if ref.name in ids])
    clients = {ref.name: found.get(ids[ref.name], "not read") if ref.name in ids
               else "no such image" for ref in refs}
    return (timedelta(seconds=rbd_images.writer_commit_age(cluster)), clients,
            rbd_images.peer_mirror_uuids(cluster, pool))
