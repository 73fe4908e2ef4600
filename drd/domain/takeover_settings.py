"""The `takeover:` section of a site config: how peers are judged lost, and the lease
that guards a takeover. Defaults aim at production lost to the same-city site writable
in under 15 s, while one lost packet, or a probe slower than its deadline, never
moves anything."""

from pydantic import BaseModel, ConfigDict, Field, model_validator

from drd.domain.failure_detector import DetectorSettings
from drd.domain.lease import LeaseSettings
from drd.domain.policy_names import PoolName


class TakeoverSettings(BaseModel):
    """How peers are judged lost (the failure detector) and the lease's timing."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    suspect_after: int = Field(
        default=2, ge=1, strict=True,
        description="Consecutive failed probes (API heartbeat or Ceph) after which a peer "
                    "is suspect: shown, never acted on. Default 2.", examples=[2])
    lost_after: int = Field(
        default=3, ge=1, strict=True,
        description="Consecutive failed probes of both the peer's API and its Ceph after "
                    "which it is lost; at least suspect_after. With heartbeats every 2 s, "
                    "about 6 s. Default 3.", examples=[3])
    probe_pool: PoolName = Field(
        default="rbd",
        description="Pool in which the Ceph probe writes and reads one small object, "
                    "drd.probe.<this site>, at each peer; drd's cephx user needs write "
                    "access to it there. Default rbd.", examples=["rbd"])
    probe_deadline_seconds: float = Field(
        default=2.0, gt=0, le=30, strict=True,
        description="Seconds a peer's Ceph has to answer one probe; a slower answer is a "
                    "failed probe. Default 2.0.", examples=[2.0])
    lease_ttl_seconds: float = Field(
        default=6.0, gt=0, le=300, strict=True,
        description="Seconds each voter's promise runs from a renewal's arrival; a lost "
                    "primary's lease runs out at most this long after it. Default 6.0.",
        examples=[6.0])
    lease_renew_seconds: float = Field(
        default=1.0, gt=0, strict=True,
        description="Seconds between the primary's renewals. Default 1.0.", examples=[1.0])
    fence_margin_seconds: float = Field(
        default=2.5, gt=0, strict=True,
        description="A primary that cannot renew demotes its images this long before its "
                    "lease runs out; more than a demotion takes. Default 2.5.",
        examples=[2.5])

    service_probe_seconds: float = Field(
        default=2.0, gt=0, le=60, strict=True,
        description="Seconds between probes of each tenant's service_probes. Default 2.0.",
        examples=[2.0])
    service_answer_window_seconds: float = Field(
        default=6.0, gt=0, le=600, strict=True,
        description="A tenant's service that answered a probe this recently still counts "
                    "as served, and vetoes a takeover of the tenant's groups; more than "
                    "service_probe_seconds, so that one lost answer lifts no veto. "
                    "Default 6.0.", examples=[6.0])

    @model_validator(mode="after")
    def _consistent(self) -> "TakeoverSettings":
        self.detector()
        self.lease()
        if self.service_answer_window_seconds <= self.service_probe_seconds:
            raise ValueError("service_answer_window_seconds must be longer than "
                             "service_probe_seconds, or one lost answer lifts the veto")
        return self

    def detector(self) -> DetectorSettings:
        return DetectorSettings(self.suspect_after, self.lost_after)

    def lease(self) -> LeaseSettings:
        return LeaseSettings(ttl=self.lease_ttl_seconds, renew_every=self.lease_renew_seconds,
                             fence_margin=self.fence_margin_seconds)
