"""`rbd_remote_follow {primary}`: the remote site replicates from the new primary.

Pacific's rbd-mirror pulls a pool from one peer only, so the remote site (c) pulls from
production (a), and nothing ships to c from the same-city site (b) by itself. Measured
on Ceph 16.2.15 (the lab): after a switchover a→b, c's copies report "remote image is
not primary" and stay as they were; with c's pool re-pointed to pull from b, a
journal copy reports "split-brain detected" and a snapshot copy "local image linked to
unknown peer" within about 10 s; a resync then copies each image from b (16 MiB in
about 10 s) and c replicates from b from then on.

So the step, for every pool of the images in scope and every remote site other than
the primary: re-points the pool's rx peer at the remote site to the primary, but only
when every mirrored image of that pool is primary there (the peer serves the whole
pool: re-pointed while other tenants' images stay primary on the old site, those
would lose their remote copy instead); waits until the remote's rbd-mirror has
reported on its copies since; resyncs those it cannot link; and proves by data that
the primary replicates to the remote (a probe, as `verify_replication`).

A journal copy resynced once from b is still registered at a under the id it had
before: back on a, Ceph 16.2.15 reports it "split-brain detected" whatever is done at
c. The step unregisters such stale registrations at the primary once the resync is
requested (see ceph/journal_registrations.py), and c registers its copy anew.

A resync discards the remote copy before copying again: until the copy completes, the
remote site holds no copy of that image. Setting `rbd_mirroring_delete_delay` on the
remote site keeps the discarded copy in its trash for that long.
"""

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from drd.ceph import rbd_images, rbd_mirror_setup, rbd_promotion
from drd.domain.rbd_step_decisions import (
    Act,
    Decision,
    MirrorStatus,
    follow_decision,
)
from drd.domain.replication_plan import ImageRef
from drd.domain.runbook_steps import AnyStep, FollowParams
from drd.domain.site import SiteKind
from drd.runbooks.image_work import grouped, params_of
from drd.runbooks.remote_registrations import clear_stale_registrations
from drd.runbooks.site_images import SiteImage, images_on, namespaces_of, on_site
from drd.runbooks.step_api import StepContext, StepFailed, for_each, restart_rbd_mirror_of
from drd.runbooks.verify_steps import prove_by_probe

POLL_SECONDS = 2.0
REPAIR_POLL_SECONDS = 10.0
# A resync starts within seconds (the copy is deleted first); one whose copy still reports
# it cannot link after this long is not being acted on.
RESYNC_STUCK_SECONDS = 90.0
# A restarted rbd-mirror reported on every copy within about 10 s in the lab.
REPORT_PATIENCE_SECONDS = 60.0
# Restarted that many times and still silent on a copy, it is not going to report.
REPORT_RESTARTS = 2
_RECEIVING = ("rx-only", "rx-tx")


class RbdRemoteFollow:
    """`rbd_remote_follow {primary}`."""

    async def plan(self, step: AnyStep, context: StepContext) -> list[str]:
        primary = context.site(params_of(step, FollowParams).primary)
        remotes = _remotes(context, primary)
        if not remotes:
            return [f"no remote site other than {primary}: nothing to re-point"]
        images = await images_on(context, primary)
        lines = []
        for remote in remotes:
            for pool in sorted({image.ref.pool for image in images}):
                pulls = await _pulls_from(context, remote, pool)
                lines.append(f"{remote} pulls pool {pool} from {', '.join(pulls) or 'no one'}"
                             + ("" if pulls == [primary] else
                                f": re-point it to {primary}, then resync the copies "
                                f"it cannot link (a full copy each)"))
        return [*lines, f"then prove by a probe that {', '.join(remotes)} replicate(s) the "
                        f"{len(images)} image(s) in scope from {primary}"]

    async def run(self, step: AnyStep, context: StepContext) -> None:
        primary = context.site(params_of(step, FollowParams).primary)
        out = context.output
        remotes = _remotes(context, primary)
        if not remotes:
            out.say(f"no remote site other than {primary}: nothing to re-point")
            return
        images = await images_on(context, primary)
        if not images:
            out.say(f"no image in scope on {primary}: nothing to follow")
            return
        not_primary = [f"{image.ref}" for image in images
                       if image.mode is None or not image.observed.primary]
        if not_primary:
            raise StepFailed(f"the remote site can only follow images that are mirrored and "
                             f"primary on {primary}; not so: " + ", ".join(not_primary))
        since = context.now()
        started = time.monotonic()

        def mark(phase: str) -> None:  # where the step's time goes, for operators and bench
            out.facts.setdefault("phase_seconds", {})[phase] = round(
                time.monotonic() - started, 3)

        resynced: dict[str, dict[ImageRef, datetime]] = {}
        moved: set[tuple[str, str]] = set()  # (remote, pool) re-pointed by this run
        pools = sorted({image.ref.pool for image in images})
        for remote in remotes:
            repointed = [pool for pool in pools
                         if await _repoint(context, remote, primary, pool)]
            moved |= {(remote, pool) for pool in repointed}
            mark("re-pointed")
            if repointed:
                await _restart_replayer(context, remote)
                mark("rbd-mirror restarted")
            # Every copy of a re-pointed pool will need a resync (measured: 100 of 100), but
            # only once the restarted rbd-mirror has taken it over: requested at once, a
            # resync timed out (ETIMEDOUT) on copies whose lock the stopped rbd-mirror
            # still held, in a full test run. Its first report says it has.
            decisions = await _settled_decisions(context, remote, images,
                                                 since if repointed else None)
            mark("every copy reported")
            resynced[remote] = await _resync(context, remote, primary, decisions)
            mark("resyncs requested")
            if resynced[remote] and not repointed:
                # A replayer stopped in error (split-brain) does not look at a resync
                # request; a restarted rbd-mirror does (a full run: 10 journal copies
                # stayed split-brained, their resyncs requested, for ten minutes).
                await _restart_replayer(context, remote)
                mark("rbd-mirror restarted for the resyncs")
        proving = asyncio.create_task(prove_by_probe(context, primary, images, remotes))
        repairing = asyncio.create_task(
            _keep_repairing(context, primary, images, since, resynced, moved=moved))
        try:
            # The repairs end only by failing: a copy a resync does not cure.
            await asyncio.wait([proving, repairing], return_when=asyncio.FIRST_COMPLETED)
            if repairing.done():
                proving.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await proving
                repairing.result()
            await proving
            mark("replication proven")
        finally:
            for task in (proving, repairing):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, StepFailed):
                    await task
        out.facts["remote_protected"] = True


def _remotes(context: StepContext, primary: str) -> list[str]:
    return [site for site in context.sites.sites_of_kind(SiteKind.REMOTE) if site != primary]


async def _pulls_from(context: StepContext, remote: str, pool: str) -> list[str]:
    peers = await on_site(context, remote,
                          lambda cluster: rbd_mirror_setup.list_peers(cluster, pool),
                          f"listing the mirror peers of pool {pool}")
    return sorted(peer.site_name for peer in peers if peer.direction in _RECEIVING)


async def _repoint(context: StepContext, remote: str, primary: str, pool: str) -> bool:
    """Make `primary` the one peer `remote` pulls `pool` from; False if it already was."""
    out = context.output
    pulls = await _pulls_from(context, remote, pool)
    if pulls == [primary]:
        out.say(f"{remote} already pulls pool {pool} from {primary}")
        return False
    elsewhere = sorted(str(ref) for ref in await _left_behind(context, remote, primary,
                                                             pulls, pool))
    if elsewhere:
        raise StepFailed(
            f"{remote} pulls pool {pool} from one peer only ({', '.join(pulls) or 'none'}; "
            f"Ceph Pacific takes a single rx peer per pool), and {len(elsewhere)} mirrored "
            f"image(s) of the pool are not primary on {primary} (e.g. "
            f"{', '.join(elsewhere[:3])}): re-pointed, {remote} would stop replicating "
            f"those. {remote} keeps pulling from {', '.join(pulls) or 'no one'}, so the "
            f"images moved to {primary} have no remote copy that follows them until every "
            f"image of the pool is primary there (a run of all tenants does that)")
    credentials = await on_site(
        context, primary, lambda cluster: rbd_mirror_setup.peer_credentials(cluster, pool),
        f"minting the mirror peer user of pool {pool}")
    for old in pulls:
        if old != primary:
            await on_site(context, remote, _peer_remover(pool, old),
                          f"removing peer {old} from pool {pool}")
    await on_site(context, remote, lambda cluster: rbd_mirror_setup.add_peer(
        cluster, pool, primary, credentials, "rx-only"), f"adding peer {primary} to pool {pool}")
    out.facts.setdefault("repointed", []).append(
        {"site": remote, "pool": pool, "from": pulls, "to": primary,
         "at": context.now().isoformat()})
    out.say(f"{remote} now pulls pool {pool} from {primary} (was: "
            f"{', '.join(pulls) or 'no one'})")
    return True


async def _restart_replayer(context: StepContext, remote: str) -> None:
    """Restart the remote's rbd-mirror, through its drd. Measured: with the old peer's
    cluster dead, rbd-mirror never let go of it, and reported on none of its copies
    again until restarted; with the old peer alive a restart costs a few seconds."""
    await restart_rbd_mirror_of(
        context, remote, done_then=", so it drops its old peer",
        not_done=f"{remote}'s rbd-mirror was not restarted; if it is stuck on its old "
                 f"peer, restart it by hand")


async def _left_behind(context: StepContext, remote: str, primary: str, pulls: list[str],
                       pool: str) -> set[ImageRef]:
    """The images of the pool that would lose their remote copy if `remote` pulled from
    `primary`: those it holds a copy of that are not primary there, and those still
    primary on a site it pulls from now, where that site's Ceph answers."""
    def mirrored(site: str) -> Awaitable[dict[ImageRef, bool]]:
        return on_site(context, site,
                       lambda cluster: rbd_mirror_setup.mirrored_images(cluster, pool),
                       f"listing the mirrored images of pool {pool}")

    on_primary = await mirrored(primary)
    left = {ref for ref in await mirrored(remote) if not on_primary.get(ref, False)}
    for old in pulls:
        try:
            left |= {ref for ref, is_primary in (await mirrored(old)).items() if is_primary}
        except StepFailed:
            continue  # that site's Ceph is lost: nothing there is served any more
    return left


def _peer_remover(pool: str, site: str) -> Callable[[Any], bool]:
    return lambda cluster: rbd_mirror_setup.remove_peer(cluster, pool, site)


async def _settled_decisions(context: StepContext, remote: str, images: list[SiteImage],
                             since: datetime | None) -> dict[ImageRef, Decision]:
    """Every copy's decision once none must wait for a newer report; StepFailed on a
    refusal, or when the remote's rbd-mirror, restarted, still reports on none.

    Once the pool was re-pointed (`since` set) every mirrored copy of it counts: the
    whole pool moved. Otherwise only the copies in scope do: in a pool that other tenants
    share, their copies may follow a primary elsewhere and say "remote image is not
    primary" for good, which is not this run's to wait for (a full run waited on them
    for ten minutes)."""
    pools = sorted({image.ref.pool for image in images})
    in_scope = None if since is not None else {image.ref for image in images}
    waiting: dict[ImageRef, Decision] = {}
    restarts = 0
    restart_at = time.monotonic() + REPORT_PATIENCE_SECONDS
    try:
        while True:
            decisions: dict[ImageRef, Decision] = {}
            for pool in pools:
                decisions |= await _decisions(context, remote, pool, since)
            if in_scope is not None:
                decisions = {ref: d for ref, d in decisions.items() if ref in in_scope}
            refused = {ref: d for ref, d in decisions.items() if d.act is Act.REFUSE}
            if refused:
                raise StepFailed(f"{remote} cannot follow: "
                                 + "; ".join(grouped({r: d.reason for r, d in refused.items()})))
            waiting = {ref: d for ref, d in decisions.items() if d.act is Act.WAIT}
            if not waiting:
                return decisions
            if time.monotonic() > restart_at:
                if restarts == REPORT_RESTARTS:
                    raise StepFailed(
                        f"{remote}'s rbd-mirror reported nothing to act on for "
                        f"{len(waiting)} copies, restarted {restarts} times: " + "; ".join(
                            grouped({ref: d.reason for ref, d in waiting.items()})))
                # No report for that long: rbd-mirror 16.2.15 dies now and then (the
                # ~ImageWatcher assert); systemd restarts it on a real site, drd here.
                context.output.say(f"{remote}'s rbd-mirror has not reported on "
                                   f"{len(waiting)} copies for "
                                   f"{REPORT_PATIENCE_SECONDS:.0f} s: restarting it")
                await _restart_replayer(context, remote)
                restarts += 1
                restart_at = time.monotonic() + REPORT_PATIENCE_SECONDS
            await asyncio.sleep(POLL_SECONDS)
    except asyncio.CancelledError:
        context.output.say(f"still waiting on {len(waiting)} copies on {remote}: " + "; ".join(
            grouped({ref: d.reason for ref, d in waiting.items()})))
        raise


async def _decisions(context: StepContext, remote: str, pool: str,
                     since: datetime | None) -> dict[ImageRef, Decision]:
    return {ref: follow_decision(primary_here, status, since)
            for ref, (primary_here, status) in (await _reports(context, remote, pool)).items()}


async def _reports(context: StepContext, remote: str, pool: str
                   ) -> dict[ImageRef, tuple[bool, MirrorStatus | None]]:
    """Every mirrored copy of the pool on the remote: whether primary, and its status."""
    copies = await on_site(context, remote,
                           lambda cluster: rbd_mirror_setup.mirrored_images(cluster, pool),
                           f"listing the mirrored copies of pool {pool}")
    statuses: dict[ImageRef, MirrorStatus] = {}
    for (pool_name, namespace), refs in namespaces_of(copies).items():
        def read(cluster: object, pool_name: str = pool_name, namespace: str = namespace,
                 refs: list[ImageRef] = refs) -> dict[ImageRef, MirrorStatus]:
            ids = rbd_images.image_ids_by_name(cluster, pool_name, namespace)
            by_id = rbd_promotion.local_statuses(cluster, pool_name, namespace)
            return {ref: by_id[ids[ref.name]] for ref in refs
                    if ref.name in ids and ids[ref.name] in by_id}
        statuses |= await on_site(context, remote, read,
                                  f"reading mirror statuses in {pool_name}/{namespace}")
    return {ref: (is_primary, statuses.get(ref)) for ref, is_primary in copies.items()}


async def _keep_repairing(context: StepContext, primary: str, images: list[SiteImage],
                          since: datetime, resynced: dict[str, dict[ImageRef, datetime]], *,
                          moved: set[tuple[str, str]]) -> None:
    """While the probe is awaited, resync any copy that reports it cannot link only now
    (a copy that looked as if it followed may report split-brain a moment later, and the
    probe would wait for it in vain); StepFailed for a copy still unlinked on a report
    RESYNC_STUCK_SECONDS after its resync was requested. Otherwise until cancelled.
    Copies out of scope count only in a pool this run re-pointed (`moved`):
    elsewhere they follow whoever they followed, and are other tenants' business."""
    pools = sorted({image.ref.pool for image in images})
    in_scope = {image.ref for image in images}
    while True:
        await asyncio.sleep(REPAIR_POLL_SECONDS)
        for remote, requested in resynced.items():
            reports: dict[ImageRef, tuple[bool, MirrorStatus | None]] = {}
            try:
                for pool in pools:
                    reports |= await _reports(context, remote, pool)
            except StepFailed as error:
                context.output.say(f"looking for copies on {remote} to repair: {error}")
                continue
            late = {ref: follow_decision(primary_here, status, since)
                    for ref, (primary_here, status) in reports.items()
                    if ref not in requested
                    and (ref in in_scope or (remote, ref.pool) in moved)}
            act = {ref: decision for ref, decision in late.items() if decision.act is Act.ACT}
            if act:
                requested.update(await _resync(context, remote, primary, act))
            now = context.now()
            stuck = {ref: status.description for ref, (here, status) in reports.items()
                     if ref in requested and status is not None
                     and (now - requested[ref]).total_seconds() > RESYNC_STUCK_SECONDS
                     # Any report, however old: rbd-mirror repeats none while a copy
                     # stays split-brained, and waiting for one hung a full run.
                     and follow_decision(here, status, None).act is Act.ACT}
            if stuck:
                raise StepFailed(
                    f"{len(stuck)} copies on {remote} still cannot link to {primary} "
                    f"{RESYNC_STUCK_SECONDS:.0f} s after their resync was requested ("
                    + "; ".join(grouped(stuck)) + f"); {remote}'s rbd-mirror log says why; "
                    f"resync them by hand once that is mended")


async def _resync(context: StepContext, remote: str, primary: str,
                  decisions: dict[ImageRef, Decision]) -> dict[ImageRef, datetime]:
    """Resync the copies decided so; when each was requested."""
    out = context.output
    refs = sorted(ref for ref, decision in decisions.items() if decision.act is Act.ACT)
    handle = context.sites.cluster(remote)
    results = await for_each(refs, lambda ref: handle.run(
        lambda cluster: rbd_promotion.request_resync(cluster, ref)))
    failed = [f"{ref}: {result}" for ref, result in zip(refs, results, strict=True)
              if isinstance(result, BaseException)]
    if failed:
        raise StepFailed(f"requesting resyncs on {remote} failed for {len(failed)} copies: "
                         + "; ".join(failed))
    out.facts.setdefault("resynced", {}).setdefault(remote, []).extend(str(r) for r in refs)
    following = sum(1 for decision in decisions.values() if decision.act is Act.SKIP)
    out.say(f"{remote}: {len(refs)} copies resynced from {primary} (a full copy each; "
            f"{remote} holds no copy of them until it completes), {following} already "
            f"follow it")
    now = context.now()
    # Only now: unregistered first, the remote could register its copy again and
    # replay on from the primary's position before it sees the resync.
    await clear_stale_registrations(context, remote, primary, refs)
    return dict.fromkeys(refs, now)
