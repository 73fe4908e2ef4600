"""Prometheus metrics of one daemon, in a registry of its own (never the global one)."""

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    PlatformCollector,
    ProcessCollector,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

CEPH_HEALTH_CODES = {"HEALTH_OK": 0, "HEALTH_WARN": 1, "HEALTH_ERR": 2}
CEPH_UNREACHABLE = 3


class DaemonMetrics:
    """Every metric the daemon exports; created once per daemon (and per test)."""

    def __init__(self, site: str, kind: str, version: str) -> None:
        self.registry = CollectorRegistry()
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        info = Gauge("drd_info", "drd build and site identity", ["version", "site", "kind"],
                     registry=self.registry)
        info.labels(version=version, site=site, kind=kind).set(1)
        self.api_latency = Histogram(
            "drd_api_request_duration_seconds", "API request latency by route",
            ["route", "method", "status"], registry=self.registry,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5))
        self.loop_lag = Gauge(
            "drd_event_loop_lag_seconds", "how late the last main-loop tick woke up",
            registry=self.registry)
        self.peer_reachable = Gauge(
            "drd_peer_reachable", "1 if the peer site's daemon answered recently",
            ["peer"], registry=self.registry)
        self.peer_detector_state = Gauge(
            "drd_peer_detector_state", "1 for the failure detector's current verdict on the "
            "peer (alive, suspect, lost), 0 for the others", ["peer", "state"],
            registry=self.registry)
        self.peer_last_seen = Gauge(
            "drd_peer_last_seen_timestamp_seconds", "last proof of life from the peer",
            ["peer"], registry=self.registry)
        self.peer_round_trip = Gauge(
            "drd_peer_heartbeat_round_trip_seconds", "round trip of the last heartbeat",
            ["peer"], registry=self.registry)
        self.ceph_health = Gauge(
            "drd_ceph_health", "this site's Ceph health: 0 OK, 1 WARN, 2 ERR, 3 unreachable",
            registry=self.registry)
        self.ceph_probe_duration = Gauge(
            "drd_ceph_probe_duration_seconds", "how long the last Ceph probe took",
            registry=self.registry)
        rpo_labels = ["tenant", "image", "destination"]
        self.rpo = Gauge("drd_rpo_seconds", "measured RPO: age of the newest data on the peer",
                         rpo_labels, registry=self.registry)
        self.rpo_target = Gauge("drd_rpo_target_seconds", "the tenant's RPO target",
                                rpo_labels, registry=self.registry)
        self.reconcile_duration = Gauge(
            "drd_reconcile_duration_seconds", "how long the last reconcile pass took",
            registry=self.registry)
        self.reconcile_actions = Counter(
            "drd_reconcile_actions", "mirroring changes made by reconcile", ["kind", "result"],
            registry=self.registry)
        self.mirror_snapshots = Counter(
            "drd_mirror_snapshots", "mirror snapshots drd took", ["result"],
            registry=self.registry)
        lag_labels = ["tenant", "bucket", "destination"]
        self.bucket_lag = Gauge(
            "drd_bucket_sync_lag_seconds",
            "age of the oldest change of the bucket not yet applied at the destination zone",
            lag_labels, registry=self.registry)
        self.bucket_lag_target = Gauge("drd_bucket_sync_lag_target_seconds",
                                       "the tenant's sync-lag target", lag_labels,
                                       registry=self.registry)
        self.bucket_stuck_shards = Gauge(
            "drd_bucket_sync_stuck_shards", "bucket index shards whose sync is not moving",
            lag_labels, registry=self.registry)
        self.bucket_sync_repairs = Counter(
            "drd_bucket_sync_repairs",
            "automatic repairs of stuck buckets: ok, failed, or refused as unsafe",
            ["result"], registry=self.registry)
        self.loop_crashes = Counter(
            "drd_loop_crashes", "crashes of a daemon loop (it is restarted)", ["loop"],
            registry=self.registry)
        self.config_reloads = Counter(
            "drd_config_reloads", "SIGHUP reloads by result", ["result"],
            registry=self.registry)
        verification = ["tenant", "kind"]
        self.backup_verification_failed = Gauge(
            "drd_backup_verification_failed",
            "1 while the tenant's latest check (kind=check) or restore test "
            "(kind=restore_test) failed, until one passes; alert on it",
            verification, registry=self.registry)
        self.backup_last_verified = Gauge(
            "drd_backup_last_verified_timestamp_seconds",
            "when the tenant's repository last passed a check, or its snapshots a restore test",
            verification, registry=self.registry)
        self.backup_stale_locks_removed = Counter(
            "drd_backup_stale_locks_removed", "restic locks drd removed as provably stale",
            ["tenant"], registry=self.registry)
        self.backup_usage = BackupUsageCollector()
        self.registry.register(self.backup_usage)

    def set_ceph_health(self, reachable: bool, health: str) -> None:
        self.ceph_health.set(CEPH_HEALTH_CODES.get(health, CEPH_UNREACHABLE)
                             if reachable else CEPH_UNREACHABLE)


@dataclass(frozen=True, slots=True)
class StoredUsage:
    """The latest measurement of what a tenant's snapshots hold in its repository."""

    stored_bytes: int
    snapshots: int
    measured_at: float  # Unix time


@dataclass(frozen=True, slots=True)
class RunUsage:
    """A tenant's backup runs over all its history, read from the state store."""

    added_bytes: int
    runs: Mapping[str, int] = field(default_factory=dict)  # by result


class BackupUsageCollector:
    """Metering metrics, exported from values the metering service sets.

    The totals come from the state store's history, not from counting in this process,
    so `drd_backup_added_bytes_total` and `drd_backup_runs_total` carry on across daemon
    restarts instead of dropping to zero (which rate() would read as a reset and
    increase() over a billing period would undercount).
    """

    def __init__(self) -> None:
        self._stored: dict[str, StoredUsage] = {}
        self._runs: dict[str, RunUsage] = {}

    def set_stored(self, tenant: str, usage: StoredUsage) -> None:
        self._stored[tenant] = usage

    def set_runs(self, tenant: str, usage: RunUsage) -> None:
        self._runs[tenant] = usage

    def remove(self, tenant: str) -> None:
        """Stop exporting a tenant (its policy is gone)."""
        self._stored.pop(tenant, None)
        self._runs.pop(tenant, None)

    def describe(self) -> Iterator[Metric]:
        # Named up front, so the registry refuses another metric of the same name.
        yield from self._families()

    def collect(self) -> Iterator[Metric]:
        stored, runs = dict(self._stored), dict(self._runs)
        yield from self._families(stored, runs)

    @staticmethod
    def _families(stored: Mapping[str, StoredUsage] | None = None,
                  runs: Mapping[str, RunUsage] | None = None) -> Iterator[Metric]:
        stored_bytes = GaugeMetricFamily(
            "drd_backup_stored_bytes", "bytes the tenant's snapshots hold in its restic "
            "repository after deduplication and compression (restic stats --mode raw-data)",
            labels=["tenant"])
        snapshots = GaugeMetricFamily(
            "drd_backup_snapshots", "the tenant's snapshots in its repository",
            labels=["tenant"])
        measured = GaugeMetricFamily(
            "drd_backup_stored_measured_timestamp_seconds",
            "when the tenant's stored bytes were last measured", labels=["tenant"])
        added = CounterMetricFamily(
            "drd_backup_added_bytes", "bytes the tenant's backup runs added to its "
            "repository, over all its recorded history", labels=["tenant"])
        counted = CounterMetricFamily(
            "drd_backup_runs", "the tenant's finished backup runs by result, over all its "
            "recorded history", labels=["tenant", "result"])
        for tenant, usage in sorted((stored or {}).items()):
            stored_bytes.add_metric([tenant], usage.stored_bytes)
            snapshots.add_metric([tenant], usage.snapshots)
            measured.add_metric([tenant], usage.measured_at)
        for tenant, history in sorted((runs or {}).items()):
            added.add_metric([tenant], history.added_bytes)
            for result, count in sorted(history.runs.items()):
                counted.add_metric([tenant, result], count)
        yield from (stored_bytes, snapshots, measured, added, counted)
