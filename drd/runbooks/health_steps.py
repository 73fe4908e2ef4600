"""Health-check steps: a site's Ceph answers and is not HEALTH_ERR (`ceph_health`), a
peer's drd answers (`peer_reachable`), and every image in scope is mirrored there as a
primary or as a copy that replays (`mirror_state`).

They change nothing, so plan() reads what run() would check and says what it finds now.
"""

import asyncio

from drd.ceph.cluster import cluster_health
from drd.domain.cluster_health import ClusterHealth
from drd.domain.rbd_step_decisions import CopyHealth, Health, judge_copy
from drd.domain.replay_progress import Progress
from drd.domain.replication_plan import ImageRef
from drd.domain.runbook_steps import AnyStep, SiteParams
from drd.runbooks.image_work import grouped, params_of
from drd.runbooks.site_images import SiteImage, images_on, on_site, replay_progress_of
from drd.runbooks.step_api import StepContext, StepFailed

# rbd-mirror reports at the latest every 30 s; a copy whose last report predates a
# promotion or a demotion is looked at again for this long before it counts as unhealthy.
SETTLE_SECONDS = 45.0
POLL_SECONDS = 1.0


class CephHealth:
    """`ceph_health {site}`: the cluster answers and is not HEALTH_ERR; warnings are said."""

    async def plan(self, step: AnyStep, context: StepContext) -> list[str]:
        site = context.site(params_of(step, SiteParams).site)
        try:
            health = await self._health(context, site)
        except StepFailed as error:
            return [f"check Ceph health of {site}: would fail now ({error})"]
        return [f"check Ceph health of {site}: {health.status} now"]

    async def run(self, step: AnyStep, context: StepContext) -> None:
        site = context.site(params_of(step, SiteParams).site)
        health = await self._health(context, site)
        checks = "; ".join(f"{code}: {message}" for code, message in sorted(health.checks.items()))
        context.output.facts["status"] = health.status
        context.output.facts["checks"] = dict(health.checks)
        if health.status == "HEALTH_ERR":
            raise StepFailed(f"site {site}'s Ceph is HEALTH_ERR: {checks}")
        context.output.say(f"site {site}'s Ceph is {health.status}"
                           + (f" ({checks})" if checks else "")
                           + f"; {health.osds_up} of {health.osds} OSDs up")

    @staticmethod
    async def _health(context: StepContext, site: str) -> ClusterHealth:
        return await on_site(context, site, cluster_health, "reading Ceph's health")


class PeerReachable:
    """`peer_reachable {site}`: the site's drd answers its heartbeats."""

    async def plan(self, step: AnyStep, context: StepContext) -> list[str]:
        site = context.site(params_of(step, SiteParams).site)
        now = "yes" if context.sites.peer_reachable(site) else "no"
        return [f"check that site {site}'s drd answers heartbeats: {now} now"]

    async def run(self, step: AnyStep, context: StepContext) -> None:
        site = context.site(params_of(step, SiteParams).site)
        if not context.sites.peer_reachable(site):
            raise StepFailed(f"site {site}'s drd does not answer heartbeats")
        context.output.say(f"site {site}'s drd answers heartbeats")


class MirrorState:
    """`mirror_state {site}`: every image in scope on the site is mirrored, and is primary
    or a non-primary copy that replays; the ones that are not are named with why."""

    async def plan(self, step: AnyStep, context: StepContext) -> list[str]:
        site = context.site(params_of(step, SiteParams).site)
        images = await images_on(context, site)
        judged = await _judged(context, site, images)
        bad = {ref: h for ref, h in judged.items() if h.health is not Health.HEALTHY}
        lines = [f"check the mirroring of {len(images)} image(s) on {site}: "
                 f"{len(images) - len(bad)} healthy now, {len(bad)} not"]
        return lines + grouped({ref: health.reason for ref, health in bad.items()})

    async def run(self, step: AnyStep, context: StepContext) -> None:
        site = context.site(params_of(step, SiteParams).site)
        started = asyncio.get_running_loop().time()
        while True:
            images = await images_on(context, site)
            judged = await _judged(context, site, images)
            bad = {ref: h for ref, h in judged.items() if h.health is not Health.HEALTHY}
            waited = asyncio.get_running_loop().time() - started
            # Wait only while every problem may be a status not yet rewritten.
            if not bad or len(bad) > _unsettled(bad) or waited > SETTLE_SECONDS:
                break
            await asyncio.sleep(POLL_SECONDS)
        primaries = sum(1 for image in images if image.observed.primary)
        out = context.output
        out.facts["primary"] = primaries
        out.facts["replaying"] = len(images) - primaries - len(bad)
        out.facts["unhealthy"] = {str(ref): health.reason for ref, health in sorted(bad.items())}
        if bad:
            raise StepFailed(f"{len(bad)} of {len(images)} image(s) on {site} are not mirrored "
                             f"and healthy: " + "; ".join(f"{ref}: {health.reason}"
                                                          for ref, health in sorted(bad.items())))
        out.say(f"all {len(images)} image(s) in scope on {site} are mirrored: {primaries} "
                f"primary, {len(images) - primaries} replaying")


def _unsettled(judged: dict[ImageRef, CopyHealth]) -> int:
    return sum(1 for health in judged.values() if health.health is Health.UNSETTLED)


async def _judged(context: StepContext, site: str,
                  images: list[SiteImage]) -> dict[ImageRef, CopyHealth]:
    """Each image's health; a copy whose status is not settled is judged by its data,
    against the run's other site, where that site is its primary."""
    judged = {image.ref: judge_copy(image.observed, image.status) for image in images}
    unsettled = [image for image in images if judged[image.ref].health is Health.UNSETTLED]
    other = context.target.source if site == context.target.target else context.target.target
    if not unsettled or other == site:
        return judged
    try:
        replaying = await replay_progress_of(context, unsettled, site, other, in_sync=False)
    except StepFailed as error:
        replaying = {image.ref: Progress(False, f"cannot compare with {other}: {error}")
                     for image in unsettled}
    for image in unsettled:
        judged[image.ref] = judge_copy(image.observed, image.status, replaying[image.ref])
    return judged
