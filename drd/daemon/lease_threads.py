"""The lease's own worker threads, apart from the event loop's default pool.

Everything else that blocks runs in the default pool (`asyncio.to_thread`): runbook
steps, backups, the API's reads of the state store, the returned-site guard's calls to
a dead site, each of which may hold a thread for the length of a Ceph deadline (10 s).
That pool has min(32, CPUs + 4) threads: 6 on the 2-core machines drd runs on. A vote
or a renewal queued behind them is late, and a late answer is a refusal: the holder
cannot renew, and fences a healthy site. So the voter's writes of a promised epoch and
the holder's reads and fencing of its own images run here.
"""

import asyncio
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import ParamSpec, TypeVar

P = ParamSpec("P")
T = TypeVar("T")

# A renewal round reads its own images once, and fencing demotes a group's images in
# parallel; four threads keep a fence of a few images from queueing behind one read.
_LEASE_THREADS = 4
_POOL = ThreadPoolExecutor(max_workers=_LEASE_THREADS, thread_name_prefix="drd-lease")


async def in_lease_thread(call: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """Run the blocking `call` in one of the lease's threads."""
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(_POOL, functools.partial(call, *args, **kwargs))
