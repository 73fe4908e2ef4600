"""What the RBD steps read of a site's images: each image in scope with its mirroring
state and rbd-mirror's status there, and how far one site's copies have replayed
another's, in a few batched rounds per namespace whatever the number of images.

Read afresh at every call, never remembered: a step repeated after a crash sees the
state the crash left.
"""

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

from drd.ceph import rbd_images
from drd.ceph.cluster import CephError
from drd.ceph.rbd_observe import observe_pool_batched
from drd.ceph.rbd_promotion import local_statuses
from drd.domain import replay_progress
from drd.domain.journal_position import JournalClient
from drd.domain.rbd_step_decisions import MirrorStatus
from drd.domain.replay_progress import Progress
from drd.domain.replication_plan import ImageRef, MirrorMode, ObservedImage
from drd.domain.rpo import MirrorSnapshot
from drd.runbooks.scope import scope_on
from drd.runbooks.step_api import ScopedImage, StepContext, StepFailed

T = TypeVar("T")
Namespace = tuple[str, str]  # pool, namespace


@dataclass(frozen=True)
class SiteImage:
    """One image in scope as a site holds it now."""

    scoped: ScopedImage
    observed: ObservedImage
    status: MirrorStatus | None  # the site's rbd-mirror's last report on its copy

    @property
    def ref(self) -> ImageRef:
        return self.scoped.ref

    @property
    def mode(self) -> MirrorMode | None:
        return self.observed.mode


async def on_site(context: StepContext, site: str, call: Callable[[Any], T], doing: str) -> T:
    """`call(cluster)` on `site`'s cluster in a worker thread; StepFailed naming the site
    and what was being done when Ceph fails or does not answer."""
    handle = context.sites.cluster(site)
    try:
        return await context.in_thread(lambda: handle.run(call))
    except (CephError, TimeoutError) as error:
        raise StepFailed(f"{doing} on site {site}: {error or 'no answer'}") from error


async def images_on(context: StepContext, site: str) -> list[SiteImage]:
    """Every image in scope on `site` with its mirroring state and status, by name."""
    scope = await scope_on(context, site)
    namespaces = sorted({(image.ref.pool, image.ref.namespace) for image in scope})

    def read(cluster: Any) -> tuple[dict[ImageRef, ObservedImage], dict[ImageRef, MirrorStatus]]:
        observed: dict[ImageRef, ObservedImage] = {}
        statuses: dict[ImageRef, MirrorStatus] = {}
        for pool, namespace in namespaces:
            found = observe_pool_batched(cluster, pool, namespace)
            by_id = local_statuses(cluster, pool, namespace)
            for image in found:
                observed[image.ref] = image
                if image.image_id in by_id:
                    statuses[image.ref] = by_id[image.image_id]
        return observed, statuses

    observed, statuses = await on_site(context, site, read, "reading the mirroring of the "
                                                            "images in scope")
    # An image removed (or being recreated by a resync) since it was listed is left out.
    return [SiteImage(image, observed[image.ref], statuses.get(image.ref))
            for image in scope if image.ref in observed]


def by_tenant(images: Iterable[SiteImage]) -> dict[str, list[SiteImage]]:
    grouped: dict[str, list[SiteImage]] = {}
    for image in images:
        grouped.setdefault(image.scoped.tenant, []).append(image)
    return grouped


def namespaces_of(refs: Iterable[ImageRef]) -> dict[Namespace, list[ImageRef]]:
    grouped: dict[Namespace, list[ImageRef]] = {}
    for ref in sorted(refs):
        grouped.setdefault((ref.pool, ref.namespace), []).append(ref)
    return grouped


@dataclass(frozen=True)
class ReplayData:
    """What one namespace's images show of replay from a primary side to a copy site."""

    primary_snaps: dict[str, list[MirrorSnapshot] | CephError]  # by image name
    copy_snaps: dict[str, list[MirrorSnapshot] | CephError]
    journals: dict[str, list[JournalClient] | CephError]  # the primary side's, by name
    copy_client: str | None  # the copy site's journal client id on the primary side


async def replay_progress_of(context: StepContext, images: list[SiteImage], copy_site: str,
                             primary_site: str, in_sync: bool) -> dict[ImageRef, Progress]:
    """For each of `images` (as the primary side holds them), what its copy on
    `copy_site` has replayed: `in_sync` asks whether it holds everything, otherwise
    whether it replays anything written since the promotion."""
    found: dict[ImageRef, Progress] = {}
    modes = {image.ref: image.mode for image in images}
    for (pool, namespace), refs in namespaces_of(modes).items():
        snapshot = [ref.name for ref in refs if modes[ref] is MirrorMode.SNAPSHOT]
        journal = [ref.name for ref in refs if modes[ref] is MirrorMode.JOURNAL]
        data = await _replay_data(context, pool, namespace, snapshot=snapshot,
                                  journal=journal, copy_site=copy_site,
                                  primary_site=primary_site)
        for ref in refs:
            found[ref] = _progress(ref.name, modes[ref], data, copy_site, in_sync)
    return found


def _progress(name: str, mode: MirrorMode | None, data: ReplayData, copy_site: str,
              in_sync: bool) -> Progress:
    if mode is MirrorMode.SNAPSHOT:
        primary, copy = data.primary_snaps.get(name), data.copy_snaps.get(name)
        if not isinstance(primary, list):
            return Progress(False, f"cannot read its snapshots: {primary}")
        if not isinstance(copy, list):
            return Progress(False, f"cannot read the copy on {copy_site}: {copy}")
        if in_sync:
            return replay_progress.snapshot_in_sync(primary, copy)
        return replay_progress.snapshot_replaying(primary, copy)
    if mode is MirrorMode.JOURNAL:
        if data.copy_client is None:
            return Progress(False, f"site {copy_site} is not a mirror peer of this pool")
        clients = data.journals.get(name)
        if not isinstance(clients, list):
            return Progress(False, f"cannot read its journal: {clients}")
        if in_sync:
            return replay_progress.journal_in_sync(clients, data.copy_client)
        return replay_progress.journal_replaying(clients, data.copy_client)
    return Progress(False, "not mirrored")


async def _replay_data(context: StepContext, pool: str, namespace: str, *,
                       snapshot: list[str], journal: list[str], copy_site: str,
                       primary_site: str) -> ReplayData:
    def primary_side(cluster: Any) -> tuple[dict[str, list[MirrorSnapshot] | CephError],
                                            dict[str, list[JournalClient] | CephError],
                                            str | None]:
        ids = rbd_images.image_ids_by_name(cluster, pool, namespace)
        snaps = _by_name(ids, snapshot, lambda wanted: rbd_images.mirror_snapshots_many(
            cluster, pool, namespace, wanted))
        clients = _by_name(ids, journal, lambda wanted: rbd_images.journal_clients(
            cluster, pool, namespace, wanted))
        peer = rbd_images.peer_mirror_uuids(cluster, pool).get(copy_site) if journal else None
        return snaps, clients, peer

    def copy_side(cluster: Any) -> dict[str, list[MirrorSnapshot] | CephError]:
        ids = rbd_images.image_ids_by_name(cluster, pool, namespace)
        return _by_name(ids, snapshot, lambda wanted: rbd_images.mirror_snapshots_many(
            cluster, pool, namespace, wanted))

    # The primary side first: a copy read after it is compared with no newer state.
    snaps, clients, peer = await on_site(context, primary_site, primary_side,
                                         f"reading mirror snapshots and journals of {pool}/"
                                         f"{namespace}")
    copies = (await on_site(context, copy_site, copy_side,
                            f"reading mirror snapshots of {pool}/{namespace}")
              if snapshot else {})
    return ReplayData(snaps, copies, clients, peer)


def _by_name(ids: dict[str, str], names: list[str],
             read: Callable[[list[str]], dict[str, T | CephError]]) -> dict[str, T | CephError]:
    """`read` of the images among `names` that exist, by name; the others as missing."""
    if not names:
        return {}
    present = [name for name in names if name in ids]
    found = read([ids[name] for name in present])
    result: dict[str, T | CephError] = {name: CephError("no such image there (yet)")
                                        for name in names if name not in ids}
    result |= {name: found.get(ids[name], CephError("not read")) for name in present}
    return result
