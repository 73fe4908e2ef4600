"""Stopping a replayer that will not let go of a force-promoted copy.

Measured on Ceph 16.2.15 (the lab) with every Ceph daemon of the lost site killed: after
`promote --force` of a journal-mode copy, the local rbd-mirror keeps the image's
exclusive lock and refuses it to any writer (EROFS) for as long as we watched (over
two minutes). Its replayer's shutdown waits on the lost cluster, which never answers.
Blocklisting that rbd-mirror client at the promoting site frees the lock within 0.3 s.
That is what stopping replay from the lost site means here. The fenced rbd-mirror then
fails every call, and does not restart its pool replayers by itself. So the site's
rbd-mirror must be restarted afterwards, before this site can replicate again.

Only a holder that logged in as an rbd-mirror daemon is fenced this way. Any other
client holding the lock of a copy that was non-primary a moment ago fails the step,
naming it, for an operator to look at.
"""

import asyncio
from dataclasses import dataclass, field
from typing import Any

from drd.ceph import rbd_fencing
from drd.domain.rbd_step_decisions import Act, stuck_lock_decision
from drd.domain.replication_plan import ImageRef
from drd.runbooks.site_images import on_site
from drd.runbooks.step_api import StepContext, StepFailed, for_each

# How long a freshly force-promoted copy may wait for its local replayer to let go by
# itself; with the lost peer's cluster alive it lets go at once (see rbd_steps).
RELEASE_GRACE_SECONDS = 5.0
# The same when the lost site's drd does not answer either: its cluster is most likely
# dead, and then the replayer never lets go (measured above), so waiting 5 s only adds
# to the RTO. A replayer that would have let go costs a restart, nothing more.
LOST_SITE_GRACE_SECONDS = 1.0


@dataclass
class StuckReplayers:
    """The rbd-mirror clients fenced at one site during one forced promotion; each
    address is blocklisted once, however many images it held."""

    site: str
    grace: float = RELEASE_GRACE_SECONDS
    fenced: dict[str, list[str]] = field(default_factory=dict)  # address -> images
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    async def release(self, context: StepContext, ref: ImageRef) -> None:
        """Fence the rbd-mirror that holds `ref`'s exclusive lock at the site."""
        holders = await on_site(context, self.site,
                                lambda cluster: rbd_fencing.image_holders(cluster, ref),
                                f"listing who holds {ref}")
        lockers = [h for h in holders if "exclusive lock" in h.how]
        for holder in lockers:
            decision = stuck_lock_decision(holder.entity)
            if decision.act is not Act.ACT:
                raise StepFailed(
                    f"{ref} is primary on {self.site}, but {holder.client} at "
                    f"{holder.address} keeps it unwritable: {decision.reason}; drd fences "
                    f"only a stuck replayer: find and stop that client, then resume the run")
            async with self._lock:
                if holder.address not in self.fenced:
                    await on_site(context, self.site, _blocklister(holder.address),
                                  f"fencing the stuck replayer {holder.client} at "
                                  f"{holder.address}")
                    context.output.say(
                        f"fenced {holder.client} ({holder.entity}) at {holder.address} on "
                        f"{self.site} (osd blocklist): this site's rbd-mirror kept {ref} "
                        f"locked for its replay from the lost site")
                    self.fenced[holder.address] = []
                self.fenced[holder.address].append(str(ref))

    async def fence_before(self, context: StepContext, refs: list[ImageRef]) -> None:
        """Fence, before the promotion, every replayer at the site that holds one of the
        copies' locks. Only for a lost site: its replayers will never let go, so each
        first wave of promotions would otherwise wait out the grace (measured: about 1 s
        of a 100-image takeover), and the restart after costs the same either way. A
        lock owner that is not an rbd-mirror daemon is left to `release`, which refuses
        to fence it."""
        handle = context.sites.cluster(self.site)
        owners = await for_each(refs, lambda ref: handle.run(
            lambda cluster: rbd_fencing.lock_owners(cluster, ref)))
        held: dict[str, list[str]] = {}
        for ref, found in zip(refs, owners, strict=True):
            if isinstance(found, BaseException):
                continue  # left to the promotion's own path
            for _client, address in found:
                held.setdefault(address, []).append(str(ref))
        if not held:
            return
        entities = await on_site(context, self.site, rbd_fencing.client_entities,
                                 f"listing the sessions at {self.site}")
        for address, images in sorted(held.items()):
            entity = entities.get(address)
            if stuck_lock_decision(entity).act is not Act.ACT:
                continue
            await on_site(context, self.site, _blocklister(address),
                          f"fencing the replayer {entity} at {address}")
            context.output.say(f"fenced {entity} at {address} on {self.site} (osd "
                               f"blocklist): this site's rbd-mirror locked {len(images)} "
                               f"copies for its replay from the lost site, which never "
                               f"lets go; fenced before promoting them")
            self.fenced[address] = images

    async def restart_fenced(self, context: StepContext) -> None:
        """Restart the site's rbd-mirror if one of its clients was fenced, or say loudly
        that an operator must; the promotion itself stands either way."""
        if not self.fenced:
            return
        out = context.output
        out.facts["replayers_fenced"] = [{"address": address, "images": images}
                                         for address, images in self.fenced.items()]
        try:
            done = await context.in_thread(
                lambda: context.sites.restart_rbd_mirror(self.site))
        except StepFailed as error:
            out.facts["rbd_mirror_restart_needed"] = str(error)
            out.say(f"WARNING: site {self.site}'s rbd-mirror was fenced and is not "
                    f"restarted, so it replicates nothing until it is: {error}")
            return
        out.facts["rbd_mirror_restarted"] = done
        out.say(f"{done}: the fenced rbd-mirror replicates again")


def _blocklister(address: str) -> Any:
    return lambda cluster: rbd_fencing.blocklist(cluster, address)
