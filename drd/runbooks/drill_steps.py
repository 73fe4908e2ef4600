"""The drill's steps: clone at a replica what replication delivered, verify the clones
(drill_verify), and remove everything the drill made.

How a point in time is cloned at the replica, as Ceph 16.2.15 allows (measured on the
lab; see also drd.domain.drill and drd.ceph.rbd_drill):

- A replica's own mirror snapshots cannot be cloned: librbd opens a clone's parent
  snapshot by name among user snapshots only ("failed to find snapshot
  .mirror.non_primary..."), and Pacific's librbd has no clone by snapshot id.
  A non-primary image takes no snapshot of its own either (EROFS).
- So drd takes the user snapshot `drd-drill-run<id>` of every source image, and
  mirroring carries it over with the data before it: in snapshot mode with a mirror
  snapshot drd takes right after (the copy is whole once that mirror snapshot is
  complete on the replica), in journal mode as an event of the journal. Then each
  replica copy's snapshot is cloned (format 2, unprotected) into the namespace
  `drd-drill` of its pool, whose mirroring is off, so no clone ever replicates.
  Replication never stops. A snapshot holds an image's writes only while librbd takes
  it (a mon round trip for its id), as every RBD snapshot and mirror snapshot does.
- The source snapshot is the only honest reference for a checksum: the primary keeps
  changing, and its snapshot is the same point in time as the replica's copy. Except
  in journal mode under writes: the replica's copy also holds the writes that reached
  the journal while the snapshot finished (1 to about 40 of 4 KiB here), so drd takes
  `drd-drill-run<id>-end` right after the first, and the check lets a sector differ
  from the first only to hold what the second has (drd.domain.drill.compare_sectors).

Clone time is what recovery at the replica would cost; `clones_ready_at` is when the
last clone was usable (opened and read), the drill's RTO evidence.
"""

import asyncio
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Any

from drd.ceph import rbd_drill
from drd.ceph.cluster import CephError
from drd.ceph.rbd_snapshots import ImageMissing
from drd.domain.drill import (
    DRILL_NAMESPACE,
    CloneMarks,
    DrillImage,
    arrived,
    drill_snapshot,
    plan_clones,
    seconds_between,
    window_end_snapshot,
)
from drd.domain.replication_plan import ImageRef, MirrorMode
from drd.domain.runbook_steps import AnyStep, DrillCloneStep
from drd.runbooks.drill_cleanup import DrillCleaner
from drd.runbooks.drill_run import drill_sites, wait_budget
from drd.runbooks.drill_verify import DrillVerifier
from drd.runbooks.scope import scope_on
from drd.runbooks.step_api import (
    IMAGE_PARALLEL,
    ImageThreads,
    StepContext,
    StepExecutor,
    StepFailed,
    failures,
    for_each,
)

POLL_SECONDS = 0.25


@dataclass(frozen=True)
class SourcePoint:
    """A source image's drill snapshot, taken (or found, on a repeated step)."""

    image: DrillImage
    mode: MirrorMode
    snap_id: int
    window_end: str | None


@dataclass(frozen=True)
class Cloned:
    point: SourcePoint
    made: bool
    ready_at: datetime


class DrillCloner:
    async def plan(self, step: AnyStep, context: StepContext) -> list[str]:
        assert isinstance(step, DrillCloneStep)
        source, site = drill_sites(step.params.site, context)
        scoped = await scope_on(context, source)
        planned, refused = plan_clones([(i.tenant, i.ref) for i in scoped], context.run_id)
        snapshot = drill_snapshot(context.run_id)
        lines = [f"take snapshot {snapshot} of {len(planned)} images on {source} (a mirror "
                 f"snapshot after it in snapshot mode, {window_end_snapshot(context.run_id)} "
                 f"in journal mode), wait for it on {site}, and clone it there:"]
        lines += [f"  {d.source}@{snapshot} -> {d.clone}" for d in planned]
        lines += [f"  refused: {reason}" for reason in refused]
        return lines

    async def run(self, step: AnyStep, context: StepContext) -> None:
        assert isinstance(step, DrillCloneStep)
        started = context.now()
        source, site = drill_sites(step.params.site, context)
        scoped = await scope_on(context, source)
        if not scoped:
            raise StepFailed(f"no image of {', '.join(context.tenants()) or 'any tenant'} "
                             f"is in scope on site {source}: nothing to drill")
        planned, problems = plan_clones([(i.tenant, i.ref) for i in scoped], context.run_id)
        out = context.output
        out.facts.update(source_site=source, site=site, started_at=started.isoformat(),
                         snapshot=drill_snapshot(context.run_id))

        target = context.sites.cluster(site)
        pools = sorted({d.clone.pool for d in planned})

        def prepare(cluster: Any) -> list[str]:
            return [pool for pool in pools if rbd_drill.ensure_drill_namespace(cluster, pool)]
        try:
            created = await context.in_thread(lambda: target.run(prepare))
        except CephError as error:
            raise StepFailed(f"cannot prepare the drill namespace on {site}: {error}") from error
        for pool in created:
            out.say(f"created namespace {pool}/{DRILL_NAMESPACE} on {site}")

        cloned, late = await self._snapshot_and_clone(context, (source, site), planned,
                                                      started, wait_budget(step))
        problems += late
        self._report(context, site, started, cloned)
        if problems:
            raise StepFailed(f"{len(problems)} of {len(scoped)} images in scope were not "
                             f"cloned on {site}: " + "; ".join(problems))

    def _fix_point(self, context: StepContext, source: str, site: str,
                   image: DrillImage) -> SourcePoint:
        """Blocking: check the replica's copy, then take the drill snapshot(s) on the source."""
        ref = image.source
        try:
            here = context.sites.cluster(site).run(lambda c: rbd_drill.mirroring(c, ref))
        except ImageMissing as error:
            raise CephError(f"site {site} has no copy of it (replication never created "
                            f"one)") from error
        if here.mode is None or here.primary:
            raise CephError(f"its copy on site {site} is not a mirrored non-primary image; "
                            f"drill at a site that {source} replicates to")
        try:
            point = context.sites.cluster(source).run(lambda c: rbd_drill.fix_drill_point(
                c, ref, drill_snapshot(context.run_id), window_end_snapshot(context.run_id)))
        except rbd_drill.NotMirroredPrimary as error:
            raise CephError(f"it is not a mirrored primary image on site {source}, so "
                            f"site {site} holds no copy of it to drill") from error
        return SourcePoint(image, point.mode, point.snap_id, point.window_end)

    async def _snapshot_and_clone(self, context: StepContext, sites: tuple[str, str],
                                  planned: list[DrillImage], started: datetime, budget: float
                                  ) -> tuple[list[Cloned], list[str]]:
        """Take the drill snapshots on the source, and clone each image on the replica as
        soon as its snapshot is whole there, while the others' are still being taken:
        with a hundred images, waiting for every snapshot before the first clone left
        the replica idle for seconds. The clones and what went wrong."""
        source, site = sites
        loop = asyncio.get_running_loop()
        deadline = loop.time() + budget
        out = context.output
        name = drill_snapshot(context.run_id)
        fixed: list[SourcePoint] = []  # appended from worker threads, read by the loop below

        def fix(image: DrillImage) -> SourcePoint:
            point = self._fix_point(context, source, site, image)
            fixed.append(point)
            return point

        async def fix_all() -> list[SourcePoint | BaseException]:
            results = await for_each(planned, fix)
            out.facts["snapshots_taken_at"] = context.now().isoformat()
            return results

        fixing = asyncio.create_task(fix_all())
        threads = ImageThreads(IMAGE_PARALLEL)
        pending: dict[ImageRef, SourcePoint] = {}
        started_clones: list[tuple[SourcePoint, asyncio.Task[Cloned]]] = []
        target = context.sites.cluster(site)
        seen, last_error = 0, ""

        async def clone_one(point: SourcePoint) -> Cloned:
            return await threads.run(lambda: self._clone(context, source, site, point))
        try:
            while True:
                taken = fixing.done()  # before reading `fixed`, so no point is missed
                new, seen = fixed[seen:], len(fixed)
                pending.update((point.image.source, point) for point in new)
                if pending:
                    try:
                        ready = await context.in_thread(partial(
                            target.run, partial(_arrivals, points=list(pending.values()),
                                                name=name)))
                    except CephError as error:  # a replica busy or restarting: look again
                        ready, last_error = [], f"; last reading failed: {error}"
                    for point in ready:
                        del pending[point.image.source]
                        started_clones.append((point, asyncio.create_task(clone_one(point))))
                if taken and not pending:
                    out.facts["snapshots_whole_at"] = context.now().isoformat()
                    break
                if loop.time() > deadline:
                    break
                await asyncio.sleep(POLL_SECONDS)
            results = await asyncio.gather(*(task for _, task in started_clones),
                                           return_exceptions=True)
        finally:
            fixing.cancel()  # only while snapshots are still being taken: gave up, or stopped
            for _, task in started_clones:
                task.cancel()
            threads.close()
        problems = self._snapshot_problems(planned, fixing, fixed, source, budget)
        taken_at = out.facts.get("snapshots_taken_at", context.now().isoformat())
        out.say(f"snapshot {name} of {len(fixed)} images on {source} in "
                f"{seconds_between(started, datetime.fromisoformat(taken_at))} s")
        problems += [f"{ref}: snapshot {name} did not arrive whole on {site} within "
                     f"{budget:.0f} s; is rbd-mirror replaying it?{last_error}"
                     for ref in sorted(pending)]
        problems += [f"{point.image.source}: {result}"
                     for (point, _), result in zip(started_clones, results, strict=True)
                     if isinstance(result, BaseException)]
        return [r for r in results if isinstance(r, Cloned)], problems

    @staticmethod
    def _snapshot_problems(planned: list[DrillImage],
                           fixing: "asyncio.Task[list[SourcePoint | BaseException]]",
                           fixed: list[SourcePoint], source: str, budget: float) -> list[str]:
        if fixing.done() and not fixing.cancelled():
            return failures([d.source for d in planned], fixing.result())
        have = {point.image.source for point in fixed}
        return [f"{d.source}: its drill snapshot was not taken on {source} within "
                f"{budget:.0f} s" for d in planned if d.source not in have]

    def _clone(self, context: StepContext, source: str, site: str,
               point: SourcePoint) -> Cloned:
        image = point.image
        marks = CloneMarks(context.run_id, image.tenant, source, image.source,
                           drill_snapshot(context.run_id), point.window_end)

        def make(cluster: Any) -> bool:
            made = rbd_drill.clone(cluster, image.source, marks.snapshot, image.clone, marks)
            rbd_drill.open_and_read(cluster, image.clone)
            return made
        made = context.sites.cluster(site).run(make)
        return Cloned(point, made, context.now())

    def _report(self, context: StepContext, site: str, started: datetime,
                cloned: list[Cloned]) -> None:
        out = context.output
        records = []
        for c in sorted(cloned, key=lambda c: c.ready_at):
            image = c.point.image
            seconds = seconds_between(started, c.ready_at)
            out.say(f"{image.tenant}: {image.source}@{drill_snapshot(context.run_id)} "
                    f"({c.point.mode.value} mode) -> {image.clone}, usable after {seconds} s"
                    + ("" if c.made else " (cloned by an earlier attempt)"))
            records.append({"tenant": image.tenant, "source": str(image.source),
                            "mode": c.point.mode.value,
                            "snapshot": drill_snapshot(context.run_id),
                            "window_end": c.point.window_end, "clone": str(image.clone),
                            "ready_at": c.ready_at.isoformat(), "seconds": seconds})
        out.facts["clones"] = records
        whole = out.facts.get("snapshots_whole_at")
        if whole is not None:
            out.say(f"every drill snapshot was whole on {site} after "
                    f"{seconds_between(started, datetime.fromisoformat(whole))} s")
        if cloned:
            ready = max(c.ready_at for c in cloned)
            out.facts["clones_ready_at"] = ready.isoformat()
            out.facts["rto_seconds"] = seconds_between(started, ready)
            out.say(f"{len(cloned)} clones usable on {site} after "
                    f"{seconds_between(started, ready)} s")


def _arrivals(cluster: Any, points: list[SourcePoint], name: str) -> list[SourcePoint]:
    """The points whose snapshot is whole on this replica now; errors count as not yet."""
    ready = []
    by_space: dict[tuple[str, str], list[SourcePoint]] = {}
    for point in points:
        ref = point.image.source
        by_space.setdefault((ref.pool, ref.namespace), []).append(point)
    for (pool, namespace), group in by_space.items():
        found = rbd_drill.snapshots_by_name(cluster, pool, namespace,
                                            [p.image.source.name for p in group])
        for point in group:
            snaps = found.get(point.image.source.name)
            if isinstance(snaps, list) and arrived(snaps, name, point.snap_id,
                                                   point.mode is MirrorMode.SNAPSHOT,
                                                   then=point.window_end):
                ready.append(point)
    return ready


def drill_executors() -> dict[str, StepExecutor]:
    return {"drill_clone": DrillCloner(), "drill_verify": DrillVerifier(),
            "drill_cleanup": DrillCleaner()}
