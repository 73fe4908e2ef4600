"""What each tenant may protect and back up (its pools, namespaces, RGW user and backup
directories) and the platform's limits on every policy, as the site config declares them."""

import re
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from drd.domain.backup_sources import SourcePath
from drd.domain.durations import PositiveDuration
from drd.domain.policy_names import NAMESPACE_PATTERN, PoolName


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


EVERY_NAMESPACE = "*"


def _granted_namespace(value: str) -> str:
    if value != EVERY_NAMESPACE and not re.fullmatch(NAMESPACE_PATTERN, value):
        raise ValueError(f"{value!r} is not an RBD namespace: use '*' for every namespace, "
                         f"'' for the pool's default namespace, or a name of letters, "
                         f"digits, '_', '.' or '-'")
    return value


GrantedNamespace = Annotated[str, AfterValidator(_granted_namespace),
                             Field(json_schema_extra={"anyOf": [
                                 {"const": EVERY_NAMESPACE}, {"pattern": NAMESPACE_PATTERN}]})]


class PoolGrant(_Section):
    """One pool, or one namespace of it, that a tenant's policy may select images from."""

    pool: PoolName = Field(description="Ceph pool the tenant may select images from.",
                           examples=["rbd"])
    namespace: GrantedNamespace = Field(
        description="RBD namespace of that pool: a name, '' for the pool's default "
                    "namespace, or '*' for every namespace of the pool.", examples=["water"])

    def allows(self, pool: str, namespace: str) -> bool:
        """Whether this grant covers images in `pool`/`namespace`."""
        return self.pool == pool and self.namespace in (EVERY_NAMESPACE, namespace)


class TenantGrants(_Section):
    """What one tenant is allowed to protect on this platform."""

    grants: tuple[PoolGrant, ...] = Field(
        default=(), description="Pools and namespaces the tenant's policy may select; "
                                "default none.")
    rgw_user: str | None = Field(
        default=None, min_length=1, max_length=255,
        description="The RGW user (uid) that owns the tenant's S3 buckets; a policy may "
                    "select only its buckets. Default: the tenant's name.",
        examples=["water"])
    backup_paths: tuple[SourcePath, ...] = Field(
        default=(), description="Directories on the hosts of drd whose files the tenant's "
                                "backup sources may name (paths); default none.",
        examples=[["/srv/water"]])


def _most_per_day(default: int, what: str) -> Any:
    return Field(default=default, ge=1, strict=True,
                 description=f"{what} Counted over one UTC day from the cron expression. "
                             f"Default {default}.", examples=[default])


class PlatformLimits(_Section):
    """Bounds every tenant policy must stay within, set by the platform operator."""

    min_snapshot_interval: PositiveDuration = Field(
        default="1m", validate_default=True,
        description="Shortest mirror snapshot interval a policy may ask for; shorter ones "
                    "load the cluster with snapshots. Default 1m.", examples=["1m"])
    min_rpo_target: PositiveDuration = Field(
        default="1s", validate_default=True,
        description="Shortest RPO target a policy may ask for. Default 1s.",
        examples=["1s"])
    min_sync_lag_target: PositiveDuration = Field(
        default="1m", validate_default=True,
        description="Shortest bucket sync-lag target a policy may ask for. RGW polls "
                    "its logs about every 20 s, so lags below a minute cannot be held. "
                    "Default 1m.", examples=["1m"])
    max_backups_per_day: int = _most_per_day(
        24, "Most backups a policy's schedule may run a day: each one snapshots every "
            "source image and reads it from Ceph.")
    max_prunes_per_day: int = _most_per_day(
        1, "Most prunes a policy may run a day: prune holds the repository's exclusive "
           "lock, so backups to it wait while it rewrites data.")
    max_checks_per_day: int = _most_per_day(
        1, "Most checks a policy may run a day: check also locks the repository "
           "exclusively, and with read_data_subset reads data back from it.")
    max_restore_tests_per_day: int = _most_per_day(
        1, "Most restore tests a policy may run a day: each restores whole images into "
           "scratch images on the site that runs it.")
