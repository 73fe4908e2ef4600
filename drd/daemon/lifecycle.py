"""`drd daemon`: start, serve, reload on SIGHUP, drain on SIGTERM.

Everything runs in one TaskGroup: the API server, the main tick (liveness, loop lag,
systemd watchdog and status), peer heartbeats, the Ceph probe and the reload
watcher. Signal handlers only set events; the loops act on them.
"""

import asyncio
import signal
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import structlog
from aiohttp import web

from drd import __version__
from drd.api.app import create_app
from drd.api.metrics import DaemonMetrics
from drd.ceph.cluster import ClusterHandle
from drd.ceph.rgw_admin import RgwAdmin
from drd.ceph.rgw_failover import RgwZone
from drd.daemon.backup_wiring import backup_service
from drd.daemon.ceph_probe import CephProbe, ceph_probe_loop
from drd.daemon.config_load import ConfigLoadError, load_config_bundle, reload_refusals
from drd.daemon.heartbeat import heartbeat_loop
from drd.daemon.logging_setup import configure_logging
from drd.daemon.peer_detector import PeerCephProbes, peer_ceph_loop
from drd.daemon.runtime import LoadedConfig, SiteRuntime
from drd.daemon.sd_notify import SystemdNotifier
from drd.daemon.supervisor import supervised
from drd.daemon.takeover_service import TakeoverService
from drd.domain.access import Principal, RoleKind
from drd.domain.site_config import SiteConfig
from drd.replication.bucket_sync import BucketSyncService, ZonePeer
from drd.replication.policies import PolicyBook
from drd.replication.service import ReplicationService
from drd.runbooks.library import step_executors
from drd.runbooks.service import RunbookService
from drd.state.store import StateStore

log = structlog.get_logger()

# Whoever can signal the daemon (root, systemd) acts as an operator.
SIGHUP_ACTOR = Principal(name="signal:SIGHUP", kind=RoleKind.OPERATOR)
TICK_SECONDS = 1.0
PROBE_SECONDS = 2.0
CEPH_DEADLINE_SECONDS = 5.0
GIL_SWITCH_SECONDS = 0.001


@dataclass(frozen=True)
class DaemonOptions:
    config_path: Path
    drain_seconds: float = 20.0


@dataclass
class Signals:
    stop: asyncio.Event
    reload: asyncio.Event


async def run_daemon(options: DaemonOptions, notifier: SystemdNotifier,
                     loaded: LoadedConfig) -> int:
    """Serve until SIGTERM or SIGINT; return the process exit code."""
    config = loaded.config
    # Worker threads return from librados with replies for the event loop; at the
    # default 5 ms GIL switch interval each hand-over can wait that long behind
    # Python work, and a reconcile pass makes thousands of them.
    sys.setswitchinterval(GIL_SWITCH_SECONDS)
    configure_logging(config.log.level, config.site.name)
    started_at = datetime.now(UTC)
    store = await asyncio.to_thread(StateStore.open, config.paths.state_dir, config.site.name)
    metrics = DaemonMetrics(config.site.name, config.site.kind.value, __version__)
    replication = _replication_service(config, metrics)
    objects = _bucket_sync_service(config, metrics)
    backups = await backup_service(config, store, metrics)
    policy_book = PolicyBook(replication, objects, backups)
    await policy_book.load(config)
    runtime = SiteRuntime(loaded=loaded, store=store, metrics=metrics, started_at=started_at,
                          tick_seconds=TICK_SECONDS, probe_seconds=PROBE_SECONDS,
                          policy_book=policy_book)
    runtime.runbooks = RunbookService(config, store, step_executors(),
                                      policies=lambda: policy_book.policies,
                                      reachable=runtime.peer_reachable)
    await runtime.runbooks.load(config)
    await runtime.voter.load()
    probe = CephProbe(ClusterHandle(config.ceph.conf, config.ceph.client,
                                    CEPH_DEADLINE_SECONDS), CEPH_DEADLINE_SECONDS)
    peer_probes = PeerCephProbes()
    runtime.takeover = takeover = TakeoverService(
        config, runtime.voter, runtime.signals, runtime.runbooks,
        ClusterHandle(config.ceph.conf, config.ceph.client, CEPH_DEADLINE_SECONDS),
        prober=runtime.service_prober)
    signals = _install_signal_handlers()
    runner = web.AppRunner(create_app(runtime), shutdown_timeout=options.drain_seconds,
                           access_log=None)
    await runner.setup()
    try:
        host, port = config.api.listen_host, config.api.listen_port
        await web.TCPSite(runner, host, port).start()
        log.info("serving", listen=f"{host}:{port}", version=__version__,
                 peers=[p.name for p in config.peers])
        notifier.ready()
        async with aiohttp.ClientSession() as session, asyncio.TaskGroup() as group:
            tasks = [
                group.create_task(_tick_loop(runtime, notifier)),
                group.create_task(supervised(
                    "heartbeat", lambda: heartbeat_loop(runtime, session), metrics)),
                group.create_task(supervised(
                    "ceph-probe", lambda: ceph_probe_loop(runtime, probe), metrics)),
                group.create_task(supervised(
                    "takeover", lambda: takeover.loop(session, lambda: runtime.config,
                                                      lambda: policy_book.policies), metrics)),
                group.create_task(supervised(
                    "service-probes", lambda: runtime.service_prober.loop(
                        session, lambda: runtime.config, lambda: policy_book.policies),
                    metrics)),
                group.create_task(supervised(
                    "peer-ceph", lambda: peer_ceph_loop(runtime, runtime.signals, peer_probes),
                    metrics)),
                group.create_task(_reload_loop(runtime, options, signals, notifier)),
                group.create_task(supervised("reconcile", replication.reconcile_loop, metrics)),
                group.create_task(supervised("snapshots", replication.snapshot_loop, metrics)),
                group.create_task(supervised("journal-rpo", replication.journal_rpo_loop,
                                             metrics)),
                group.create_task(supervised("snapshot-rpo", replication.snapshot_rpo_loop,
                                             metrics)),
            ]
            if objects is not None:
                tasks.append(group.create_task(supervised("bucket-sync", objects.loop,
                                                          metrics)))
            if backups is not None:
                tasks.append(group.create_task(supervised("backups", backups.loop, metrics)))
            await signals.stop.wait()
            log.info("stopping: draining in-flight requests",
                     grace_seconds=options.drain_seconds)
            notifier.stopping()
            for task in tasks:
                task.cancel()
    finally:
        await runner.cleanup()  # stops listening, waits for in-flight requests
        await runtime.runbooks.close()  # runs stay open in the journal, to be resumed
        probe.close()
        peer_probes.close()
        takeover.close()
        replication.close()
        await asyncio.to_thread(store.close)
    log.info("stopped")
    return 0


def _replication_service(config: SiteConfig, metrics: DaemonMetrics) -> ReplicationService:
    def local() -> ClusterHandle:
        return ClusterHandle(config.ceph.conf, config.ceph.client, CEPH_DEADLINE_SECONDS)

    peer_handles = {peer.name: ClusterHandle(peer.ceph_conf, config.ceph.client,
                                             CEPH_DEADLINE_SECONDS)
                    for peer in config.peers if peer.ceph_conf is not None}
    return ReplicationService(own_kind=config.site.kind,
                              peers={peer.name: peer.kind for peer in config.peers},
                              local=local, peer_handles=peer_handles, metrics=metrics)


def _bucket_sync_service(config: SiteConfig,
                         metrics: DaemonMetrics) -> BucketSyncService | None:
    """Bucket sync is watched only where this site names its RGW zone."""
    if config.ceph.rgw_zone is None:
        return None
    zone_peers = {peer.name: ZonePeer(peer.name, RgwZone(peer.rgw_zone, RgwAdmin(
                      peer.ceph_conf, client=config.ceph.client)))
                  for peer in config.peers
                  if peer.rgw_zone is not None and peer.ceph_conf is not None}
    return BucketSyncService(own_kind=config.site.kind, own_zone=config.ceph.rgw_zone,
                             admin=RgwAdmin(config.ceph.conf, client=config.ceph.client),
                             peers={peer.name: peer.kind for peer in config.peers},
                             zone_peers=zone_peers, metrics=metrics,
                             stuck_after=config.object_sync.stuck_after,
                             round_seconds=config.object_sync.interval.total_seconds())


def _install_signal_handlers() -> Signals:
    loop = asyncio.get_running_loop()
    signals = Signals(stop=asyncio.Event(), reload=asyncio.Event())
    loop.add_signal_handler(signal.SIGTERM, signals.stop.set)
    loop.add_signal_handler(signal.SIGINT, signals.stop.set)
    loop.add_signal_handler(signal.SIGHUP, signals.reload.set)
    return signals


async def _tick_loop(runtime: SiteRuntime, notifier: SystemdNotifier) -> None:
    """The heartbeat of the process itself: liveness, loop lag, watchdog, status line."""
    interval = TICK_SECONDS
    watchdog = notifier.watchdog_interval()
    if watchdog is not None:
        interval = min(interval, watchdog)
    last_status = ""
    expected = time.monotonic() + interval
    while True:
        await asyncio.sleep(max(0.0, expected - time.monotonic()))
        lag = max(0.0, time.monotonic() - expected)
        runtime.metrics.loop_lag.set(lag)
        runtime.tick()
        # WATCHDOG=1 comes only from here: if this loop hangs, systemd restarts us.
        notifier.watchdog()
        line = _status_line(runtime, datetime.now(UTC))
        if line != last_status:
            notifier.status(line)
            last_status = line
        expected += interval
        if expected < time.monotonic():  # we fell far behind; do not burst to catch up
            expected = time.monotonic() + interval


def _status_line(runtime: SiteRuntime, now: datetime) -> str:
    peers = ", ".join(f"{p.name} {'up' if p.reachable else 'LOST'}"
                      for p in runtime.peer_views(now))
    config = runtime.config
    return (f"site {config.site.name} ({config.site.kind.value}); ceph {runtime.ceph.health}; "
            f"peers: {peers or 'none'}")


async def _reload_loop(runtime: SiteRuntime, options: DaemonOptions, signals: Signals,
                       notifier: SystemdNotifier) -> None:
    while True:
        await signals.reload.wait()
        signals.reload.clear()
        notifier.reloading()
        outcome = await reload_config(runtime, options.config_path)
        runtime.metrics.config_reloads.labels(result=outcome).inc()
        notifier.ready()


async def reload_config(runtime: SiteRuntime, path: Path) -> str:
    """Swap in the config at `path` if it is valid; otherwise keep the running one."""
    try:
        loaded = await asyncio.to_thread(load_config_bundle, path)
        refusals = reload_refusals(runtime.config, loaded.config)
        if refusals:
            raise ConfigLoadError(refusals)
    except ConfigLoadError as error:
        log.error("reload refused; keeping the running config", problems=error.issues)
        await runtime.record_audit(SIGHUP_ACTOR, "SIGHUP reload", str(path), "refused",
                                   datetime.now(UTC))
        return "refused"
    runtime.swap_config(loaded)
    await runtime.policy_book.load(loaded.config)
    if runtime.runbooks is not None:
        await runtime.runbooks.load(loaded.config)
    configure_logging(loaded.config.log.level, loaded.config.site.name)
    log.info("config reloaded", peers=[p.name for p in loaded.config.peers])
    await runtime.record_audit(SIGHUP_ACTOR, "SIGHUP reload", str(path), "ok",
                               datetime.now(UTC))
    return "ok"
