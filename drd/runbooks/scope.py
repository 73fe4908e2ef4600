"""The images a run acts on, as found on one site now.

Resolved afresh by every step from the tenants' policies and the site's pools, never
remembered from the plan: an image created since is included, and a step repeated
after a crash sees the state the crash left.
"""

from typing import Any

from drd.ceph.cluster import CephError
from drd.ceph.rbd_images import image_ids_by_name
from drd.domain.replication_plan import ImageRef
from drd.runbooks.step_api import ScopedImage, StepContext, StepFailed


def list_scope(cluster: Any, context: StepContext) -> list[ScopedImage]:
    """Every image of a tenant in scope that one of its block selections selects.

    Blocking (librbd): call it in a worker thread.
    """
    found: list[ScopedImage] = []
    for tenant in context.tenants():
        for block in context.policies[tenant].protection.block:
            names = image_ids_by_name(cluster, block.pool, block.namespace)
            found += [ScopedImage(tenant, block.name, ImageRef(block.pool, block.namespace, n))
                      for n in sorted(names) if block.selects(n)]
    return found


async def scope_on(context: StepContext, site: str) -> list[ScopedImage]:
    """The images in scope on `site`; StepFailed if its cluster cannot be read."""
    handle = context.sites.cluster(site)
    try:
        return await context.in_thread(lambda: handle.run(lambda c: list_scope(c, context)))
    except CephError as error:
        raise StepFailed(f"cannot list the images in scope on site {site}: {error}") from error
