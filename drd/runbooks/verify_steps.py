"""`verify_replication`: prove by data that a primary replicates to its replicas, without
touching tenant data.

A probe, a fresh nonce under the image-meta key `drd.probe`, is written to every image
in scope on the primary (in snapshot mode followed by a mirror snapshot, which is what
ships it), and the step waits until every replica's copy shows that nonce. rbd-mirror
carries image metadata in both modes (checked on Ceph 16.2.15, drd.ceph.rbd_metadata),
through the same journal or snapshot that carries the tenant's writes, so a probe seen
on a replica proves that replication runs from this primary to it now. The probe is
removed from the primary afterwards; in snapshot mode the removal reaches the replicas
with the next mirror snapshot.

From the promotion's `writable_at` (an earlier step's fact) to `protected_at` here,
writes on the new primary were unprotected: the step records that window.
"""

import asyncio
import secrets
from datetime import datetime
from typing import Any

from drd.ceph import rbd_images, rbd_metadata
from drd.domain.replication_plan import ImageRef, MirrorMode
from drd.domain.runbook_steps import AnyStep, ReverseParams
from drd.runbooks.image_work import failed_images, grouped, params_of
from drd.runbooks.site_images import SiteImage, images_on, namespaces_of, on_site
from drd.runbooks.step_api import StepContext, StepFailed, for_each

PROBE_KEY = "drd.probe"
POLL_SECONDS = 0.2


class VerifyReplication:
    """`verify_replication {primary, replicas}`."""

    async def plan(self, step: AnyStep, context: StepContext) -> list[str]:
        params = params_of(step, ReverseParams)
        primary = context.site(params.primary)
        replicas = [context.site(replica) for replica in params.replicas]
        images = await images_on(context, primary)
        snapshot = sum(1 for image in images if image.mode is MirrorMode.SNAPSHOT)
        lines = [f"write a probe ({PROBE_KEY}.<nonce>) into {len(images)} image(s) on {primary} "
                 f"({snapshot} in snapshot mode, each then mirror-snapshotted) and wait "
                 f"until {', '.join(replicas)} show it"]
        return lines + grouped({image.ref: f"{_why_unfit(image)} on {primary} now"
                                for image in images if _why_unfit(image)})

    async def run(self, step: AnyStep, context: StepContext) -> None:
        params = params_of(step, ReverseParams)
        primary = context.site(params.primary)
        replicas = [context.site(replica) for replica in params.replicas]
        if primary in replicas:
            raise StepFailed(f"site {primary} cannot be its own replica")
        images = await images_on(context, primary)
        if not images:
            context.output.say(f"no image in scope on {primary}: nothing to prove")
            return
        unfit = _unfit(images, primary)
        if unfit:
            raise StepFailed(f"cannot probe replication from {primary}, nothing written: "
                             + "; ".join(unfit))
        protected_at = await prove_by_probe(context, primary, images, replicas)
        out = context.output
        writable = _latest_writable(context)
        if writable is not None:
            window = round((protected_at - writable).total_seconds(), 3)
            out.facts["unprotected_seconds"] = window
            out.say(f"writes on {primary} were unprotected for {window} s, from its "
                    f"promotion to the proof of replication")


async def prove_by_probe(context: StepContext, primary: str, images: list[SiteImage],
                         replicas: list[str]) -> datetime:
    """Write a fresh probe into every image on the primary, wait until every replica
    shows it, remove it; when the last copy showed it. Facts and output say how long."""
    nonce = f"run-{context.run_id}-{secrets.token_hex(8)}"
    # A key of its own, so that two steps proving at once (the same-city and the remote
    # site's replication) never overwrite each other's probe.
    key = f"{PROBE_KEY}.{nonce}"
    out = context.output
    out.facts["probe"] = {"key": key, "value": nonce}
    written_at = context.now()
    try:
        await _write_probes(context, primary, images, key, nonce)
        arrived = await _wait_for_probes(context, images, replicas, key, nonce)
    finally:
        await _remove_probes(context, primary, images, key)
    protected_at = max(arrived.values(), default=context.now())
    out.facts["protected_at"] = protected_at.isoformat()
    for replica in replicas:
        slowest = max(at for (site, _), at in arrived.items() if site == replica)
        out.facts.setdefault("probe_seconds", {})[replica] = round(
            (slowest - written_at).total_seconds(), 3)
        out.say(f"{replica} shows the probe on all {len(images)} image(s), the last "
                f"{out.facts['probe_seconds'][replica]} s after it was written on "
                f"{primary}")
    return protected_at


def _why_unfit(image: SiteImage) -> str:
    if image.mode is None:
        return "not mirrored"
    return "" if image.observed.primary else "not primary"


def _unfit(images: list[SiteImage], primary: str) -> list[str]:
    return [f"{image.ref}: {_why_unfit(image)} on {primary}" for image in images
            if _why_unfit(image)]


async def _write_probes(context: StepContext, primary: str, images: list[SiteImage],
                        key: str, nonce: str) -> None:
    handle = context.sites.cluster(primary)

    def write(image: SiteImage) -> None:
        def call(cluster: Any) -> None:
            rbd_metadata.set_metadata(cluster, image.ref, key, nonce)
            if image.mode is MirrorMode.SNAPSHOT:
                rbd_images.take_mirror_snapshot(cluster, image.ref)
        handle.run(call)

    failed = failed_images(images, await for_each(images, write))
    if failed:
        raise StepFailed(f"writing the replication probe on {primary} failed for "
                         f"{len(failed)} image(s): " + "; ".join(failed))


async def _wait_for_probes(context: StepContext, images: list[SiteImage], replicas: list[str],
                           key: str, nonce: str) -> dict[tuple[str, ImageRef], datetime]:
    """When each replica first showed the nonce on each image; polls until all have."""
    arrived: dict[tuple[str, ImageRef], datetime] = {}
    seen: dict[tuple[str, ImageRef], str] = {}
    try:
        while True:
            for replica in replicas:
                pending = [image.ref for image in images if (replica, image.ref) not in arrived]
                for ref, value in (await _probe_values(context, replica, pending, key)).items():
                    seen[(replica, ref)] = value
                    if value == nonce:
                        arrived[(replica, ref)] = context.now()
            if len(arrived) == len(images) * len(replicas):
                return arrived
            await asyncio.sleep(POLL_SECONDS)
    except asyncio.CancelledError:
        missing = [f"{ref} on {site} (shows {seen.get((site, ref), 'nothing')})"
                   for site in replicas for ref in (image.ref for image in images)
                   if (site, ref) not in arrived]
        context.output.say(f"the probe had not reached {len(missing)} copies when the step "
                           f"was stopped: " + "; ".join(missing))
        raise


async def _probe_values(context: StepContext, site: str, refs: list[ImageRef], key: str
                        ) -> dict[ImageRef, str]:
    """The probe value each image's copy on `site` shows now ("no copy", "unset", or
    the value)."""
    found: dict[ImageRef, str] = {}
    for (pool, namespace), group in namespaces_of(refs).items():
        def read(cluster: Any, pool: str = pool, namespace: str = namespace,
                 group: list[ImageRef] = group) -> dict[ImageRef, str]:
            ids = rbd_images.image_ids_by_name(cluster, pool, namespace)
            values = rbd_metadata.metadata_values(
                cluster, pool, namespace, [ids[r.name] for r in group if r.name in ids], key)
            shown: dict[ImageRef, str] = {}
            for ref in group:
                value = values.get(ids[ref.name]) if ref.name in ids else "no copy"
                shown[ref] = "unset" if value is None else str(value)
            return shown
        found |= await on_site(context, site, read, f"reading the replication probe in "
                                                    f"{pool}/{namespace}")
    return found


async def _remove_probes(context: StepContext, primary: str, images: list[SiteImage],
                         key: str) -> None:
    """Leave the primary as the step found it; a probe left behind is harmless, so a
    failure here is said, not raised."""
    handle = context.sites.cluster(primary)
    results = await for_each(images, lambda image: handle.run(
        lambda cluster: rbd_metadata.remove_metadata(cluster, image.ref, key)))
    failed = failed_images(images, results)
    if failed:
        context.output.say(f"could not remove the probe {key} from {len(failed)} "
                           f"image(s) on {primary}: " + "; ".join(failed))


def _latest_writable(context: StepContext) -> datetime | None:
    """The newest `writable_at` an earlier step of the run recorded."""
    found = [facts["writable_at"] for facts in context.facts.values()
             if isinstance(facts.get("writable_at"), str)]
    return max((datetime.fromisoformat(at) for at in found), default=None)
