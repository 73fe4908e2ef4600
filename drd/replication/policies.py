"""The tenant policies in force on this site: loaded from the policies dir, replaced
per tenant through the API, handed to the replication service."""

import asyncio
from pathlib import Path

import structlog

from drd.config.policy_loader import (
    POLICY_SUFFIX,
    load_policies_keeping_good,
    validate_policy_text,
)
from drd.config.yaml_document import ConfigIssue
from drd.domain.protection import protection_specs
from drd.domain.site_config import SiteConfig
from drd.domain.tenant_policy import TenantPolicy
from drd.private_files import write_atomically
from drd.replication.service import ReplicationService

log = structlog.get_logger()


class PolicyBook:
    """Owns the running policies; every change goes through validation first."""

    def __init__(self, service: ReplicationService) -> None:
        self.service = service
        self.policies: dict[str, TenantPolicy] = {}
        self.issues: list[ConfigIssue] = []
        self._writing = asyncio.Lock()

    async def load(self, config: SiteConfig) -> None:
        """(Re)read the policies dir. Invalid files keep their tenant's running policy."""
        policies, issues = await asyncio.to_thread(
            load_policies_keeping_good, config.paths.policies_dir, config, self.policies)
        for issue in issues:
            log.error("policy refused; the tenant's running policy stays", problem=str(issue))
        self._apply(policies, issues)

    def _apply(self, policies: dict[str, TenantPolicy], issues: list[ConfigIssue]) -> None:
        self.policies = policies
        self.issues = issues
        self.service.set_policies(protection_specs(policies))
        log.info("policies in force", tenants=sorted(policies))

    async def put(self, config: SiteConfig, tenant: str, text: str) -> TenantPolicy:
        """Validate `text` as `tenant`'s policy, store it atomically, apply it.

        Raises ConfigError with every issue; then nothing was written or changed.
        """
        path = config.paths.policies_dir / f"{tenant}{POLICY_SUFFIX}"
        policy = validate_policy_text(text, path, config)
        async with self._writing:
            await asyncio.to_thread(_store, path, text)
            self._apply({**self.policies, tenant: policy},
                        [i for i in self.issues if Path(i.file) != path])
        log.info("policy stored", tenant=tenant, selections=len(policy.protection.block))
        return policy


def _store(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomically(path, text, 0o640)
