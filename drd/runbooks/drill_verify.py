"""drill_verify: every clone of the run is checked, and each verdict is in the output.

- `checksum` reads each clone on the replica and its source snapshot on the source side
  by side (drd.ceph.rbd_drill.compare), many images at once. The source snapshot is the
  reference because it is the same point in time; the live primary has moved on.
- `hook` runs the step's argv once per clone, never through a shell, with the clone's
  spec in DRD_DRILL_IMAGE and the replica's ceph.conf in DRD_DRILL_CONF: an fsck or an
  application's own check. Exit status 0 passes; its output goes to the step output.
  A hook still running when the step's time is nearly up is killed with its process
  group, and counts as failed.
"""

import asyncio
import os
import threading
from typing import Any

from drd.ceph import rbd_drill
from drd.domain.drill import CloneMarks, Comparison
from drd.domain.replication_plan import ImageRef
from drd.domain.runbook_steps import AnyStep, DrillVerify, DrillVerifyStep
from drd.runbooks.drill_run import clones_of_run, drill_sites, wait_budget
from drd.runbooks.hooks import HookResult, run_hook
from drd.runbooks.step_api import StepContext, StepFailed, for_each

HOOK_PARALLEL = 4  # an fsck reads the whole clone; more at once only queue on the OSDs

Clone = tuple[ImageRef, CloneMarks]


class DrillVerifier:
    async def plan(self, step: AnyStep, context: StepContext) -> list[str]:
        assert isinstance(step, DrillVerifyStep)
        _, site = drill_sites(step.params.site, context)
        clones = await clones_of_run(context, site)
        how = ("compare the sha256 of each with its source snapshot"
               if step.params.method is DrillVerify.CHECKSUM
               else f"run {' '.join(step.params.hook or ())} on each")
        found = f"{len(clones)} clones of run {context.run_id} on {site} now" if clones \
            else f"the clones drill_clone makes on {site}"
        return [f"{how}: {found}", *(f"  {ref}" for ref, _ in clones)]

    async def run(self, step: AnyStep, context: StepContext) -> None:
        assert isinstance(step, DrillVerifyStep)
        _, site = drill_sites(step.params.site, context)
        clones = await clones_of_run(context, site)
        if not clones:
            raise StepFailed(f"no clone of run {context.run_id} is on site {site} to verify; "
                             f"drill_clone makes them")
        if step.params.method is DrillVerify.CHECKSUM:
            failed = await checksum_verdicts(context, site, clones)
        else:
            if not step.params.hook:
                raise StepFailed("method hook needs params.hook, the argv to run per clone")
            loop = asyncio.get_running_loop()
            failed = await hook_verdicts(context, site, clones, step.params.hook,
                                  loop.time() + wait_budget(step))
        context.output.facts["verified_at"] = context.now().isoformat()
        if failed:
            raise StepFailed(f"{len(failed)} of {len(clones)} clones on {site} failed "
                             f"verification: " + ", ".join(failed))
        context.output.say(f"all {len(clones)} clones on {site} verified")


async def checksum_verdicts(context: StepContext, site: str, clones: list[Clone]) -> list[str]:
    """Compare every clone with its source snapshot; the clones that failed."""
    stop = threading.Event()

    def compare(clone: Clone) -> Comparison:
        ref, marks = clone
        source = context.sites.cluster(marks.source_site)
        return context.sites.cluster(site).run(
            lambda ours: source.run(lambda theirs: rbd_drill.compare(ours, ref, theirs,
                                                                     marks, stop=stop)))
    try:
        results = await for_each(clones, compare)
    finally:
        stop.set()  # cancelled: the reads still running give up at their next chunk
    verdicts: dict[str, dict[str, Any]] = {}
    failed = []
    for (ref, marks), result in zip(clones, results, strict=True):
        source = f"{marks.source_site}:{marks.source}@{marks.snapshot}"
        if isinstance(result, BaseException):
            context.output.say(f"{ref}: FAILED: cannot compare it with {source}: {result}")
            verdicts[str(ref)] = {"verified": False, "error": str(result)}
            failed.append(str(ref))
            continue
        context.output.say(result.verdict(ref, source))
        verdicts[str(ref)] = {"verified": result.verified, "sha256": result.sha256,
                              "source_sha256": result.source_sha256,
                              "window_sectors": result.window_sectors,
                              "bad_sectors": result.bad_sectors}
        if not result.verified:
            failed.append(str(ref))
    context.output.facts["verdicts"] = verdicts
    return failed


async def hook_verdicts(context: StepContext, site: str, clones: list[Clone],
                 argv: tuple[str, ...], deadline: float) -> list[str]:
    """Run the hook on every clone, HOOK_PARALLEL at once; the clones that failed."""
    gate = asyncio.Semaphore(HOOK_PARALLEL)
    conf = context.sites.ceph_conf(site)

    async def one(clone: Clone) -> HookResult:
        ref, marks = clone
        env = {**os.environ, "DRD_DRILL_IMAGE": str(ref), "DRD_DRILL_CONF": conf,
               "DRD_DRILL_SOURCE": f"{marks.source_site}:{marks.source}@{marks.snapshot}",
               "DRD_DRILL_RUN": str(context.run_id), "DRD_DRILL_SITE": site}
        async with gate:
            return await run_hook(argv, env, deadline)

    results = await asyncio.gather(*(one(clone) for clone in clones), return_exceptions=True)
    verdicts: dict[str, dict[str, Any]] = {}
    failed = []
    for (ref, _), result in zip(clones, results, strict=True):
        if isinstance(result, BaseException):
            if not isinstance(result, OSError):
                raise result
            line, verdict = f"{ref}: FAILED: cannot start {argv[0]}: {result}", None
        elif result.status is None:
            line, verdict = f"{ref}: FAILED: {argv[0]} was killed at the step's deadline", None
        else:
            verdict = result.status
            line = (f"{ref}: verified, {argv[0]} exited 0" if result.status == 0
                    else f"{ref}: FAILED: {argv[0]} exited with status {result.status}")
        context.output.say(line)
        if not isinstance(result, BaseException):
            context.output.lines.extend(f"  {ref.name}: {text}" for text in result.lines)
        verdicts[str(ref)] = {"verified": verdict == 0, "exit_status": verdict}
        if verdict != 0:
            failed.append(str(ref))
    context.output.facts["verdicts"] = verdicts
    return failed
