"""The step library as runbook YAML writes it: each step type, its parameters, and the
parts every step shares. Pure: what a step *does* lives in drd/runbooks.

Steps are a union tagged by `type`, so a step type that does not exist, or a parameter
that is missing or unknown, is an error with its file and line before anything runs.

Sites in parameters are written as `source` or `target` (the run's sites, so one
runbook serves any pair) or as a site's name.
"""

from enum import StrEnum
from typing import Annotated, Literal, get_args

from pydantic import AnyHttpUrl, BaseModel, ConfigDict, Field, model_validator

from drd.domain.durations import PositiveDuration

SITE_ROLES = ("source", "target")
STEP_NAME_PATTERN = r"^[a-z0-9][a-z0-9-]{0,62}$"

SiteRef = Annotated[str, Field(
    pattern=r"^[a-z][a-z0-9-]{0,31}$",
    description="`source`, `target` (the run's sites) or a site's name.",
    examples=["target"])]


class OnFailure(StrEnum):
    ABORT = "abort"  # stop the run, failed
    CONTINUE = "continue"  # note the failure and go on with the next steps
    PAUSE = "pause"  # stop and wait for an operator's `drd runbook resume`


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Retry(_Model):
    """How often a failed step is tried again (tenacity), and the wait between tries."""

    attempts: int = Field(default=1, ge=1, le=100, strict=True,
                          description="Tries in all, the first included; 1 never retries.")
    wait: PositiveDuration = Field(default="2s", validate_default=True,
                                   description="Wait between tries.")


class SiteParams(_Model):
    site: SiteRef


class PromoteParams(_Model):
    site: SiteRef
    # Promote is retried while the demotion propagates ("demotion is not propagated yet").
    propagation_timeout: PositiveDuration = Field(default="60s", validate_default=True)


class ForcePromoteParams(_Model):
    site: SiteRef = Field(description="The site that becomes primary.")
    lost: SiteRef = Field(description="The lost site: replay from it stops, and its "
                                      "clients are blocklisted at its Ceph when reachable.")


class ResyncParams(_Model):
    site: SiteRef = Field(description="The losing side, whose copies are discarded.")
    winner: SiteRef = Field(description="The side whose data is kept.")


class SyncParams(_Model):
    site: SiteRef = Field(description="The side that must catch up.")
    primary: SiteRef = Field(description="The side it replays from.")


class ReverseParams(_Model):
    primary: SiteRef = Field(description="The new primary, where the probe is written.")
    replicas: tuple[SiteRef, ...] = Field(min_length=1,
                                          description="Where the probe must arrive.")


class FollowParams(_Model):
    primary: SiteRef = Field(description="The new primary the remote site must pull from.")


class RpoParams(_Model):
    site: SiteRef = Field(description="The primary whose destinations are measured.")
    bound: PositiveDuration | None = Field(
        default=None, description="Largest RPO accepted; default each destination's "
                                  "own target from the tenant's policy.")
    lost: SiteRef | None = Field(
        default=None, description="A site lost in a failover: nothing replicates to it, "
                                  "so it is left out and reported as unprotected.")


class HookParams(_Model):
    command: tuple[str, ...] = Field(min_length=1, description="argv of the hook; no shell.")


class ApprovalParams(_Model):
    message: str = Field(min_length=1, description="What the operator approves.")


class NotifyParams(_Model):
    message: str = Field(min_length=1)
    webhook: AnyHttpUrl | None = Field(default=None,
                                       description="POSTed a JSON event; failures are logged.")


class DrillVerify(StrEnum):
    CHECKSUM = "checksum"
    HOOK = "hook"


class DrillVerifyParams(_Model):
    site: SiteRef
    method: DrillVerify = DrillVerify.CHECKSUM
    hook: tuple[str, ...] | None = Field(
        default=None, min_length=1,
        description="With method hook: argv run per clone, no shell, with the clone's "
                    "spec in DRD_DRILL_IMAGE and the site's ceph.conf in DRD_DRILL_CONF.")

    @model_validator(mode="after")
    def _hook_with_its_method(self) -> "DrillVerifyParams":
        if self.method is DrillVerify.HOOK and self.hook is None:
            raise ValueError("method hook needs hook, the argv to run on each clone")
        if self.method is DrillVerify.CHECKSUM and self.hook is not None:
            raise ValueError("hook is run only with method hook; this step compares "
                             "checksums")
        return self


class _Step(_Model):
    type: str  # each step type narrows it to its Literal: the union's tag
    name: str = Field(pattern=STEP_NAME_PATTERN, description="Unique in the runbook.")
    timeout: PositiveDuration = Field(default="5m", validate_default=True)
    retry: Retry = Retry()
    on_failure: OnFailure = OnFailure.ABORT


class CephHealthStep(_Step):
    """The site's Ceph answers and is not HEALTH_ERR."""
    type: Literal["ceph_health"]
    params: SiteParams


class PeerReachableStep(_Step):
    """The site's drd answers its heartbeats."""
    type: Literal["peer_reachable"]
    params: SiteParams


class MirrorStateStep(_Step):
    """Every image in scope is mirrored on the site, as primary or as a replaying copy."""
    type: Literal["mirror_state"]
    params: SiteParams


class RpoWithinStep(_Step):
    """The measured RPO of every image in scope is within its bound."""
    type: Literal["rpo_within"]
    params: RpoParams


class RbdDemoteStep(_Step):
    type: Literal["rbd_demote"]
    params: SiteParams


class RbdPromoteStep(_Step):
    type: Literal["rbd_promote"]
    params: PromoteParams


class RbdForcePromoteStep(_Step):
    type: Literal["rbd_force_promote"]
    params: ForcePromoteParams


class RbdResyncStep(_Step):
    """Resync split-brained copies on the losing side; needs the winner confirmed."""
    type: Literal["rbd_resync"]
    params: ResyncParams


class WaitInSyncStep(_Step):
    """The last mirror snapshot or journal position of the primary is replayed."""
    type: Literal["wait_in_sync"]
    params: SyncParams


class MirrorSnapshotStep(_Step):
    type: Literal["mirror_snapshot"]
    params: SiteParams


class ReverseReplicationStep(_Step):
    """Proves replication from the new primary by data: a probe written there is read
    on each replica."""
    type: Literal["verify_replication"]
    params: ReverseParams


class RbdRemoteFollowStep(_Step):
    """The remote site pulls from the new primary: its pool's one rx peer re-pointed,
    its copies resynced from there, and the replication proven by data."""
    type: Literal["rbd_remote_follow"]
    params: FollowParams


class RgwPromoteStep(_Step):
    type: Literal["rgw_zone_promote"]
    params: SiteParams


class RgwFailbackStep(_Step):
    type: Literal["rgw_zone_failback"]
    params: SiteParams


class HookStep(_Step):
    type: Literal["exec_hook"]
    params: HookParams


class ApprovalStep(_Step):
    type: Literal["approval"]
    params: ApprovalParams


class NotifyStep(_Step):
    type: Literal["notify"]
    params: NotifyParams


class DrillCloneStep(_Step):
    """Clone the latest replicated state of every image in scope into the drill
    namespace on the site."""
    type: Literal["drill_clone"]
    params: SiteParams


class DrillVerifyStep(_Step):
    type: Literal["drill_verify"]
    params: DrillVerifyParams


class DrillCleanupStep(_Step):
    type: Literal["drill_cleanup"]
    params: SiteParams


Step = Annotated[
    CephHealthStep | PeerReachableStep | MirrorStateStep | RpoWithinStep | RbdDemoteStep
    | RbdPromoteStep | RbdForcePromoteStep | RbdResyncStep | WaitInSyncStep
    | MirrorSnapshotStep | ReverseReplicationStep | RbdRemoteFollowStep | RgwPromoteStep
    | RgwFailbackStep
    | HookStep | ApprovalStep | NotifyStep | DrillCloneStep | DrillVerifyStep
    | DrillCleanupStep,
    Field(discriminator="type")]

STEP_TYPES: tuple[str, ...] = tuple(sorted(
    get_args(cls.model_fields["type"].annotation)[0] for cls in _Step.__subclasses__()))
AnyStep = _Step  # what every step has, whatever its type


def step_sites(step: _Step) -> list[tuple[str, str]]:
    """(parameter, site reference) of every site a step's parameters name."""
    params = getattr(step, "params", None)
    if params is None:
        return []
    found: list[tuple[str, str]] = []
    for field in ("site", "lost", "winner", "primary"):
        value = getattr(params, field, None)
        if isinstance(value, str):
            found.append((field, value))
    found += [("replicas", value) for value in getattr(params, "replicas", ())]
    return found
