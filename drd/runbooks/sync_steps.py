"""RBD steps that wait on replication: until a site has replayed everything a demoted
primary wrote (`wait_in_sync`), and until the losing side of a switchover or failover
replays from the winner again, resyncing the copies Ceph reports split-brained
(`rbd_resync`).

Both judge from data where rbd-mirror's status lags (drd.domain.replay_progress):
measured on Ceph 16.2.15, the demoted side of a planned switchover replayed from the
new primary 1-2 s after the promotion, while its status kept reading "local image is
primary" for up to 30 s. Split-brain, on the other hand, only rbd-mirror can tell, and
it does within a few seconds ("split-brain detected" in journal mode, "split-brain" in
snapshot mode, state error).
"""

import asyncio
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from drd.ceph import rbd_images, rbd_promotion
from drd.ceph.cluster import CephError
from drd.domain.rbd_step_decisions import (
    Act,
    CopyHealth,
    Decision,
    MirrorStatus,
    judge_copy,
    resync_decision,
    resync_refusal,
    split_brain_evidence,
)
from drd.domain.replay_progress import NOT_STARTED, Progress
from drd.domain.replication_plan import ImageRef, MirrorMode
from drd.domain.rpo import MirrorSnapshot
from drd.domain.runbook_steps import AnyStep, ResyncParams, SyncParams
from drd.runbooks.image_work import grouped, params_of
from drd.runbooks.site_images import (
    SiteImage,
    images_on,
    namespaces_of,
    on_site,
    replay_progress_of,
)
from drd.runbooks.step_api import StepContext, StepFailed, for_each, restart_rbd_mirror_of

POLL_SECONDS = 0.2
# Seen in a full test run: a drd killed while it demoted left a's rbd-mirror unaware of
# three demotion snapshots for over five minutes (the notice of each new snapshot died
# with it, and a snapshot-mode replayer learns of one by that notice). A restarted
# rbd-mirror scans every image afresh, so the step restarts it after this long. Seen
# once more: the copies stayed idle after that one restart too (a 16.2.15 rbd-mirror can
# also die on its way up), so the step tries again, up to NUDGES restarts a minute apart.
NUDGE_AFTER_SECONDS = 30.0
NUDGE_AGAIN_SECONDS = 60.0
NUDGES = 3
Snapshots = list[MirrorSnapshot] | CephError
RESYNC_POLL_SECONDS = 0.5
# How long a copy may stay undecided (no status since the promotion, replay not yet
# visible in its data) before the step says so and fails: rbd-mirror notices a
# promotion within its refresh interval (30 s by default, 5 s in the lab) and reports
# at the latest every 30 s.
SETTLE_SECONDS = 90.0


class WaitInSync:
    """`wait_in_sync {site, primary}`: the site holds everything the primary side wrote
    before its demotion: in snapshot mode a complete copy of the demotion snapshot, in
    journal mode a commit position at the primary's own."""

    async def plan(self, step: AnyStep, context: StepContext) -> list[str]:
        params = params_of(step, SyncParams)
        site, primary = context.site(params.site), context.site(params.primary)
        images = [i for i in await images_on(context, primary) if i.mode is not None]
        demoted = [image for image in images if not image.observed.primary]
        progress = await replay_progress_of(context, demoted, site, primary, in_sync=True)
        behind = [image for image in demoted if not progress[image.ref].done]
        lines = [f"wait until {site} has replayed everything {primary} wrote to "
                 f"{len(images)} mirrored image(s): {len(images) - len(demoted)} not demoted "
                 f"yet, {len(demoted) - len(behind)} in sync now, {len(behind)} behind"]
        return lines + grouped({image.ref: f"{site}'s copy {progress[image.ref].detail}"
                                for image in behind})

    async def run(self, step: AnyStep, context: StepContext) -> None:
        params = params_of(step, SyncParams)
        site, primary = context.site(params.site), context.site(params.primary)
        images = await images_on(context, primary)
        _refuse_unfit(images, site, primary)
        # Repeated after the promotion (a resumed run): Ceph promotes a copy, unforced,
        # only once it has replayed the demotion; and the data can no longer show it,
        # as the copy of the demotion snapshot is pruned once the new primary takes
        # snapshots of its own (seen on the lab: the step then waited until its timeout).
        promoted = {image.ref for image in await images_on(context, site)
                    if image.observed.primary}
        waiting = [image for image in images if image.ref not in promoted]
        started = context.now()
        progress: dict[ImageRef, Progress] = {
            ref: Progress(True, "is primary already: promoted once it had replayed the "
                                "demotion") for ref in promoted}
        nudges, next_nudge = 0, started + timedelta(seconds=NUDGE_AFTER_SECONDS)
        try:
            while waiting:
                progress |= await replay_progress_of(context, waiting, site, primary,
                                                     in_sync=True)
                if all(found.done for found in progress.values()):
                    break
                idle = [ref for ref, found in progress.items()
                        if not found.done and found.detail.startswith(NOT_STARTED)]
                if idle and nudges < NUDGES and context.now() > next_nudge:
                    nudges += 1
                    next_nudge = context.now() + timedelta(seconds=NUDGE_AGAIN_SECONDS)
                    await _nudge(context, site, idle)
                await asyncio.sleep(POLL_SECONDS)
        except asyncio.CancelledError:
            behind = [f"{ref}: {found.detail}" for ref, found in sorted(progress.items())
                      if not found.done]
            context.output.say(f"{len(behind)} image(s) still not in sync on {site} when "
                               f"the step was stopped: " + "; ".join(behind))
            raise
        done = context.now()
        out = context.output
        for image in images:
            out.say(f"{image.ref}: {site}'s copy {progress[image.ref].detail}")
        out.facts["already_primary"] = len(promoted & {image.ref for image in images})
        out.facts["in_sync_at"] = done.isoformat()
        out.facts["waited_seconds"] = round((done - started).total_seconds(), 3)
        out.facts["images"] = {mode.value: sum(1 for i in images if i.mode is mode)
                               for mode in MirrorMode}
        out.say(f"{site} holds everything {primary} wrote to {len(images)} image(s), after "
                f"{out.facts['waited_seconds']} s")


def _refuse_unfit(images: list[SiteImage], site: str, primary: str) -> None:
    """In sync means something only once the primary side stops writing."""
    unfit = [f"{image.ref}: still primary on {primary}; demote it first (rbd_demote)"
             for image in images if image.observed.primary]
    unfit += [f"{image.ref}: not mirrored on {primary}, so {site} holds no copy of it"
              for image in images if image.mode is None]
    if unfit:
        raise StepFailed(f"cannot wait for {site} to be in sync with {primary}: "
                         + "; ".join(unfit))


class RbdResync:
    """`rbd_resync {site, winner}`: every copy on the losing site that Ceph reports
    split-brained against the winner's primary is resynced from it, if the run may
    discard it; then each copy must replay from the winner again."""

    async def plan(self, step: AnyStep, context: StepContext) -> list[str]:
        params = params_of(step, ResyncParams)
        loser, winner = context.site(params.site), context.site(params.winner)
        # As the run starts: within its settle window, where a copy rbd-mirror has not
        # enabled mirroring on yet is waited for, not refused.
        decisions = await _resync_decisions(context, loser, winner, {}, settling=True)
        counts: dict[Act, int] = {}
        for decision in decisions.values():
            counts[decision.act] = counts.get(decision.act, 0) + 1
        lines = [f"resync on {loser} from {winner}: {counts.get(Act.ACT, 0)} split-brained, "
                 f"{counts.get(Act.SKIP, 0)} replaying, {counts.get(Act.WAIT, 0)} not settled "
                 f"yet, {counts.get(Act.REFUSE, 0)} refused"]
        lines += grouped({ref: decision.reason for ref, decision in decisions.items()
                          if decision.act is not Act.SKIP})
        refusal = resync_refusal(loser in context.cleanly_demoted, context.confirmed_winner, winner)
        if counts.get(Act.ACT) and refusal:
            lines.append(f"  it would stop there: {refusal}")
        return lines

    async def run(self, step: AnyStep, context: StepContext) -> None:
        params = params_of(step, ResyncParams)
        loser, winner = context.site(params.site), context.site(params.winner)
        if loser == winner:
            raise StepFailed(f"site {loser} cannot be both the losing side and the winner")
        requested: dict[ImageRef, datetime] = {}
        started = context.now()
        decisions: dict[ImageRef, Decision] = {}
        try:
            while True:
                decisions = await _resync_decisions(context, loser, winner, requested,
                                                    settling=not _settle_over(context, started))
                _refuse(decisions, loser, winner)
                _note_replaying(context, decisions, requested)
                repair = {ref: d for ref, d in decisions.items()
                          if d.act is Act.ACT and ref not in requested}
                undecided = [ref for ref, d in decisions.items()
                             if d.act is Act.WAIT and ref not in requested]
                # A refusal names every split-brained copy at once, so the operator
                # confirms once: it waits until the others have settled too.
                asks = resync_refusal(loser in context.cleanly_demoted, context.confirmed_winner,
                                      winner) is not None
                if repair and (not asks or not undecided or _settle_over(context, started)):
                    await _request(context, loser, winner, repair, requested)
                    continue
                waiting = {ref: d for ref, d in decisions.items() if d.act is not Act.SKIP}
                if not waiting:
                    break
                _give_up_if_stuck(context, waiting, requested, started, loser)
                await asyncio.sleep(RESYNC_POLL_SECONDS)
        except asyncio.CancelledError:
            context.output.say(f"copies on {loser} not yet replaying from {winner} when the "
                               f"step was stopped: " + _listed(decisions, Act.SKIP, negate=True))
            raise
        out = context.output
        for ref, decision in sorted(decisions.items()):
            out.say(f"{ref}: {decision.reason}")
        out.facts.setdefault("repairs", [])
        out.facts["resynced"] = len(requested)
        out.facts["replaying_at"] = context.now().isoformat()
        out.say(f"all {len(decisions)} copies on {loser} replay from {winner}; "
                f"{len(requested)} resynced")


async def _resync_decisions(context: StepContext, loser: str, winner: str,
                            requested: dict[ImageRef, datetime], *,
                            settling: bool = False) -> dict[ImageRef, Decision]:
    """One decision per image in scope on either side, from a fresh look at both."""
    winners = {image.ref: image for image in await images_on(context, winner)}
    losers = {image.ref: image for image in await images_on(context, loser)}
    copies = [image for ref, image in winners.items() if image.observed.primary
              and ref in losers and not losers[ref].observed.primary]
    replaying = await replay_progress_of(context, copies, loser, winner, in_sync=False)
    decisions = {}
    for ref in sorted(winners.keys() | losers.keys()):
        copy = losers.get(ref)
        health = None if copy is None else _health(copy, replaying.get(ref),
                                                   requested.get(ref))
        decision = resync_decision(None if copy is None else copy.observed,
                                   None if ref not in winners else winners[ref].observed,
                                   health, loser, winner, settling=settling)
        if ref in requested and decision.act is Act.ACT:
            decision = Decision(Act.WAIT, f"resync requested at {requested[ref]:%H:%M:%S}; "
                                          f"rbd-mirror has not acted on it yet")
        decisions[ref] = decision
    return decisions


def _health(copy: SiteImage, replaying: Progress | None,
            requested_at: datetime | None) -> CopyHealth:
    if requested_at is None:
        return judge_copy(copy.observed, copy.status, replaying)
    # A copy being resynced is judged on what happened since the request: a journal
    # copy's position may already be in the primary's tag while the whole-image copy
    # still runs, so only a complete snapshot copy, or a new "replaying" report, counts.
    status = copy.status
    if status is not None and (status.reported_at is None
                               or status.reported_at < requested_at - timedelta(seconds=1)):
        status = None
    evidence = replaying if copy.mode is MirrorMode.SNAPSHOT else None
    return judge_copy(copy.observed, status, evidence)


def _refuse(decisions: dict[ImageRef, Decision], loser: str, winner: str) -> None:
    refused = _listed(decisions, Act.REFUSE)
    if refused:
        raise StepFailed(f"cannot resync {loser} from {winner}, nothing resynced: {refused}")


async def _request(context: StepContext, loser: str, winner: str,
                   repair: dict[ImageRef, Decision], requested: dict[ImageRef, datetime]) -> None:
    refusal = resync_refusal(loser in context.cleanly_demoted, context.confirmed_winner, winner)
    shown = "; ".join(f"{ref}: {decision.reason}" for ref, decision in sorted(repair.items()))
    if refusal is not None:
        evidence = await _evidence(context, loser, winner, sorted(repair))
        raise StepFailed(f"{len(repair)} image(s) on {loser} are split-brained against "
                         f"{winner}: {shown}. Not resynced: {refusal}"
                         + (f". The snapshots say: {evidence}" if evidence else ""))
    handle = context.sites.cluster(loser)
    refs = sorted(repair)
    results = await for_each(refs, lambda ref: handle.run(
        lambda cluster: rbd_promotion.request_resync(cluster, ref)))
    why = (f"this run demoted {loser} and proved it replayed in full on {winner}: it "
           f"holds nothing newer" if loser in context.cleanly_demoted
           else f"winner {winner} confirmed by the operator")
    out = context.output
    repairs: list[dict[str, Any]] = out.facts.setdefault("repairs", [])
    now = context.now()
    for ref, result in zip(refs, results, strict=True):
        if isinstance(result, BaseException):
            continue
        requested[ref] = now
        repairs.append({"image": str(ref), "site": loser, "winner": winner,
                        "reason": repair[ref].reason, "allowed_by": why,
                        "requested_at": now.isoformat()})
        out.say(f"{ref}: resync of {loser}'s copy from {winner} requested "
                f"({repair[ref].reason}; {why})")
    failed = [f"{ref}: {result}" for ref, result in zip(refs, results, strict=True)
              if isinstance(result, BaseException)]
    if failed:
        raise StepFailed(f"requesting resyncs on {loser} failed for {len(failed)} image(s): "
                         + "; ".join(failed))


async def _evidence(context: StepContext, loser: str, winner: str, refs: list[ImageRef]) -> str:
    """For the operator choosing a winner: each side's newest snapshot taken as primary,
    for the snapshot-mode images among `refs` (journal mode keeps no such dates)."""
    sides: dict[str, dict[str, Snapshots]] = {}
    for site in (loser, winner):
        sides[site] = {}
        for (pool, namespace), group in namespaces_of(refs).items():
            try:
                sides[site] |= await on_site(context, site, partial(
                    _snapshots, pool=pool, namespace=namespace, names=[r.name for r in group]),
                    "reading mirror snapshots")
            except StepFailed:
                return ""  # evidence is a help; its absence must not hide the refusal
    lines = []
    for ref in refs:
        lost, won = sides[loser].get(ref.name), sides[winner].get(ref.name)
        if isinstance(lost, list) and lost and isinstance(won, list):
            lines.append(f"{ref}: {split_brain_evidence(lost, won, loser, winner)}")
    return "; ".join(lines)


def _snapshots(cluster: Any, pool: str, namespace: str, names: list[str]) -> dict[str, Snapshots]:
    ids = rbd_images.image_ids_by_name(cluster, pool, namespace)
    found = rbd_images.mirror_snapshots_many(cluster, pool, namespace,
                                             [ids[name] for name in names if name in ids])
    return {name: found.get(ids[name], CephError("not read")) for name in names if name in ids}


def _note_replaying(context: StepContext, decisions: dict[ImageRef, Decision],
                    requested: dict[ImageRef, datetime]) -> None:
    """Date each repair by when its new copy was first seen replaying."""
    for repair in context.output.facts.get("repairs", []):
        ref = next((r for r in requested if str(r) == repair["image"]), None)
        if (ref is not None and "replaying_at" not in repair
                and decisions.get(ref, Decision(Act.WAIT, "")).act is Act.SKIP):
            now = context.now()
            repair["replaying_at"] = now.isoformat()
            repair["seconds"] = round((now - requested[ref]).total_seconds(), 3)
            context.output.say(f"{ref}: the resynced copy replays again after "
                               f"{repair['seconds']} s ({decisions[ref].reason})")


def _give_up_if_stuck(context: StepContext, waiting: dict[ImageRef, Decision],
                      requested: dict[ImageRef, datetime], started: datetime,
                      loser: str) -> None:
    """A copy not resynced that stays undecided this long will not settle by itself."""
    if not _settle_over(context, started):
        return
    stuck = {ref: d for ref, d in waiting.items() if ref not in requested}
    if stuck:
        raise StepFailed(f"{len(stuck)} copies on {loser} neither replay nor report "
                         f"split-brain after {SETTLE_SECONDS:.0f} s: "
                         + "; ".join(f"{ref}: {d.reason}" for ref, d in sorted(stuck.items())))


def _settle_over(context: StepContext, started: datetime) -> bool:
    return (context.now() - started).total_seconds() >= SETTLE_SECONDS


def _listed(decisions: dict[ImageRef, Decision], act: Act, negate: bool = False) -> str:
    return "; ".join(f"{ref}: {decision.reason}" for ref, decision in sorted(decisions.items())
                     if (decision.act is act) != negate)


async def _nudge(context: StepContext, site: str, idle: list[ImageRef]) -> None:
    """Restart `site`'s rbd-mirror: the copies of `idle` have not started copying for
    long. What its rbd-mirror last reported on them is said first, for the operator."""
    try:
        reports = {image.ref: image.status for image in await images_on(context, site)
                   if image.ref in idle}
    except StepFailed as error:
        reports, unread = {}, str(error)
    else:
        unread = ""
    context.output.say(f"{len(idle)} copies on {site} have not started copying; its "
                       f"rbd-mirror reported: " + "; ".join(
                           f"{ref}: {_reported(reports.get(ref))}" for ref in idle)
                       + (f" ({unread})" if unread else ""))
    await restart_rbd_mirror_of(
        context, site,
        done_then=" (a replayer learns of a new snapshot by a notice, which a killed writer "
                  "may never send), so it scans them afresh",
        not_done=f"{len(idle)} copies on {site} have not started copying, and its "
                 f"rbd-mirror was not restarted")


def _reported(status: MirrorStatus | None) -> str:
    if status is None:
        return "nothing"
    return (f"{'up' if status.up else 'down'}+{status.state} {status.description!r}"
            + (f" at {status.reported_at:%H:%M:%S}" if status.reported_at else ""))
