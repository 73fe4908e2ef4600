"""drill_cleanup: remove everything this run made, and nothing any other run made.

1. The run's clones on the replica, found by their marks (drd.runbooks.drill_run).
2. The run's snapshots on every source image: those in scope now and those the clones'
   marks name, so an image that left the scope since keeps no snapshot. Sources whose
   clone could not be removed keep theirs, so no clone loses its parent.
3. The removal reaches the replicas by mirroring; in snapshot mode only with the next
   mirror snapshot, which drd takes. The step waits until the snapshots are gone from
   the replica and from every other peer of the pool it can reach: the drill snapshot
   travelled there too. A removed snapshot may pass through the trash namespace (Ceph
   16.2.15's sync moves it there first); it counts as there until it is gone.

Repeating the step finds nothing and succeeds; the drill namespace stays, empty.
"""

import asyncio
from typing import Any

from drd.ceph import rbd_drill, rbd_images, rbd_snapshots
from drd.ceph.cluster import CephError
from drd.domain import rbd_snapshot_codec as codec
from drd.domain.drill import run_snapshots, seconds_between
from drd.domain.replication_plan import ImageRef, MirrorMode
from drd.domain.runbook_steps import AnyStep, DrillCleanupStep
from drd.runbooks.drill_run import clones_of_run, drill_sites, wait_budget
from drd.runbooks.scope import scope_on
from drd.runbooks.step_api import StepContext, StepFailed, failures, for_each

POLL_SECONDS = 0.5


class DrillCleaner:
    async def plan(self, step: AnyStep, context: StepContext) -> list[str]:
        assert isinstance(step, DrillCleanupStep)
        source, site = drill_sites(step.params.site, context)
        clones = await clones_of_run(context, site)
        names = " and ".join(run_snapshots(context.run_id))
        return [f"remove {len(clones)} clones of run {context.run_id} on {site}",
                *(f"  {ref}" for ref, _ in clones),
                f"remove snapshots {names} of the images in scope on {source}, and wait "
                f"until mirroring has removed them on {site} and the other peers"]

    async def run(self, step: AnyStep, context: StepContext) -> None:
        assert isinstance(step, DrillCleanupStep)
        source, site = drill_sites(step.params.site, context)
        out = context.output
        started = context.now()
        clones = await clones_of_run(context, site)
        target = context.sites.cluster(site)
        results = await for_each(clones, lambda clone: target.run(
            lambda c: rbd_snapshots.remove_image(c, clone[0])))
        problems = failures([ref for ref, _ in clones], results)
        kept = {marks.source for (_, marks), result in zip(clones, results, strict=True)
                if isinstance(result, BaseException)}
        out.say(f"removed {len(clones) - len(problems)} clones of run {context.run_id} on "
                f"{site} in {seconds_between(started, context.now())} s")
        out.facts["clones_removed"] = [str(ref) for (ref, _), result
                                       in zip(clones, results, strict=True) if result is True]

        named = {marks.source for _, marks in clones}
        named |= {image.ref for image in await scope_on(context, source)}
        sources = sorted(named - kept)
        at = context.now()
        modes = await for_each(sources, lambda ref: self._remove_snapshots(context, source,
                                                                           ref))
        problems += failures(sources, modes)
        out.say(f"removed the run's snapshots of {len(sources)} images on {source} in "
                f"{seconds_between(at, context.now())} s")
        cleared = [ref for ref, mode in zip(sources, modes, strict=True)
                   if not isinstance(mode, BaseException)]
        snapshot_mode = {ref for ref, mode in zip(sources, modes, strict=True)
                         if mode is MirrorMode.SNAPSHOT}
        at = context.now()
        problems += await self._wait_gone(context, (source, site), cleared, snapshot_mode,
                                          budget=wait_budget(step))
        out.say(f"waited {seconds_between(at, context.now())} s for mirroring to remove "
                f"them on the replicas")
        if problems:
            raise StepFailed(f"the drill of run {context.run_id} left things behind: "
                             + "; ".join(problems))
        out.facts["cleaned_at"] = context.now().isoformat()
        out.say(f"nothing of run {context.run_id} is left on {source} or its peers")

    def _remove_snapshots(self, context: StepContext, source: str,
                          ref: ImageRef) -> MirrorMode | None:
        """Blocking: remove the run's snapshots of one source image; its mirror mode."""
        removed, mode = context.sites.cluster(source).run(
            lambda c: rbd_drill.remove_snapshots(c, ref, run_snapshots(context.run_id)))
        for name in removed:
            context.output.say(f"removed snapshot {ref}@{name} on {source}")
        return mode

    async def _wait_gone(self, context: StepContext, sites: tuple[str, str],
                         images: list[ImageRef], snapshot_mode: set[ImageRef], *,
                         budget: float) -> list[str]:
        """Wait until no replica holds the run's snapshots; what is left where, if any."""
        source, site = sites
        replicas = await self._replicas(context, source, site, images)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + budget
        nudged: set[ImageRef] = set()
        left: dict[str, list[ImageRef]] = {}
        while True:
            left = {}
            for replica in list(replicas):
                try:
                    found = await self._holding(context, replica, images)
                except CephError as error:
                    if replica == site:
                        return [f"cannot read the snapshots on {site}: {error}"]
                    context.output.say(f"site {replica} cannot be read ({error}); its copies "
                                       f"lose the drill snapshots with their next sync")
                    replicas.remove(replica)
                    continue
                if found:
                    left[replica] = found
            nudge = sorted({ref for refs in left.values() for ref in refs}
                           & (snapshot_mode - nudged))
            if nudge:  # snapshot mode ships a removal with the next mirror snapshot
                results = await for_each(nudge, lambda ref: context.sites.cluster(
                    source).run(lambda c: rbd_images.take_mirror_snapshot(c, ref)))
                nudged |= set(nudge)
                if bad := failures(nudge, results):
                    return [f"cannot take a mirror snapshot to carry the removal: {b}"
                            for b in bad]
            if not left or loop.time() > deadline:
                break
            await asyncio.sleep(POLL_SECONDS)
        return [f"{ref}: a drill snapshot is still on {replica} after {budget:.0f} s"
                for replica, refs in sorted(left.items()) for ref in refs]

    async def _holding(self, context: StepContext, replica: str,
                       images: list[ImageRef]) -> list[ImageRef]:
        handle = context.sites.cluster(replica)
        names = run_snapshots(context.run_id)
        return await context.in_thread(lambda: handle.run(lambda c: _holding(c, images,
                                                                             names)))

    async def _replicas(self, context: StepContext, source: str, site: str,
                        images: list[ImageRef]) -> list[str]:
        """The replica, and the other peers the source's pools mirror to."""
        pools = sorted({ref.pool for ref in images})
        handle = context.sites.cluster(source)
        try:
            peers = await context.in_thread(lambda: handle.run(
                lambda c: {name for pool in pools
                           for name in rbd_images.peer_mirror_uuids(c, pool)}))
        except CephError as error:
            raise StepFailed(f"cannot list the mirror peers on {source}: {error}") from error
        replicas = [site]
        for peer in sorted(peers - {site, source}):
            try:
                context.sites.cluster(peer)
                replicas.append(peer)
            except StepFailed as error:
                context.output.say(f"not checking site {peer}: {error}")
        return replicas


def _holding(cluster: Any, images: list[ImageRef], names: tuple[str, ...]) -> list[ImageRef]:
    """The images whose copy here still has one of `names`, as a snapshot or in the trash."""
    holding = []
    by_space: dict[tuple[str, str], list[ImageRef]] = {}
    for ref in images:
        by_space.setdefault((ref.pool, ref.namespace), []).append(ref)
    for (pool, namespace), refs in by_space.items():
        found = rbd_drill.snapshots_by_name(cluster, pool, namespace, [r.name for r in refs])
        for ref in refs:
            snaps = found.get(ref.name)
            if isinstance(snaps, CephError):
                raise snaps
            if snaps is None:
                continue
            named = any(s.name in names and s.namespace_type == codec.NAMESPACE_USER
                        for s in snaps)
            if named or (any(s.namespace_type == codec.NAMESPACE_TRASH for s in snaps)
                         and set(rbd_drill.trashed_snapshot_names(cluster, ref)) & set(names)):
                holding.append(ref)
    return holding
