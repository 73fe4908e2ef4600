"""Probe this site's own Ceph on an interval, in one worker thread, with a deadline."""

import asyncio
import time
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime

import structlog

from drd.api.schemas import CephView
from drd.ceph.cluster import CephError, ClusterHandle
from drd.daemon.runtime import SiteRuntime
from drd.domain.cluster_health import ClusterHealth

log = structlog.get_logger()


class CephProbe:
    """Asks `status` through one long-lived handle; never more than one call in flight.

    A librados call that hangs past its own timeouts keeps the worker busy; later
    probes then report "still waiting" instead of piling up threads.
    """

    def __init__(self, handle: ClusterHandle, deadline: float) -> None:
        self._handle = handle
        self._deadline = deadline
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ceph-probe")
        self._pending: Future[ClusterHealth] | None = None
        self._pending_since = 0.0

    async def probe(self) -> CephView:
        now = datetime.now(UTC)
        if self._pending is not None and not self._pending.done():
            waited = time.monotonic() - self._pending_since
            return CephView(reachable=False, health="unknown", probed_at=now,
                            detail=f"previous Ceph call still waiting after {waited:.0f} s")
        self._pending = self._executor.submit(self._handle.health)
        self._pending_since = time.monotonic()
        try:
            health = await asyncio.wait_for(asyncio.wrap_future(self._pending),
                                            self._deadline)
        except TimeoutError:
            return CephView(reachable=False, health="unknown", probed_at=now,
                            detail=f"no answer within {self._deadline:.0f} s")
        except CephError as error:
            return CephView(reachable=False, health="unknown", probed_at=now,
                            detail=str(error))
        return CephView(reachable=True, health=health.status, checks=health.checks,
                        probed_at=now, detail=health.settled()[1])

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
        self._handle.close()


async def ceph_probe_loop(runtime: SiteRuntime, probe: CephProbe) -> None:
    while True:
        started = time.monotonic()
        view = await probe.probe()
        if view.health != runtime.ceph.health or view.reachable != runtime.ceph.reachable:
            log.info("ceph health changed", health=view.health, reachable=view.reachable,
                     detail=view.detail)
        runtime.record_ceph(view)
        runtime.metrics.ceph_probe_duration.set(time.monotonic() - started)
        await asyncio.sleep(max(0.0, runtime.probe_seconds - (time.monotonic() - started)))
