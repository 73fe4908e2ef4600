"""Child processes for the restic adapter: started, read, stopped, never left behind.

Each child runs in a session of its own, so its process group holds it and anything it
starts (restic's --stdin-from-command child, a consumer's helpers). At a deadline, or
when the awaiting task is cancelled, a child gets SIGINT (restic then releases its lock
and stops its own child), and its whole group gets SIGKILL after a grace period. After
every child exits, whatever is left in its group is killed too. Cancellation waits for
all of that, even when cancelled again, and then propagates.

A pipeline (`restic dump | rbd import - ...`) joins two children with an OS pipe, so
the data never passes through Python.
"""

import asyncio
import contextlib
import os
import signal
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

GRACE = 10.0  # seconds from SIGINT to SIGKILL; restic needs about one to clean up
TAIL_LINES = 40
_LINE_LIMIT = 64 << 20  # the longest line read; `snapshots --json` is one line
_TAIL_LINE = 2000  # characters kept of one stderr line


@dataclass
class Children:
    """PIDs this daemon is running now; a restic lock held by one of them is live."""

    pids: set[int] = field(default_factory=set)

    def __contains__(self, pid: object) -> bool:
        return pid in self.pids


@dataclass(frozen=True)
class Finished:
    exit_code: int  # negative: killed by that signal (SIGKILL, when drd had to)
    stdout: str  # all of it, unless the lines went to a callback
    stdout_tail: tuple[str, ...]
    stderr_tail: tuple[str, ...]
    timed_out: bool = False  # drd stopped it at its deadline, whatever it exited with


class _Reader:
    """Collects one child's output as it arrives."""

    def __init__(self, process: asyncio.subprocess.Process,
                 on_line: Callable[[str], None] | None, keep_stdout: bool) -> None:
        self.process = process
        self.on_line = on_line
        self.keep_stdout = keep_stdout
        self.stdout: list[str] = []
        self.stdout_tail: deque[str] = deque(maxlen=TAIL_LINES)
        self.stderr_tail: deque[str] = deque(maxlen=TAIL_LINES)

    def readers(self) -> list[Coroutine[Any, Any, None]]:
        readers = []
        if self.process.stdout is not None:
            readers.append(self._stdout(self.process.stdout))
        if self.process.stderr is not None:
            readers.append(self._lines(self.process.stderr, self.stderr_tail.append))
        return readers

    async def _stdout(self, stream: asyncio.StreamReader) -> None:
        if self.keep_stdout and self.on_line is None:
            self.stdout.append((await stream.read()).decode(errors="replace"))
            return
        on_line = self.on_line

        def take(line: str) -> None:
            self.stdout_tail.append(line)
            if on_line is not None:
                on_line(line)

        await self._lines(stream, take)

    @staticmethod
    async def _lines(stream: asyncio.StreamReader, take: Callable[[str], None]) -> None:
        while line := await stream.readline():
            take(line.decode(errors="replace").rstrip("\n"))

    def finished(self, timed_out: bool) -> Finished:
        code = self.process.returncode
        if code is None:  # _supervise reaps every child before it returns
            raise RuntimeError(f"child {self.process.pid} was not reaped")
        tail = tuple(line[:_TAIL_LINE] for line in self.stderr_tail)
        return Finished(code, "".join(self.stdout), tuple(self.stdout_tail), tail, timed_out)


async def run(argv: Sequence[str], *, env: Mapping[str, str], deadline: float | None,
              children: Children, on_line: Callable[[str], None] | None = None,
              grace: float = GRACE) -> Finished:
    """Run `argv` to its end (or deadline), stdout to `on_line` line by line or kept whole."""
    process = await _spawn(argv, env, stdin=asyncio.subprocess.DEVNULL,
                           stdout=asyncio.subprocess.PIPE)
    reader = _Reader(process, on_line, keep_stdout=True)
    timed_out = await _supervise([process], reader.readers(), deadline, grace, children)
    return reader.finished(timed_out)


async def run_pipeline(producer: Sequence[str], consumer: Sequence[str], *,
                       producer_env: Mapping[str, str], consumer_env: Mapping[str, str],
                       deadline: float | None, children: Children,
                       grace: float = GRACE) -> tuple[Finished, Finished]:
    """Run `producer | consumer` through an OS pipe; both finish, or both are stopped."""
    read_end, write_end = os.pipe()
    try:
        # The consumer first: one that cannot start (not installed) must fail before
        # restic runs, or restic, stopped while it holds its repository lock, may leave
        # the lock behind (seen once in a full test run).
        second = await _spawn(consumer, consumer_env, stdin=read_end,
                              stdout=asyncio.subprocess.PIPE)
        try:
            first = await _spawn(producer, producer_env, stdin=asyncio.subprocess.DEVNULL,
                                 stdout=write_end)
        except BaseException:
            await _uncancellable(_stop(second, grace))
            raise
    finally:
        # The children hold their own copies; the consumer sees EOF when restic exits.
        os.close(read_end)
        os.close(write_end)
    readers = [_Reader(first, None, keep_stdout=False), _Reader(second, None, False)]
    timed_out = await _supervise([first, second],
                                 [*readers[0].readers(), *readers[1].readers()],
                                 deadline, grace, children)
    return readers[0].finished(timed_out), readers[1].finished(timed_out)


async def _spawn(argv: Sequence[str], env: Mapping[str, str], *, stdin: int,
                 stdout: int) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        *argv, stdin=stdin, stdout=stdout, stderr=asyncio.subprocess.PIPE, env=dict(env),
        start_new_session=True, limit=_LINE_LIMIT)


async def _supervise(processes: list[asyncio.subprocess.Process],
                     readers: list[Coroutine[Any, Any, None]], deadline: float | None,
                     grace: float, children: Children) -> bool:
    """Wait for `processes` and their output; True if the deadline stopped them."""
    children.pids.update(process.pid for process in processes)
    tasks = [*map(asyncio.create_task, readers),
             *(asyncio.create_task(_wait_and_sweep(process)) for process in processes)]
    timed_out = False
    try:
        try:
            async with asyncio.timeout(deadline):
                await _first_error(tasks)
        except TimeoutError:
            timed_out = True
        finally:
            # Whatever stopped the wait (the deadline, a cancellation, a reader's error),
            # stop what still runs while its output is still read, so that it never
            # blocks on a full pipe while it cleans up.
            await _uncancellable(_stop_all(processes, grace))
            await _uncancellable(_finish(tasks, grace))
    finally:
        children.pids.difference_update(process.pid for process in processes)
    return timed_out


async def _first_error(tasks: list[asyncio.Task[None]]) -> None:
    done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
    for task in done:
        error = task.exception()
        if error is not None:
            raise error


async def _finish(tasks: list[asyncio.Task[None]], grace: float) -> None:
    """Let the readers reach EOF; one held open past `grace` (by a process that left the
    group) is cancelled."""
    _, pending = await asyncio.wait(tasks, timeout=grace)
    for task in pending:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


async def _wait_and_sweep(process: asyncio.subprocess.Process) -> None:
    await process.wait()
    # Anything the child left in its group would keep our pipes open and outlive it.
    _kill_group(process.pid)


async def _stop_all(processes: list[asyncio.subprocess.Process], grace: float) -> None:
    await asyncio.gather(*(_stop(process, grace) for process in processes))


async def _stop(process: asyncio.subprocess.Process, grace: float) -> None:
    """SIGINT, then SIGKILL to the whole group after `grace` s; returns once reaped
    (and _wait_and_sweep has killed what is left of its group)."""
    if process.returncode is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        process.send_signal(signal.SIGINT)
    try:
        await asyncio.wait_for(process.wait(), grace)
    except TimeoutError:
        _kill_group(process.pid)
        await process.wait()


def _kill_group(pgid: int) -> None:
    # Linux hands out no PID that is still a group's ID, so while a member lives this
    # reaches only that group. Once it is empty, only a new group leader given the same
    # PID in between (the PID space would have to wrap) could be hit.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


async def _uncancellable(work: Awaitable[None]) -> None:
    """Finish `work` even if the awaiting task is cancelled meanwhile."""
    task = asyncio.ensure_future(work)
    while not task.done():
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.shield(task)
    task.result()
