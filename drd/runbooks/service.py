"""The daemon's runbooks: the loaded files, the engine, and the answers the API gives.

Runbooks are read at start and on SIGHUP. A run request is checked before anything
runs: the runbook exists and is valid, its sites are known and differ, its tenants have
policies here, and no other open run moves the same tenants.
"""

import asyncio
from collections.abc import Callable, Mapping

import structlog

from drd.config.runbook_loader import LoadedRunbook, load_runbooks
from drd.config.yaml_document import ConfigIssue
from drd.domain.runbook import RunbookKind, RunTarget, run_target
from drd.domain.site_config import SiteConfig
from drd.domain.tenant_policy import TenantPolicy
from drd.runbooks.engine import RUN_KIND, RunbookEngine, RunEnvironment, RunOrder, RunRefused
from drd.runbooks.sites import ConfiguredSites
from drd.runbooks.step_api import StepExecutor, StepFailed
from drd.runbooks.views import (
    PlannedStep,
    PlanOut,
    RestartOut,
    ResumeRequest,
    RunbookList,
    RunbookText,
    RunRequest,
    RunView,
    RunViewList,
    run_view,
    runbook_out,
)
from drd.state import StateStore
from drd.state.records import AuditResult, RunRecord

log = structlog.get_logger()


class RunbookService:
    def __init__(self, config: SiteConfig, store: StateStore,
                 executors: Mapping[str, StepExecutor],
                 policies: Callable[[], Mapping[str, TenantPolicy]],
                 reachable: Callable[[str], bool]) -> None:
        self._store = store
        self._reachable = reachable
        self._config = config
        self._sites = ConfiguredSites(config, reachable)
        self.runbooks: dict[str, LoadedRunbook] = {}
        self.issues: list[ConfigIssue] = []
        self.engine = RunbookEngine(store, executors, RunEnvironment(
            policies=policies, sites=lambda: self._sites, known_sites=self.known_sites))
        self._policies = policies

    def known_sites(self) -> set[str]:
        return {self._config.site.name, *(peer.name for peer in self._config.peers)}

    async def load(self, config: SiteConfig) -> None:
        """(Re)read the runbooks; a broken file is left out and logged, the rest load."""
        if config is not self._config:
            old, self._sites = self._sites, ConfiguredSites(config, self._reachable)
            self._config = config
            old.close()
        self.runbooks, self.issues = await asyncio.to_thread(
            load_runbooks, config.paths.runbooks_dir, self.known_sites())
        for issue in self.issues:
            log.error("runbook refused", problem=issue.render())
        log.info("runbooks loaded", runbooks=sorted(self.runbooks))

    async def close(self) -> None:
        await self.engine.stop()
        self._sites.close()

    # -- runbooks --------------------------------------------------------------------

    def listing(self) -> RunbookList:
        return RunbookList(runbooks=[runbook_out(b) for _, b in sorted(self.runbooks.items())],
                           problems=[issue.render() for issue in self.issues])

    def show(self, name: str) -> RunbookText:
        loaded = self._loaded(name)
        return RunbookText(runbook=runbook_out(loaded), text=loaded.text)

    async def plan(self, name: str, request: RunRequest) -> PlanOut:
        loaded = self._loaded(name)
        target = self._target(loaded, request)
        steps = await self.engine.plan(loaded.runbook, target)
        return PlanOut(runbook=name, source=target.source, target=target.target,
                       tenants=None if target.tenants is None else list(target.tenants),
                       steps=[PlannedStep(**step) for step in steps])

    async def run(self, name: str, request: RunRequest, actor: str,
                  only_tenant: str | None = None) -> RunView:
        """Start a run; `only_tenant` (a tenant's token) allows only a drill of it."""
        loaded = self._loaded(name)
        if only_tenant is not None:
            if loaded.runbook.kind is not RunbookKind.DRILL:
                raise PermissionError(f"a tenant may run drills only, and {name} is a "
                                      f"{loaded.runbook.kind.value}")
            request = request.model_copy(update={"tenants": [only_tenant]})
        target = self._target(loaded, request)
        record = await self.engine.start(
            loaded.runbook, loaded.text, target,
            RunOrder(actor=actor, confirmed_winner=self._winner(request.confirm_winner)))
        await asyncio.to_thread(self._store.audit, actor=actor, role="runbook",
                                action="runbook.run", target=f"run {record.id}",
                                result=AuditResult.OK, now=record.started_at,
                                detail={"runbook": name, "source": target.source,
                                        "target": target.target,
                                        "tenants": record.detail.get("tenants")})
        return await self.run_detail(record.id)

    # -- runs ------------------------------------------------------------------------

    async def runs(self, limit: int, kind: str | None = None) -> RunViewList:
        records = await asyncio.to_thread(self._store.list_runs, limit, RUN_KIND)
        return RunViewList(runs=[await self._view(r) for r in records
                                 if kind is None or r.detail.get("kind") == kind])

    async def run_detail(self, run_id: int) -> RunView:
        record = await asyncio.to_thread(self._store.get_run, run_id)
        if record is None or record.kind != RUN_KIND:
            raise KeyError(f"no runbook run {run_id}")
        return await self._view(record)

    async def _view(self, record: RunRecord) -> RunView:
        runbook = self.engine.runbook_of(record)
        steps = await self.engine.progress(record.id, runbook)
        return run_view(record, steps, live=self.engine.is_live(record.id))

    async def resume(self, run_id: int, request: ResumeRequest, actor: str) -> RunView:
        order = RunOrder(actor=actor, approved_by=actor if request.approve else None,
                         confirmed_winner=self._winner(request.confirm_winner))
        await self.engine.resume(run_id, order)
        return await self.run_detail(run_id)

    async def abort(self, run_id: int, actor: str) -> RunView:
        await self.engine.abort(run_id, actor)
        return await self.run_detail(run_id)

    # -- checks ----------------------------------------------------------------------

    async def restart_own_rbd_mirror(self) -> RestartOut:
        """Restart this site's rbd-mirror, as a peer's runbook step asks (a forced
        promote or a remote re-pointed while its old peer's cluster is dead leaves it
        stuck); RunRefused when this site's config gives no way to."""
        try:
            done = await asyncio.to_thread(self._sites.restart_rbd_mirror,
                                           self._config.site.name)
        except StepFailed as error:
            raise RunRefused(str(error)) from error
        return RestartOut(done=done)

    def _loaded(self, name: str) -> LoadedRunbook:
        loaded = self.runbooks.get(name)
        if loaded is None:
            known = ", ".join(sorted(self.runbooks)) or "none"
            raise KeyError(f"no runbook {name!r} (known: {known})")
        return loaded

    def _target(self, loaded: LoadedRunbook, request: RunRequest) -> RunTarget:
        tenants = tuple(request.tenants) if request.tenants else None
        target = run_target(loaded.runbook, source=request.source, target=request.target,
                            tenants=tenants)
        known = self.known_sites()
        for role, site in (("source", target.source), ("target", target.target)):
            if site not in known:
                raise RunRefused(f"{role} site {site!r} is not known here "
                                 f"(known: {', '.join(sorted(known))})")
        if target.source == target.target:
            raise RunRefused(f"source and target are both {target.source}")
        policies = self._policies()
        missing = [t for t in target.tenants or () if t not in policies]
        if missing:
            raise RunRefused(f"no policy here for tenant {', '.join(missing)}")
        return target

    def _winner(self, site: str | None) -> str | None:
        if site is not None and site not in self.known_sites():
            raise RunRefused(f"--confirm-winner: site {site!r} is not known here")
        return site
