"""Probe this site's own Ceph on an interval, in one worker thread, with a deadline."""

import asyncio
import time
from datetime import UTC, datetime

import structlog

from drd.api.schemas import CephView
from drd.ceph.cluster import CephError, ClusterHandle
from drd.daemon.runtime import SiteRuntime
from drd.daemon.single_flight import SingleFlight, StillWaiting
from drd.domain.cluster_health import ClusterHealth

log = structlog.get_logger()


class CephProbe:
    """Asks `status` through one long-lived handle; never more than one call in flight."""

    def __init__(self, handle: ClusterHandle, deadline: float) -> None:
        self._handle = handle
        self._flight: SingleFlight[ClusterHealth] = SingleFlight("ceph-probe", deadline)

    async def probe(self) -> CephView:
        now = datetime.now(UTC)
        try:
            health = await self._flight.call(self._handle.health)
        except StillWaiting as error:
            return CephView(reachable=False, health="unknown", probed_at=now, detail=str(error))
        except TimeoutError:
            return CephView(reachable=False, health="unknown", probed_at=now,
                            detail=f"no answer within {self._flight.deadline:.0f} s")
        except CephError as error:
            return CephView(reachable=False, health="unknown", probed_at=now,
                            detail=str(error))
        return CephView(reachable=True, health=health.status, checks=health.checks,
                        probed_at=now, detail=health.settled()[1])

    def close(self) -> None:
        self._flight.close()
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
