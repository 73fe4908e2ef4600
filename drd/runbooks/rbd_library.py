"""The RBD and health part of the step library: which executor runs each step type."""

from drd.runbooks.health_steps import CephHealth, MirrorState, PeerReachable
from drd.runbooks.rbd_steps import MirrorSnapshot, RbdDemote, RbdForcePromote, RbdPromote
from drd.runbooks.remote_steps import RbdRemoteFollow
from drd.runbooks.rpo_steps import RpoWithin
from drd.runbooks.step_api import StepExecutor
from drd.runbooks.sync_steps import RbdResync, WaitInSync
from drd.runbooks.verify_steps import VerifyReplication


def rbd_executors() -> dict[str, StepExecutor]:
    """Executors by step type: health checks, RBD promotion, sync and verification."""
    return {
        "ceph_health": CephHealth(),
        "peer_reachable": PeerReachable(),
        "mirror_state": MirrorState(),
        "rpo_within": RpoWithin(),
        "rbd_demote": RbdDemote(),
        "rbd_promote": RbdPromote(),
        "rbd_force_promote": RbdForcePromote(),
        "rbd_resync": RbdResync(),
        "wait_in_sync": WaitInSync(),
        "mirror_snapshot": MirrorSnapshot(),
        "verify_replication": VerifyReplication(),
        "rbd_remote_follow": RbdRemoteFollow(),
    }
