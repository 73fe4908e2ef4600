"""Hook scripts a runbook runs (a step's `exec_hook`, a drill's per-clone check): argv
without a shell, stdin closed, stdout and stderr captured together, in a session of
their own so that the whole process group is killed at the deadline or when the step
is cancelled."""

import asyncio
import contextlib
import os
import signal
from dataclasses import dataclass

HOOK_OUTPUT_LINES = 20  # kept per run of a hook, the last ones
_KILL_GRACE_SECONDS = 5.0


@dataclass(frozen=True)
class HookResult:
    status: int | None  # None: killed at the deadline
    lines: list[str]


async def run_hook(argv: tuple[str, ...], env: dict[str, str], deadline: float, *,
                   keep: int = HOOK_OUTPUT_LINES) -> HookResult:
    """Run `argv` with stdout and stderr captured (the last `keep` lines kept), until it
    exits or the loop's clock reaches `deadline`; the whole process group is killed
    then, or on cancellation."""
    process = await asyncio.create_subprocess_exec(
        *argv, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT, env=env, start_new_session=True)
    loop = asyncio.get_running_loop()
    try:
        async with asyncio.timeout_at(deadline if deadline > loop.time() else loop.time()):
            out, _ = await process.communicate()
    except TimeoutError:
        await _kill(process)
        return HookResult(None, [])
    except BaseException:
        await _kill(process)
        raise
    lines = out.decode(errors="replace").splitlines()[-keep:]
    return HookResult(process.returncode, lines)


async def _kill(process: asyncio.subprocess.Process) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(_KILL_GRACE_SECONDS):
            await process.wait()
