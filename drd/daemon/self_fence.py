"""How a site fences itself out of a protection group it no longer holds the lease of:
first cut off every client that may write its images, then demote them all at once.

Demotion alone is not fast enough. Measured on the lab (Ceph 16.2.15) with a cut off from
b and c: demoting four journal images took 25 s, because each demotion notifies every
watcher of the image, and the watchers of the cut-off peers' rbd-mirror daemons never
answer; the OSD waits them out. Meanwhile the tenant kept writing to a copy b had
already promoted. A blocklist entry is one monitor command and takes effect within a
second, so writers are stopped first. The peers' rbd-mirror daemons only read, and are
left alone (`fence_decision`), unless a peer is not seen alive: then its watches are the
ones the demotion would wait out, and blocklisting them here harms nothing (the peer is
re-pointed to the new primary and its rbd-mirror restarted by the takeover). A watch
does not tell which peer it belongs to, so with any peer gone every peer's rbd-mirror
is cut off from this site; the others reconnect. That means every session of the peer
user, not only the image's watchers: a peer replaying a journal image watches the
journal's header object instead, and those watches alone held a's demotion of four
journal images for about 20 s in the chaos experiment production-isolated.
"""

import asyncio
from dataclasses import dataclass, field

from drd.ceph import rbd_fencing, rbd_images, rbd_promotion
from drd.ceph.cluster import CephError, ClusterHandle
from drd.daemon.lease_threads import in_lease_thread
from drd.domain.rbd_step_decisions import Act, fence_decision
from drd.domain.replication_plan import ImageRef
from drd.domain.tenant_policy import BlockSelection


@dataclass
class SelfFence:
    """What fencing did: the writers blocklisted, and the images demoted or not."""

    blocklisted: list[str] = field(default_factory=list)
    demoted: int = 0
    failed: list[str] = field(default_factory=list)

    def summary(self) -> str:
        text = (f"blocklisted {len(self.blocklisted)} client(s), demoted {self.demoted} of "
                f"{self.demoted + len(self.failed)} image(s)")
        return text + (f"; failed: {'; '.join(self.failed)}" if self.failed else "")


async def fence_images(handle: ClusterHandle, refs: list[ImageRef], *,
                       peer_lost: bool) -> SelfFence:
    outcome = SelfFence()
    await _stop_writers(handle, refs, outcome, readers_too=peer_lost)

    async def demote(ref: ImageRef) -> str | None:
        try:
            await in_lease_thread(handle.run,
                                    lambda cluster: rbd_promotion.demote(cluster, ref))
        except (CephError, TimeoutError) as error:
            return f"{ref}: {error}"
        return None
    failed = [error for error in await asyncio.gather(*map(demote, refs)) if error]
    outcome.demoted = len(refs) - len(failed)
    outcome.failed += failed
    return outcome


async def _stop_writers(handle: ClusterHandle, refs: list[ImageRef], outcome: SelfFence, *,
                        readers_too: bool) -> None:
    async def holders(ref: ImageRef) -> list[rbd_fencing.Holder]:
        try:
            return await in_lease_thread(
                handle.run, lambda cluster: rbd_fencing.image_holders(cluster, ref))
        except (CephError, TimeoutError) as error:
            outcome.failed.append(f"listing the clients of {ref}: {error}")
            return []
    writers = {holder.address for found in await asyncio.gather(*map(holders, refs))
               for holder in found
               if readers_too or fence_decision(holder.entity).act is Act.ACT}
    if readers_too:
        for pool in sorted({ref.pool for ref in refs}):
            try:
                writers |= set(await in_lease_thread(
                    handle.run, lambda cluster, pool=pool: rbd_fencing.peer_replayers(
                        cluster, pool)))
            except (CephError, TimeoutError) as error:
                outcome.failed.append(f"listing the peers' replayers of pool {pool}: {error}")
    for address in sorted(writers):
        try:
            await in_lease_thread(
                handle.run, lambda cluster, address=address: rbd_fencing.blocklist(cluster,
                                                                                   address))
        except (CephError, TimeoutError) as error:
            outcome.failed.append(f"blocklisting {address}: {error}")
        else:
            outcome.blocklisted.append(address)


def _primaries(handle: ClusterHandle, block: BlockSelection) -> list[ImageRef]:
    observed = handle.run(lambda cluster: rbd_images.observe_pool(
        cluster, block.pool, block.namespace))
    return [image.ref for image in observed if image.primary and block.selects(image.ref.name)]


async def primaries_at(handle: ClusterHandle, block: BlockSelection) -> list[ImageRef] | None:
    """The group's images that are primary on this site (`handle`); None when its Ceph
    does not say (not answering yet)."""
    try:
        return await in_lease_thread(_primaries, handle, block)
    except (CephError, TimeoutError):
        return None


async def _primaries_at_old_site(handle: ClusterHandle,
                                 block: BlockSelection) -> list[ImageRef] | None:
    # Not in a lease thread: while the old site is dead, every call holds its thread for
    # the whole Ceph deadline.
    try:
        return await asyncio.to_thread(_primaries, handle, block)
    except (CephError, TimeoutError):
        return None


async def fence_returned(own: ClusterHandle, old: ClusterHandle,
                         block: BlockSelection) -> str | None:
    """After a takeover, fence the old primary's copies as soon as its Ceph answers again.

    A site that returns from a power loss or a freeze comes back with its copies primary,
    and its own drd fences them only once it has started and asked its peers: seconds in
    which its clients could write. The holder does it from here the moment the old
    site's Ceph answers. Only while this site's own copies are all primary: during an
    operator's failback they are demoted first, and the old site's promotion is then
    the operator's, not a stale one.

    None while there is nothing to decide yet (the old site unreachable, or this site
    not serving); otherwise what was found or done, and the guard's work is over.
    """
    mine, theirs = await asyncio.gather(primaries_at(own, block),
                                        _primaries_at_old_site(old, block))
    if theirs is None or not mine:
        return None
    if not theirs:
        return "the old primary's copies are all non-primary"
    outcome = await fence_images(old, theirs, peer_lost=False)
    if outcome.failed:
        return None  # tried again next round
    return f"fenced the old primary's returned copies: {outcome.summary()}"
