"""Keep a long-running loop alive: log a crash with its traceback, back off, restart.

A bug in one loop (say, mirror snapshots) must not silence the others (heartbeats,
which a quorum will depend on). Cancellation still stops the loop at once.
"""

import asyncio
from collections.abc import Awaitable, Callable

import structlog

from drd.api.metrics import DaemonMetrics

log = structlog.get_logger()

FIRST_BACKOFF = 1.0
MAX_BACKOFF = 60.0


async def supervised(name: str, loop: Callable[[], Awaitable[None]],
                     metrics: DaemonMetrics) -> None:
    backoff = FIRST_BACKOFF
    while True:
        try:
            await loop()
            return
        except asyncio.CancelledError:
            raise
        except Exception:
            metrics.loop_crashes.labels(loop=name).inc()
            log.exception("loop crashed; restarting it", loop=name, backoff_seconds=backoff)
        await asyncio.sleep(backoff)
        backoff = min(backoff * 2, MAX_BACKOFF)
