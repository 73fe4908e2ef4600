"""What the replication service reports: per image and destination, state and RPO."""

from datetime import datetime

from pydantic import BaseModel, ConfigDict


class _View(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DestinationView(_View):
    destination: str  # same_city or remote
    site: str | None  # None when no peer plays that destination from here
    rpo_target_seconds: float
    rpo_seconds: float | None
    rpo_state: str  # OK, WARN, BREACH, UNKNOWN
    data_as_of: datetime | None
    detail: str
    peer_state: str  # rbd-mirror's replay state on that peer: replaying, error, ...
    peer_description: str


class ImageView(_View):
    image: str  # pool/namespace/name
    tenant: str
    selection: str
    mode: str
    primary: bool
    last_snapshot_at: datetime | None
    destinations: list[DestinationView]


class BucketLagRow(_View):
    """One tenant bucket at one destination zone: its sync lag against the target."""

    tenant: str
    selection: str
    bucket: str
    destination: str  # same_city or remote
    site: str | None
    lag_target_seconds: float
    lag_seconds: float | None
    lag_state: str  # OK, WARN, BREACH, UNKNOWN
    data_as_of: datetime | None
    behind_shards: list[int]
    stuck_shards: list[int]
    detail: str
    repair: str | None  # the command that would unstick it


class TenantProtection(_View):
    tenant: str
    images: list[ImageView]
    buckets: list[BucketLagRow] = []
    object_sync: str = ""  # whether and why this site measures bucket sync
    problems: list[str]


class RpoRow(_View):
    tenant: str
    image: str
    destination: str
    site: str | None
    rpo_target_seconds: float
    rpo_seconds: float | None
    rpo_state: str
    data_as_of: datetime | None
    detail: str


class RpoReport(_View):
    rows: list[RpoRow]
    buckets: list[BucketLagRow] = []
    breaches: int  # block and object together
    warnings: int
