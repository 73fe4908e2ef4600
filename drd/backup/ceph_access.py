"""How backup jobs reach a site's Ceph: librbd in worker threads, and the `rbd` CLI.

A backup or restore is cancelled when the daemon stops or a deadline passes, but what it
started on a cluster must still end: a snapshot half-taken, a scratch image half-made.
So every librbd call here runs to its end even when the awaiting task is cancelled, and
the cancellation is raised once it has (a long read is told to stop first).
"""

import asyncio
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from drd.ceph.cluster import connect

T = TypeVar("T")

RBD = "rbd"


@dataclass(frozen=True)
class CephAccess:
    """One site's cluster, as drd reaches it: its conf file and cephx id (`drd`, not
    `client.drd`), for librbd and for the `rbd` CLI alike."""

    conf: Path
    client: str
    timeout: float = 30.0  # seconds a mon or OSD operation may take before it fails

    def __post_init__(self) -> None:
        if not self.client or self.client.startswith("client.") or \
                self.client.startswith("-"):
            raise ValueError(f"the cephx id is the name after 'client.', got {self.client!r}")

    def rbd(self, *args: str) -> list[str]:
        """An `rbd` command line against this cluster."""
        return [RBD, "-c", str(self.conf), "--id", self.client, *args]

    async def call(self, work: Callable[[Any], T], *,
                   stop: threading.Event | None = None) -> T:
        """`work(cluster)` in a worker thread on a connection of its own.

        Cancelling waits for `work` to end (setting `stop` first, for work that checks
        it) and then raises CancelledError: nothing is left running behind the caller.
        """
        def connected() -> T:
            with connect(self.conf, self.client, self.timeout) as cluster:
                return work(cluster)

        return await finish_despite_cancel(asyncio.to_thread(connected),
                                           on_cancel=None if stop is None else stop.set)


async def finish_despite_cancel(work: Awaitable[T],
                                on_cancel: Callable[[], None] | None = None) -> T:
    """Await `work` to its end even if this task is cancelled meanwhile; then re-raise
    the cancellation, if there was one, instead of returning."""
    task = asyncio.ensure_future(work)
    cancelled = False
    while not task.done():
        try:
            # Unlike awaiting the task, wait() neither cancels it nor raises its error,
            # so an error of `work` cannot swallow a cancellation that came first.
            await asyncio.wait({task})
        except asyncio.CancelledError:
            if not cancelled and on_cancel is not None:
                on_cancel()
            cancelled = True
    if cancelled:
        raise asyncio.CancelledError from (None if task.cancelled() else task.exception())
    return task.result()
