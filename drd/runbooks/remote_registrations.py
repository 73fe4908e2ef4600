"""Stale journal registrations of the remote site at a primary, cleared once its copies'
resyncs are requested (why: drd.ceph.journal_registrations)."""

from collections.abc import Callable
from typing import Any

from drd.ceph import journal_registrations, rbd_images
from drd.domain.rbd_step_decisions import registration_stale
from drd.domain.replication_plan import ImageRef
from drd.runbooks.site_images import namespaces_of, on_site
from drd.runbooks.step_api import StepContext, StepFailed, for_each


async def clear_stale_registrations(context: StepContext, remote: str, primary: str,
                                     refs: list[ImageRef]) -> None:
    """Unregister the remote's rbd-mirror from the primary's journal of each copy whose
    registration names a copy the remote no longer holds (see journal_registrations)."""
    if not refs:
        return
    out = context.output
    client_ids = {pool: await on_site(context, remote, _uuid_reader(pool),
                                      f"reading the mirror uuid of pool {pool}")
                  for pool in sorted({ref.pool for ref in refs})}
    copies: dict[ImageRef, str] = {}
    for (pool, namespace), group in namespaces_of(refs).items():
        ids = await on_site(context, remote, _ids_reader(pool, namespace),
                            f"listing the copies in {pool}/{namespace}")
        copies |= {ref: ids[ref.name] for ref in group if ref.name in ids}
    handle = context.sites.cluster(primary)
    registered = await for_each(refs, lambda ref: handle.run(
        lambda cluster: journal_registrations.registered_copy(cluster, ref,
                                                              client_ids[ref.pool])))
    unreadable = [f"{ref}: {got}" for ref, got in zip(refs, registered, strict=True)
                  if isinstance(got, BaseException)]
    if unreadable:
        out.say(f"WARNING: {remote}'s journal registrations on {primary} not read for "
                f"{len(unreadable)} copies: " + "; ".join(unreadable))
    stale = [ref for ref, got in zip(refs, registered, strict=True)
             if not isinstance(got, BaseException)
             and registration_stale(got, copies.get(ref))]
    results = await for_each(stale, lambda ref: handle.run(
        lambda cluster: journal_registrations.unregister(cluster, ref, client_ids[ref.pool])))
    failed = [f"{ref}: {result}" for ref, result in zip(stale, results, strict=True)
              if isinstance(result, BaseException)]
    if failed:
        raise StepFailed(f"unregistering {remote}'s stale journal clients on {primary} "
                         f"failed for {len(failed)} copies: " + "; ".join(failed))
    if stale:
        out.facts.setdefault("stale_registrations_cleared", {}).setdefault(
            remote, []).extend(str(ref) for ref in stale)
        out.say(f"{primary}'s journal still registered {remote} with an earlier copy of "
                f"{len(stale)} image(s), which no resync cures on Ceph 16.2.15: "
                f"unregistered, so {remote} registers its copy anew and resyncs it")


def _uuid_reader(pool: str) -> Callable[[Any], str]:
    return lambda cluster: journal_registrations.mirror_uuid(cluster, pool)


def _ids_reader(pool: str, namespace: str) -> Callable[[Any], dict[str, str]]:
    return lambda cluster: rbd_images.image_ids_by_name(cluster, pool, namespace)
