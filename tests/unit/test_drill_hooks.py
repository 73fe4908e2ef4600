"""drill_verify's hook method, with real processes: the argv runs once per clone without a
shell, sees the clone in its environment, has its output kept, and is killed with its
whole process group at the deadline. Sites are faked at the SiteAccess boundary; the
hooks here touch no Ceph."""

import asyncio
import os
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import psutil

from drd.ceph.cluster import ClusterHandle
from drd.domain.drill import CloneMarks
from drd.domain.replication_plan import ImageRef
from drd.domain.runbook import RunbookKind, RunTarget
from drd.domain.site import SiteKind
from drd.runbooks.drill_verify import hook_verdicts
from drd.runbooks.hooks import HookResult, run_hook
from drd.runbooks.step_api import StepContext

PY = sys.executable
CLONES = [(ImageRef("rbd", "drd-drill", f"water-db{n}-run7"),
           CloneMarks(7, "water", "a", ImageRef("rbd", "water", f"db{n}"), "drd-drill-run7",
                      None)) for n in range(3)]


class Sites:
    """SiteAccess for a step that needs only conf paths."""

    def cluster(self, site: str) -> ClusterHandle:
        raise AssertionError("a hook verification reads no cluster itself")

    def ceph_conf(self, site: str) -> str:
        return f"/etc/ceph/{site}.conf"

    def peer_reachable(self, site: str) -> bool:
        return True

    def sites_of_kind(self, kind: SiteKind) -> list[str]:
        return {SiteKind.PRODUCTION: ["a"], SiteKind.SAME_CITY: ["b"],
                SiteKind.REMOTE: ["c"]}[kind]

    def restart_rbd_mirror(self, site: str) -> str:
        raise AssertionError("a hook verification restarts no daemon")


def _context() -> StepContext:
    return StepContext(run_id=7, kind=RunbookKind.DRILL,
                       target=RunTarget("a", "b", ("water",)), policies={}, sites=Sites(),
                       facts={}, now=lambda: datetime(2026, 11, 22, tzinfo=UTC))


def _later(seconds: float) -> float:
    return asyncio.get_running_loop().time() + seconds


def test_each_clone_is_checked_by_its_own_run_and_a_failing_one_is_named() -> None:
    script = ("import os, sys; image = os.environ['DRD_DRILL_IMAGE']; "
              "print('checking', image, 'with', os.environ['DRD_DRILL_CONF'], "
              "os.environ['DRD_DRILL_SOURCE'], os.environ['DRD_DRILL_RUN']); "
              "sys.exit(3 if image.endswith('db1-run7') else 0)")

    async def scenario() -> tuple[list[str], StepContext]:
        context = _context()
        failed = await hook_verdicts(context, "b", CLONES, (PY, "-c", script), _later(30))
        return failed, context

    failed, context = asyncio.run(scenario())
    assert failed == ["rbd/drd-drill/water-db1-run7"]
    lines = context.output.lines
    assert f"rbd/drd-drill/water-db0-run7: verified, {PY} exited 0" in lines
    assert f"rbd/drd-drill/water-db1-run7: FAILED: {PY} exited with status 3" in lines
    assert ("  water-db2-run7: checking rbd/drd-drill/water-db2-run7 with /etc/ceph/b.conf "
            "a:rbd/water/db2@drd-drill-run7 7") in lines
    assert context.output.facts["verdicts"]["rbd/drd-drill/water-db1-run7"] == {
        "verified": False, "exit_status": 3}


def test_the_argv_is_never_given_to_a_shell(tmp_path: Path) -> None:
    marker = tmp_path / "expanded"
    result = asyncio.run(_run((PY, "-c", "import sys; print(sys.argv[1])", f"$(touch {marker})")))
    assert result.status == 0
    assert result.lines == [f"$(touch {marker})"]
    assert not marker.exists()


def test_a_hook_that_cannot_start_fails_its_clone_not_the_step() -> None:
    async def scenario() -> tuple[list[str], StepContext]:
        context = _context()
        return await hook_verdicts(context, "b", CLONES[:1], ("/nonexistent/fsck",),
                                   _later(5)), context

    failed, context = asyncio.run(scenario())
    assert failed == ["rbd/drd-drill/water-db0-run7"]
    assert context.output.lines[0].startswith(
        "rbd/drd-drill/water-db0-run7: FAILED: cannot start /nonexistent/fsck:")


def test_the_deadline_kills_the_hook_and_every_process_it_started(tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    script = ("import os, subprocess, sys, time; "
              "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']); "
              f"open({str(pids)!r}, 'w').write(f'{{os.getpid()}} {{child.pid}}'); "
              "print('started', flush=True); time.sleep(60)")
    result = asyncio.run(_run((PY, "-c", script), seconds=2.0))
    assert result.status is None
    hook, child = (int(pid) for pid in pids.read_text().split())
    assert not _alive(hook)
    # SIGKILL to the group is delivered to the grandchild on its own time.
    assert _gone_soon(child), "the hook's own child survived the deadline"


def test_cancelling_the_step_kills_the_hook(tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    script = f"import os, time; open({str(pid_file)!r}, 'w').write(str(os.getpid())); " \
             "time.sleep(60)"

    async def scenario() -> None:
        task = asyncio.create_task(run_hook((PY, "-c", script), dict(os.environ), _later(60)))
        await _until(lambda: pid_file.exists() and bool(pid_file.read_text()))
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            return
        raise AssertionError("the cancellation was swallowed")

    asyncio.run(scenario())
    assert not _alive(int(pid_file.read_text()))


async def _run(argv: tuple[str, ...], seconds: float = 30.0) -> HookResult:
    return await run_hook(argv, dict(os.environ), _later(seconds))


async def _until(condition: Callable[[], bool]) -> None:
    for _ in range(200):
        if condition():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the hook did not start within 10 s")


def _gone_soon(pid: int) -> bool:
    for _ in range(100):
        if not _alive(pid):
            return True
        time.sleep(0.05)
    return False


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
