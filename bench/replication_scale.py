"""Part 1 of the replication benchmark: 1,000 images of 50 tenants under one daemon.

Each tenant bench-tNN owns namespace rbd/bench-tNN with 20 thin images, all selected
in snapshot mode at 1m to both peers. The 50 policies go in through the API; site a's
own mirroring state (librbd, not drd) says when the first full reconcile is done.
Then the daemon runs with 1,000 protected images and no API load while the benchmark
reads its reconcile pass time, RSS, CPU and RPO.

Two journal images of tenant bench-probe tell how often the journal RPO loop comes
round: drd dates a caught-up journal image's reading at the moment it measured it.
"""

import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial

from daemon_log import cpu_by_name, thread_cpu
from daemon_process import BenchError, Usage, cpu_percent
from replication_api import DaemonApi, Metrics, RpoSample
from replication_daemon import DaemonRunner
from replication_lab import (
    MIB,
    Selection,
    create_many,
    journal_destination,
    policy_yaml,
    prepare_namespaces,
    primary_enabled,
    snapshot_destination,
)

from drd.lab.description import LabDescription

PROBE_TENANT = "bench-probe"
PROBE_IMAGES = ["probe-0", "probe-1"]
IMAGE_SIZE = 4 * MIB
FIRST_RECONCILE_TIMEOUT_S = 300.0
PROTECTED_TIMEOUT_S = 120.0
PROBE_TIMEOUT_S = 90.0
POLL_S = 0.5
RECONCILE_GAUGE = "drd_reconcile_duration_seconds"


def scale_tenants(tenants: int) -> list[str]:
    return [f"bench-t{n:02d}" for n in range(tenants)]


def image_names(per_tenant: int) -> list[str]:
    return [f"img-{n:02d}" for n in range(per_tenant)]


def scale_policy(tenant: str) -> str:
    every_minute = snapshot_destination("1m", "2m")
    return policy_yaml(tenant, [Selection("all", tenant, "img-*", every_minute,
                                          every_minute)])


@dataclass
class ScaleRun:
    """What part 1 measured."""

    tenants: int
    per_tenant: int
    window_s: float
    create_s: float = 0.0  # namespaces on 3 sites + images on a
    put_s: float = 0.0  # the 50 PUTs, one after another
    enabled_s: float | None = None  # first PUT -> all images mirror-enabled on a
    enabled: int = 0
    first_passes: list[float] = field(default_factory=list)  # gauge values until enabled
    protected_s: float | None = None  # first PUT -> every image in drd's /v1/rpo
    enable_actions: dict[str, float] = field(default_factory=dict)  # result -> count
    steady_passes: list[float] = field(default_factory=list)
    rss: list[int] = field(default_factory=list)
    mon_sessions: dict[str, int] = field(default_factory=dict)  # site -> at the end
    threads_at_start: int = 0
    uss: int = 0
    threads: int = 0
    cpu_percent: float = 0.0
    cpu_by_thread: dict[str, float] = field(default_factory=dict)  # name -> % of a core
    probe_staleness: list[float] = field(default_factory=list)
    snapshots: dict[str, float] = field(default_factory=dict)  # result -> taken in window
    rpo: dict[str, list[float]] = field(default_factory=dict)  # destination -> values
    unknown: Counter[str] = field(default_factory=Counter)  # destination -> unmeasured
    details: Counter[str] = field(default_factory=Counter)
    problems: list[str] = field(default_factory=list)

    @property
    def images(self) -> int:
        return self.tenants * self.per_tenant


class _Passes:
    """Reconcile pass times, from the gauge of the last pass: a new value is a new pass."""

    def __init__(self, metrics: Metrics) -> None:
        self.last = metrics.value(RECONCILE_GAUGE)

    def scrape(self, runner: DaemonRunner, api: DaemonApi) -> float | None:
        """The time of a pass that ended since the last look, if one did."""
        metrics = runner.call(api.metrics)
        return None if metrics is None else self.seen(metrics)

    def seen(self, metrics: Metrics) -> float | None:
        value = metrics.value(RECONCILE_GAUGE)
        if value == self.last:
            return None
        self.last = value
        return value


def prepare(description: LabDescription, run: ScaleRun) -> None:
    started = time.monotonic()
    namespaces = [*scale_tenants(run.tenants), PROBE_TENANT]
    prepare_namespaces(description, namespaces)
    plan = dict.fromkeys(scale_tenants(run.tenants), image_names(run.per_tenant))
    plan[PROBE_TENANT] = PROBE_IMAGES
    create_many(description.sites["a"].conf, plan, IMAGE_SIZE, first_block=True)
    run.create_s = time.monotonic() - started


def start_probe(api: DaemonApi) -> None:
    """Protect the probe images and wait until drd measures them."""
    api.put_policy(PROBE_TENANT, policy_yaml(PROBE_TENANT, [Selection(
        "probe", PROBE_TENANT, "probe-*", journal_destination("5s"), None)]))
    deadline = time.monotonic() + PROBE_TIMEOUT_S
    while time.monotonic() < deadline:
        rows = api.rpo(PROBE_TENANT)
        if len(rows) == len(PROBE_IMAGES) and all(row.rpo_s is not None for row in rows):
            return
        time.sleep(1.0)
    raise BenchError(f"drd did not measure the probe images within {PROBE_TIMEOUT_S:.0f} s")


def first_reconcile(description: LabDescription, api: DaemonApi, runner: DaemonRunner,
                    run: ScaleRun) -> None:
    """PUT every policy, then time until site a has every image mirror-enabled.

    A daemon that dies meanwhile is restarted (as systemd would) and the clock runs on.
    """
    tenants = scale_tenants(run.tenants)
    passes = _Passes(api.metrics())
    started = time.monotonic()
    for tenant in tenants:
        if runner.call(partial(api.put_policy, tenant, scale_policy(tenant))) is None:
            api.put_policy(tenant, scale_policy(tenant))  # the daemon died; once more
    run.put_s = time.monotonic() - started
    conf = description.sites["a"].conf
    while time.monotonic() - started < FIRST_RECONCILE_TIMEOUT_S:
        run.enabled = primary_enabled(conf, tenants)
        if (value := passes.scrape(runner, api)) is not None:
            run.first_passes.append(value)
        if run.enabled >= run.images:
            run.enabled_s = time.monotonic() - started
            break
        time.sleep(POLL_S)
    else:
        run.problems.append(f"only {run.enabled}/{run.images} images were mirror-enabled "
                            f"{FIRST_RECONCILE_TIMEOUT_S:.0f} s after the first PUT")
        return
    wanted = set(tenants)
    while time.monotonic() - started < run.enabled_s + PROTECTED_TIMEOUT_S:
        rows = runner.call(api.rpo) or []
        if (value := passes.scrape(runner, api)) is not None:
            run.first_passes.append(value)
        if len([row for row in rows if row.tenant in wanted]) >= 2 * run.images:
            run.protected_s = time.monotonic() - started
            break
        time.sleep(POLL_S)
    else:
        run.problems.append(f"drd's /v1/rpo did not list all {run.images} images "
                            f"{PROTECTED_TIMEOUT_S:.0f} s after they were enabled")
    actions = api.metrics()
    run.enable_actions = {result: actions.value("drd_reconcile_actions_total",
                                                kind="enable", result=result)
                          for result in ("ok", "failed")}


def steady_window(api: DaemonApi, runner: DaemonRunner, run: ScaleRun,
                  sites: dict[str, str]) -> None:
    """No API load beyond these reads: pass times, RSS, CPU, RPO-loop cadence.

    If the daemon dies, CPU and RSS count from its restart on.
    """
    before = api.metrics()
    passes = _Passes(before)
    started = time.monotonic()
    first = Usage.of(runner.process)
    threads_before = thread_cpu(runner.process.pid)
    run.threads_at_start = runner.process.num_threads()
    next_at = started
    while (now := time.monotonic()) < started + run.window_s:
        if runner.crashed():
            first, run.rss = Usage.of(runner.process), []
            threads_before = thread_cpu(runner.process.pid)
        run.rss.append(Usage.of(runner.process).rss)
        if (value := passes.scrape(runner, api)) is not None:
            run.steady_passes.append(value)
        at = datetime.now(UTC)
        run.probe_staleness += [age for row in runner.call(partial(api.rpo, PROBE_TENANT))
                                or [] if (age := row.staleness_s(at)) is not None]
        next_at += 1.0
        time.sleep(max(0.0, next_at - max(now, time.monotonic())))
    last = Usage.of(runner.process)
    run.cpu_percent = cpu_percent(first, last)
    run.cpu_by_thread = cpu_by_name(threads_before, thread_cpu(runner.process.pid),
                                    last.at - first.at)
    run.rss.append(last.rss)
    run.uss = runner.process.memory_full_info().uss
    run.threads = runner.process.num_threads()
    run.mon_sessions = runner.mon_sessions(sites)
    after = api.metrics()
    run.snapshots = {result: after.value("drd_mirror_snapshots_total", result=result)
                     - before.value("drd_mirror_snapshots_total", result=result)
                     for result in ("ok", "failed")}
    wanted = set(scale_tenants(run.tenants))
    _record_rpo([row for row in api.rpo() if row.tenant in wanted], run)


def _record_rpo(rows: list[RpoSample], run: ScaleRun) -> None:
    for row in rows:
        run.details[f"{row.destination}: {row.detail}"] += 1
        if row.rpo_s is None:
            run.unknown[row.destination] += 1
        else:
            run.rpo.setdefault(row.destination, []).append(row.rpo_s)


def measure(description: LabDescription, api: DaemonApi, runner: DaemonRunner, *,
            tenants: int, per_tenant: int, window_s: float) -> ScaleRun:
    run = ScaleRun(tenants=tenants, per_tenant=per_tenant, window_s=window_s)
    print(f"scale: {tenants} namespaces on 3 sites, {run.images} images of "
          f"{IMAGE_SIZE // MIB} MiB on a", flush=True)
    prepare(description, run)
    print(f"scale: created in {run.create_s:.1f} s; probe images protected, then "
          f"{tenants} PUTs", flush=True)
    start_probe(api)
    first_reconcile(description, api, runner, run)
    print(f"scale: enabled {run.enabled}/{run.images} after "
          f"{_shown(run.enabled_s)} s, in /v1/rpo after {_shown(run.protected_s)} s; "
          f"steady window {window_s:.0f} s", flush=True)
    steady_window(api, runner, run, {site.address: name
                                     for name, site in description.sites.items()})
    return run


def _shown(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"
