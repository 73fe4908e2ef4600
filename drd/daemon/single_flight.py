"""One blocking call at a time in a worker thread of its own, under a deadline."""

import asyncio
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Generic, TypeVar

T = TypeVar("T")


class StillWaiting(Exception):
    """The previous call has not returned yet; no new one was started."""


class SingleFlight(Generic[T]):
    """Runs one blocking call at a time in a worker thread of its own, under a deadline.

    A librados call that hangs past its own timeouts keeps the worker busy; later
    calls then fail at once with StillWaiting instead of piling up threads.
    """

    def __init__(self, name: str, deadline: float) -> None:
        self.deadline = deadline
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)
        self._pending: Future[T] | None = None
        self._pending_since = 0.0

    async def call(self, blocking: Callable[[], T]) -> T:
        """`blocking()`'s result; TimeoutError past the deadline (the call runs on)."""
        if self._pending is not None and not self._pending.done():
            waited = time.monotonic() - self._pending_since
            raise StillWaiting(f"previous Ceph call still waiting after {waited:.0f} s")
        self._pending = self._executor.submit(blocking)
        self._pending_since = time.monotonic()
        return await asyncio.wait_for(asyncio.wrap_future(self._pending), self.deadline)

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
