"""Request and response bodies of the API, as pydantic models (they feed OpenAPI too)."""

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from drd.domain.site import SiteKind


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class HeartbeatIn(_Body):
    site: str = Field(description="name of the calling site")
    kind: SiteKind
    sent_at: datetime = Field(description="when the caller sent it (its clock)")
    version: str = Field(description="the caller's drd version")
    ceph_health: str = Field(description="the caller's view of its own Ceph health")


class LeaseAskIn(_Body):
    group: str = Field(min_length=1, max_length=200,
                       description="the protection group: <tenant>/<selection>")
    candidate: str = Field(description="the site asking to hold (or renew) the lease; "
                                       "the calling peer's own site")
    epoch: int = Field(ge=1, description="the epoch it asks at; a takeover asks above the "
                                         "current one")


class LeaseReleaseIn(_Body):
    group: str = Field(min_length=1, max_length=200)
    holder: str = Field(description="the releasing site: the calling peer's own site")
    epoch: int = Field(ge=1, description="the epoch it held")


class LeaseVoteOut(_Body):
    site: str = Field(description="the voting site")
    answer: str = Field(description="granted or refused")
    reason: str
    holder: str | None = Field(description="whom the voter has promised the group to now")
    epoch: int | None = Field(description="at which epoch")
    remaining_seconds: float | None = Field(
        description="how long the voter's promise still runs, on its own clock")
    released: bool = Field(default=False, description="whether that holder handed the "
                                                      "lease over at that epoch")


class HeartbeatOut(_Body):
    site: str
    kind: SiteKind
    received_at: datetime
    version: str
    ceph_health: str


class CephView(_Body):
    reachable: bool
    health: str = Field(description="HEALTH_OK, HEALTH_WARN, HEALTH_ERR or unknown")
    checks: dict[str, str] = Field(default_factory=dict)
    probed_at: datetime | None = None
    detail: str = ""


class PeerView(_Body):
    name: str
    kind: SiteKind
    url: str
    reachable: bool
    last_seen: datetime | None = Field(
        default=None, description="latest proof of life in either direction")
    last_heartbeat_received: datetime | None = None
    last_heartbeat_answered: datetime | None = Field(
        default=None, description="when the peer last answered our heartbeat")
    round_trip_ms: float | None = None
    missed: int = Field(default=0, description="heartbeat intervals since last seen")
    last_error: str = ""
    peer_ceph_health: str = "unknown"
    detector: str = Field(default="alive", description="the failure detector's verdict: "
                                                       "alive, suspect or lost")
    detector_reason: str = ""
    lost_since: datetime | None = Field(
        default=None, description="lost: since when every confirming probe has failed")
    ceph_probe: str = Field(default="", description="this site's last probe of the peer's "
                                                    "Ceph: quorum and a RADOS round trip")


class LeaseView(_Body):
    group: str = Field(description="<tenant>/<selection> with takeover: automatic")
    holder: str | None = Field(description="the site this site's voter promised it to")
    epoch: int | None
    remaining_seconds: float | None = Field(description="how long that promise runs here")
    move: str = Field(description="this site's last move: claim, renew, take over, wait, "
                                  "stay")
    reason: str
    fenced: str = Field(default="", description="when and why this site demoted its "
                                                "images of the group, if it did")
    takeover: dict[str, Any] = Field(default_factory=dict,
                                     description="the last takeover by this site, with "
                                                 "its run and report")


class ProtectionView(_Body):
    group: str = Field(description="<tenant>/<selection>, with images primary on this site")
    state: str = Field(description="protected, degraded (a copy within target at some "
                                   "destination only) or unprotected (an image with none)")
    reason: str
    unprotected_since: datetime | None = Field(
        default=None, description="when this site first saw the group unprotected, "
                                  "while it is")
    protected_again_seconds: float | None = Field(
        default=None, description="how long the group was unprotected the last time, "
                                  "e.g. from a takeover until the remote site followed")


class ServiceProbeView(_Body):
    tenant: str
    probe: str
    site_kind: SiteKind = Field(description="the site whose endpoint is probed")
    endpoint: str
    answering: bool = Field(description="answered within the takeover's answer window")
    result: str = Field(description="what the last probe said, or why it failed")
    seconds_since_answer: float | None


class SiteStatus(_Body):
    site: str
    kind: SiteKind
    version: str
    started_at: datetime
    uptime_seconds: float
    config_loaded_at: datetime
    ceph: CephView
    peers: list[PeerView]
    rpo_breaches: int = Field(default=0, description="protected image destinations over 2x "
                                                     "their RPO target")
    rpo_warnings: int = Field(default=0, description="... over their RPO target")
    policy_problems: list[str] = Field(default_factory=list,
                                       description="policy files refused at the last load")
    object_sync: list[str] = Field(
        default_factory=list, description="whether this site measures bucket sync, and "
                                          "each destination zone's sync verdicts")
    leases: list[LeaseView] = Field(
        default_factory=list, description="every group with automatic takeover: its lease "
                                          "as this site sees it")
    service_probes: list[ServiceProbeView] = Field(
        default_factory=list, description="the tenants' service probes, from this site; "
                                          "one answering at the holder vetoes a takeover")
    protection: list[ProtectionView] = Field(
        default_factory=list, description="every group with images primary here: whether "
                                          "a copy within target exists elsewhere")


class PolicyAccepted(_Body):
    tenant: str
    selections: int
    applied: bool


class Probe(_Body):
    ok: bool
    reasons: list[str] = Field(default_factory=list)


class RunOut(_Body):
    id: int
    kind: str
    subject: str
    state: str
    started_at: datetime
    finished_at: datetime | None


class RunList(_Body):
    runs: list[RunOut]


class AuditOut(_Body):
    id: int
    at: datetime
    actor: str
    role: str
    action: str
    target: str
    result: str


class AuditList(_Body):
    entries: list[AuditOut]


class StoredBytesOut(_Body):
    repository: str = Field(description="the restic repository measured")
    stored_bytes: int = Field(description="bytes the tenant's snapshots hold there, after "
                                          "deduplication and compression (restic stats "
                                          "--mode raw-data); data shared with another "
                                          "tenant's snapshots counts for each")
    uncompressed_bytes: int = Field(description="the same data before compression")
    snapshots: int
    measured_at: datetime


class BackupRunTotals(_Body):
    since: datetime | None = Field(description="runs started since then; null: all history")
    runs: int = Field(description="finished backup runs")
    succeeded: int
    failed: int
    cancelled: int = Field(description="stopped by the daemon's own stop")
    bytes_added: int = Field(description="bytes the runs added to the repository, failed "
                                         "runs included (restic kept that data)")


class BackupRunUsage(_Body):
    id: int
    source: str | None
    started_at: datetime
    finished_at: datetime | None
    state: str
    bytes_added: int | None
    snapshot_id: str | None


class TenantUsageOut(_Body):
    tenant: str
    stored: StoredBytesOut | None = Field(
        description="the latest measurement; null before the first one")
    stored_error: str | None = Field(
        default=None, description="why the latest attempt to measure failed, if it did")
    backups: BackupRunTotals
    recent_runs: list[BackupRunUsage] = Field(
        description="the latest backup runs, newest first, each with what it added")
