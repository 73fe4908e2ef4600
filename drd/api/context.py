"""What the API needs from the daemon, as a Protocol, so the app is testable alone."""

from datetime import datetime
from typing import Protocol

from drd.api.metrics import DaemonMetrics
from drd.api.schemas import (
    AuditList,
    HeartbeatIn,
    HeartbeatOut,
    LeaseAskIn,
    LeaseReleaseIn,
    LeaseVoteOut,
    PolicyAccepted,
    Probe,
    RunList,
    SiteStatus,
    TenantUsageOut,
)
from drd.api.tokens import TokenRegistry
from drd.backup.views import (
    BackupsStarted,
    RestoreDone,
    RestoreRequest,
    SnapshotList,
    TenantBackups,
)
from drd.domain.access import Principal
from drd.replication.views import RpoReport, TenantProtection
from drd.runbooks.service import RunbookService


class DaemonContext(Protocol):
    @property
    def runbooks(self) -> RunbookService | None: ...

    @property
    def tokens(self) -> TokenRegistry: ...

    @property
    def metrics(self) -> DaemonMetrics: ...

    def status(self, now: datetime) -> SiteStatus: ...

    async def vote_on_lease(self, ask: LeaseAskIn) -> LeaseVoteOut: ...

    async def release_lease(self, released: LeaseReleaseIn) -> LeaseVoteOut: ...

    def liveness(self, now: datetime) -> Probe: ...

    def readiness(self, now: datetime) -> Probe: ...

    def receive_heartbeat(self, beat: HeartbeatIn, now: datetime) -> HeartbeatOut: ...

    async def record_audit(self, principal: Principal | None, action: str, target: str,
                           result: str, now: datetime) -> None: ...

    async def audit_log(self, limit: int) -> AuditList: ...

    async def tenant_runs(self, tenant: str, limit: int) -> RunList: ...

    def tenant_protection(self, tenant: str) -> TenantProtection: ...

    def rpo_report(self, tenant: str | None) -> RpoReport: ...

    async def put_policy(self, tenant: str, text: str) -> PolicyAccepted: ...

    async def tenant_backups(self, tenant: str) -> TenantBackups: ...

    def start_backups(self, tenant: str, source: str | None) -> BackupsStarted: ...

    async def tenant_snapshots(self, tenant: str) -> SnapshotList: ...

    async def restore(self, tenant: str, request: RestoreRequest) -> RestoreDone: ...

    async def tenant_usage(self, tenant: str) -> TenantUsageOut: ...
