"""What the drill's three steps share: the two sites of a drill, how long a step may
wait for replication, and the clones of a run as found on the replica.

Later steps find the clones on the replica itself, by the marks the clone step wrote on
them, and not in the run's facts: a step repeated after a crash, or a cleanup after a
clone step that failed halfway, sees what is really there.
"""

from drd.ceph import rbd_drill
from drd.ceph.cluster import CephError
from drd.domain.drill import CloneMarks
from drd.domain.replication_plan import ImageRef
from drd.domain.runbook_steps import AnyStep
from drd.runbooks.step_api import StepContext, StepFailed

# Of a step's timeout, what is kept back for reporting after a wait gives up.
_REPORT_MARGIN_SECONDS = 15.0


def drill_sites(site_param: str, context: StepContext) -> tuple[str, str]:
    """(source, replica): the run's source, where the drill snapshots are taken, and
    the step's site, where the clones go."""
    source, site = context.target.source, context.site(site_param)
    if site == source:
        raise StepFailed(f"a drill clones at a replica, but the step's site {site} is the "
                         f"run's source; drill at the site that {source} replicates to")
    return source, site


def wait_budget(step: AnyStep) -> float:
    """Seconds a step may wait on replication and still report which images were late."""
    total = step.timeout.total_seconds()
    return max(total - _REPORT_MARGIN_SECONDS, total / 2)


async def clones_of_run(context: StepContext, site: str) -> list[tuple[ImageRef, CloneMarks]]:
    """Every drill clone this run made on `site`, in every pool."""
    handle = context.sites.cluster(site)
    try:
        found = await context.in_thread(lambda: handle.run(rbd_drill.drill_clones))
    except CephError as error:
        raise StepFailed(f"cannot list the drill clones on site {site}: {error}") from error
    return [(ref, marks) for ref, marks in found
            if marks is not None and marks.run_id == context.run_id]
