"""The tenant policies in force on this site: loaded from the policies dir, replaced
per tenant through the API, handed to the replication service."""

import asyncio
from pathlib import Path

import structlog

from drd.backup.service import BackupService
from drd.ceph.rgw_admin import RgwAdminError
from drd.ceph.rgw_bucket_sync import bucket_owner
from drd.config.policy_loader import (
    POLICY_SUFFIX,
    load_policies_keeping_good,
    validate_policy_text,
)
from drd.config.yaml_document import ConfigIssue
from drd.domain.object_selection import bucket_owner_issues, plain_bucket_names
from drd.domain.protection import protection_specs
from drd.domain.rules import RuleViolation
from drd.domain.site_config import SiteConfig
from drd.domain.tenant_policy import TenantPolicy
from drd.private_files import write_atomically
from drd.replication.bucket_sync import BucketSyncService, ObjectSpec
from drd.replication.service import ReplicationService

log = structlog.get_logger()


class PolicyBook:
    """Owns the running policies; every change goes through validation first."""

    def __init__(self, service: ReplicationService,
                 objects: BucketSyncService | None = None,
                 backups: BackupService | None = None) -> None:
        self.service = service
        self.objects = objects
        self.backups = backups
        self.policies: dict[str, TenantPolicy] = {}
        self.issues: list[ConfigIssue] = []
        self._writing = asyncio.Lock()

    async def load(self, config: SiteConfig) -> None:
        """(Re)read the policies dir. Invalid files keep their tenant's running policy."""
        policies, issues = await asyncio.to_thread(
            load_policies_keeping_good, config.paths.policies_dir, config, self.policies)
        for issue in issues:
            log.error("policy refused; the tenant's running policy stays", problem=str(issue))
        self._apply(config, policies, issues)

    def _apply(self, config: SiteConfig, policies: dict[str, TenantPolicy],
               issues: list[ConfigIssue]) -> None:
        self.policies = policies
        self.issues = issues
        self.service.set_policies(protection_specs(policies))
        if self.objects is not None:
            self.objects.set_policies(object_specs(policies, config))
        if self.backups is not None:
            self.backups.set_policies(policies)
        log.info("policies in force", tenants=sorted(policies))

    async def put(self, config: SiteConfig, tenant: str, text: str) -> TenantPolicy:
        """Validate `text` as `tenant`'s policy, store it atomically, apply it.

        Raises ConfigError with every issue; then nothing was written or changed.
        """
        path = config.paths.policies_dir / f"{tenant}{POLICY_SUFFIX}"
        policy = validate_policy_text(text, path, config)
        if self.objects is not None and policy.protection.object:
            owner_issues = await self._owner_issues(policy, config)
            if owner_issues:
                validate_policy_text(text, path, config, [lambda _: owner_issues])
        async with self._writing:
            await asyncio.to_thread(_store, path, text)
            self._apply(config, {**self.policies, tenant: policy},
                        [i for i in self.issues if Path(i.file) != path])
        log.info("policy stored", tenant=tenant, selections=len(policy.protection.block))
        return policy


    async def _owner_issues(self, policy: TenantPolicy,
                            config: SiteConfig) -> list[RuleViolation]:
        """Plain bucket names the policy lists that another RGW user owns."""
        assert self.objects is not None
        admin = self.objects.admin
        names = plain_bucket_names(policy.protection.object)
        try:
            owners = dict(zip(names, await asyncio.gather(*(
                asyncio.to_thread(bucket_owner, admin, name) for name in names)),
                strict=True))
        except RgwAdminError as error:
            # Owners unknown: refuse rather than let a tenant claim a bucket unchecked.
            return [RuleViolation(("protection", "object"),
                                  f"cannot check who owns the buckets named here: {error}")]
        return bucket_owner_issues(policy.protection.object,
                                   config.rgw_user(policy.tenant), owners)


def object_specs(policies: dict[str, TenantPolicy], config: SiteConfig) -> list[ObjectSpec]:
    return [ObjectSpec(tenant, config.rgw_user(tenant), selection)
            for tenant, policy in sorted(policies.items())
            for selection in policy.protection.object]


def _store(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomically(path, text, 0o640)
