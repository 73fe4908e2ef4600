"""A step's per-image calls run in threads of its own, `width` at once, whatever the
size of the event loop's default pool (six workers on a 2-CPU host)."""

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor
from functools import partial

from drd.runbooks.step_api import IMAGE_PARALLEL, ImageThreads, for_each


def _meeting(parties: int) -> threading.Barrier:
    """Every call waits until `parties` calls are running at once, or fails after 5 s."""
    return threading.Barrier(parties, timeout=5.0)


async def test_for_each_runs_width_calls_at_once_beyond_the_loops_default_pool() -> None:
    asyncio.get_running_loop().set_default_executor(ThreadPoolExecutor(max_workers=2))
    barrier = _meeting(IMAGE_PARALLEL)
    results = await for_each(list(range(IMAGE_PARALLEL)), lambda n: (barrier.wait(), n)[1])
    assert results == list(range(IMAGE_PARALLEL))


async def test_image_threads_run_width_calls_at_once_and_report_each_failure() -> None:
    asyncio.get_running_loop().set_default_executor(ThreadPoolExecutor(max_workers=2))
    barrier = _meeting(IMAGE_PARALLEL)

    def call(n: int) -> int:
        barrier.wait()
        if n == 3:
            raise ValueError("image 3 refused")
        return n

    with ImageThreads(IMAGE_PARALLEL) as threads:
        results = await asyncio.gather(*(threads.run(partial(call, n))
                                         for n in range(IMAGE_PARALLEL)),
                                       return_exceptions=True)
    assert [r for r in results if isinstance(r, BaseException)] == [results[3]]
    assert str(results[3]) == "image 3 refused"
    assert results[:3] == [0, 1, 2]


async def test_leaving_the_block_does_not_wait_for_calls_still_running() -> None:
    release = threading.Event()
    threads = ImageThreads(1)
    running = asyncio.ensure_future(threads.run(lambda: release.wait(5.0)))
    await asyncio.sleep(0.05)
    threads.close()  # returns at once, the call still blocked in its thread
    assert not running.done()
    release.set()
    assert await running is True
