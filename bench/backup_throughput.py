"""Backup throughput of one image: drd against the pipeline run by hand, side by side.

Each round backs the same image up into a fresh repository (made beforehand and not
timed, as `restic init` is not) in every way below. drd and hand run side by side,
drd first in odd rounds and hand first in even ones, so that load on the machine that
rises or falls over two rounds hits both alike; the step between them follows, and the
re-backup ends the round:

- `hand`: `rbd export IMAGE - | restic backup --stdin --stdin-filename NAME`, two
  processes joined by an OS pipe, the password through RESTIC_PASSWORD_FILE;
- `drd`: drd's job of one image (`back_up_rbd_source`): sweep, snapshot, restic with
  `--stdin-from-command` running `rbd export` of the snapshot itself, the snapshot's
  removal, and the image backup recorded in a state store. At the end of the round,
  `re-backup` backs the unchanged image up again into the repository drd filled;
- with the breakdown on (the default), `restic+rbd`: restic run by the benchmark with
  drd's own argv (`--stdin-from-command`, `--json`, host, tags, `--retry-lock`) and the
  `rbd export` command drd builds, without drd's Python around it. hand -> restic+rbd is
  restic's flags and --stdin-from-command, restic+rbd -> drd drd's own work per image.

Every step also counts CPU seconds: its processes (reaped), the benchmark's own
process (drd's Python and librados threads) and site a's OSD.
"""

import asyncio
import contextlib
import os
import signal
import subprocess
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from time import monotonic
from typing import Any, TypeVar

from backup_lab import (
    CLIENT,
    MIB,
    POOL,
    CpuMeter,
    CpuUse,
    Workspace,
    environment,
    load_average,
)
from daemon_process import BenchError

from drd.backup import restic_argv
from drd.backup.actions import SOURCE_TAG_PREFIX
from drd.backup.ceph_access import CephAccess
from drd.backup.job_run import JobFailed
from drd.backup.rbd_backup import back_up_rbd_source
from drd.backup.restic import Restic, ResticRepository
from drd.backup.restic_messages import (
    BackupStatus,
    BackupSummary,
    ResticOutputError,
    parse_message,
)
from drd.backup.restic_outcome import BackupResult
from drd.backup.retention import tenant_tag
from drd.backup.scheduler import utc_now
from drd.domain.image_backups import image_file_name
from drd.domain.replication_plan import ImageRef
from drd.state import StateStore

TENANT = "bench"
SOURCE = "throughput"
TAGS = (tenant_tag(TENANT), SOURCE_TAG_PREFIX + SOURCE)
RETRY_LOCK = timedelta(minutes=1)  # Restic's default, so the flags are drd's
STEP_TIMEOUT_S = 1800.0

T = TypeVar("T")

HAND, FROM_COMMAND, DRD = "hand", "restic+rbd", "drd"
REBACKUP = "re-backup"


@dataclass(frozen=True)
class Step:
    """One backup: its wall time, CPU, and what it added to the repository."""

    seconds: float
    cpu: CpuUse
    bytes_added: int | None = None


@dataclass(frozen=True)
class DrdPhases:
    """Where one drd backup's time went, in seconds."""

    sweep: float  # removing leftover drd-backup-* snapshots (a librados connect)
    snapshot: float  # taking the snapshot (another)
    restic: float  # restic, as drd awaited it
    restic_own: float  # restic's own total_duration, from its summary
    cleanup: float  # removing the snapshot (another)
    total: float

    @property
    def other(self) -> float:
        """Python around the calls: the image backup's record in the state store."""
        return self.total - self.sweep - self.snapshot - self.restic - self.cleanup


@dataclass
class ThroughputRun:
    size: int
    steps: dict[str, list[Step]] = field(default_factory=dict)
    phases: list[DrdPhases] = field(default_factory=list)

    def add(self, name: str, step: Step) -> None:
        self.steps.setdefault(name, []).append(step)


@dataclass(frozen=True)
class TimedCephAccess(CephAccess):
    """CephAccess noting how long each call took (connect, work, shutdown)."""

    calls: list[float] = field(default_factory=list, compare=False, hash=False)

    async def call(self, work: Callable[[Any], T], *,
                   stop: threading.Event | None = None) -> T:
        began = monotonic()
        try:
            return await super().call(work, stop=stop)
        finally:
            self.calls.append(monotonic() - began)


class TimedRestic(Restic):
    """Restic noting each backup's time as drd awaited it and as restic reported it."""

    def __init__(self, repository: ResticRepository) -> None:
        super().__init__(repository, retry_lock=RETRY_LOCK)
        self.backups: list[tuple[float, float]] = []

    async def backup_from_command(
            self, command: Sequence[str], *, stdin_filename: str, host: str,
            tags: Sequence[str] = (), limit_upload_kib: int | None = None,
            time: datetime | None = None,
            progress: Callable[[BackupStatus], None] | None = None,
            deadline: float | None = None) -> BackupResult:
        began = monotonic()
        result = await super().backup_from_command(
            command, stdin_filename=stdin_filename, host=host, tags=tags,
            limit_upload_kib=limit_upload_kib, time=time, progress=progress,
            deadline=deadline)
        own = result.summary.total_duration if result.summary else 0.0
        self.backups.append((monotonic() - began, own))
        return result


class ThroughputBench:
    """The image, its workspace and meters; `round` runs one round of every step."""

    def __init__(self, conf: Path, ref: ImageRef, size: int, *, workspace: Workspace,
                 store: StateStore, meter: CpuMeter, breakdown: bool) -> None:
        self.conf, self.ref, self.size = conf, ref, size
        self.workspace, self.store, self.meter = workspace, store, meter
        self.breakdown = breakdown
        self.run = ThroughputRun(size)

    def order(self, number: int) -> list[str]:
        """drd and hand always side by side, each first in every other round; then the
        step between them. Load that rises or falls over two rounds so hits drd and hand
        alike."""
        pair = [DRD, HAND] if number % 2 else [HAND, DRD]
        return pair + ([FROM_COMMAND] if self.breakdown else [])

    def round(self, number: int) -> None:
        order = self.order(number)
        print(f"round {number} ({' -> '.join(order)} -> {REBACKUP}), load average "
              f"{load_average()}", flush=True)
        kept = self.workspace.repository(f"drd-{number}")
        try:
            for name in order:
                if name == DRD:
                    self._drd(kept)
                    continue
                repository = self.workspace.repository(f"{name.replace('+', '-')}-{number}")
                try:
                    self._by_hand(name, repository)
                finally:
                    self.workspace.remove_repository(repository)
            self._rebackup(kept)
        finally:
            self.workspace.remove_repository(kept)
        drd, hand = self.run.steps[DRD][-1], self.run.steps[HAND][-1]
        print(f"  drd / hand throughput this round: {hand.seconds / drd.seconds:.2f}; CPU "
              f"{drd.cpu.total / hand.cpu.total:.2f} times the hand pipeline's", flush=True)

    def _drd(self, repository: ResticRepository) -> None:
        restic = TimedRestic(repository)
        asyncio.run(restic.ensure_repository(initialise=True))
        ceph = TimedCephAccess(self.conf, CLIENT)
        step = self._timed(lambda: asyncio.run(self._back_up(restic, ceph)))
        self._note(DRD, step)
        if len(ceph.calls) != 3 or len(restic.backups) != 1:
            raise BenchError(f"drd's backup made {len(ceph.calls)} Ceph calls and "
                             f"{len(restic.backups)} restic backups, not 3 and 1")
        sweep, snapshot, cleanup = ceph.calls
        (awaited, own), = restic.backups
        self.run.phases.append(DrdPhases(sweep, snapshot, awaited, own, cleanup,
                                         step.seconds))

    def _rebackup(self, repository: ResticRepository) -> None:
        """drd's backup of the unchanged image into the repository drd's step filled."""
        again = TimedRestic(repository)
        self._note(REBACKUP, self._timed(
            lambda: asyncio.run(self._back_up(again, CephAccess(self.conf, CLIENT)))))

    async def _back_up(self, restic: Restic, ceph: CephAccess) -> int:
        try:
            outcome = await back_up_rbd_source(
                restic, ceph, self.store, tenant=TENANT, source=SOURCE, images=[self.ref],
                host=TENANT, tags=TAGS, clock=utc_now)
        except JobFailed as failure:
            raise BenchError(f"drd's backup failed: {failure.reason}") from None
        return outcome.bytes_added or 0

    def _by_hand(self, name: str, repository: ResticRepository) -> None:
        env = environment(repository)
        init = subprocess.run(["restic", "init", "--repo", repository.url], env=env,
                              capture_output=True, text=True, timeout=120, check=False)
        if init.returncode != 0:
            raise BenchError(f"restic init failed: {init.stderr.strip()}")
        if name == HAND:
            step = self._timed(lambda: self._hand_pipeline(repository))
        else:
            step = self._timed(lambda: self._restic_runs_export(repository))
        self._note(name, step)

    def _hand_pipeline(self, repository: ResticRepository) -> int | None:
        """`rbd export | restic backup --stdin`, as an operator would type it.

        Both stay in the benchmark's session, as a shell keeps a pipeline in one: the
        kernel's autogroup scheduling shares CPU between sessions, and drd's restic
        and rbd share the one session drd starts restic in. A session each would
        give the hand pipeline two shares against other load, and drd one.
        """
        logs = self.workspace.root
        export_argv = ["rbd", "-c", str(self.conf), "--id", CLIENT, "export", "--no-progress",
                       f"{POOL}/{self.ref.name}", "-"]
        restic_argv_ = ["restic", "backup", "--repo", repository.url, "--stdin",
                        "--stdin-filename", image_file_name(self.ref)]
        with (logs / "hand-export.log").open("wb") as export_log, \
                (logs / "hand-restic.log").open("wb") as restic_log:
            export = subprocess.Popen(export_argv, stdout=subprocess.PIPE, stderr=export_log)
            processes = [export]
            try:
                assert export.stdout is not None
                processes.append(subprocess.Popen(
                    restic_argv_, stdin=export.stdout, stdout=restic_log,
                    stderr=subprocess.STDOUT, env=environment(repository)))
                export.stdout.close()  # restic holds the read end; rbd sees it go
                codes = [process.wait(timeout=STEP_TIMEOUT_S) for process in processes]
            finally:
                for process in processes:
                    _stop(process, group=False)
        output = (logs / "hand-restic.log").read_text(errors="replace")
        if codes != [0, 0] or "processed 1 files" not in output:
            raise BenchError(f"the hand pipeline failed: rbd export exited {codes[0]}, "
                             f"restic {codes[-1]}: {output.strip()[-500:]}")
        return None

    def _restic_runs_export(self, repository: ResticRepository) -> int | None:
        """restic with drd's argv running `rbd export` itself, as drd has it do (of the
        image, not a snapshot: drd's snapshot is its own work, and exporting one costs
        what exporting the image does)."""
        export = CephAccess(self.conf, CLIENT).rbd("export", "--no-progress",
                                                   f"{POOL}/{self.ref.name}", "-")
        argv = restic_argv.backup_from_command(
            repository.url, export, stdin_filename=image_file_name(self.ref), host=TENANT,
            tags=TAGS, retry_lock=RETRY_LOCK)
        process = subprocess.Popen(["restic", *argv], stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, env=environment(repository),
                                   start_new_session=True)
        try:
            out, err = process.communicate(timeout=STEP_TIMEOUT_S)
        finally:
            _stop(process, group=True)
        summary = _summary(out.decode(errors="replace"))
        if process.returncode != 0 or summary is None or \
                summary.total_bytes_processed != self.size:
            raise BenchError(f"restic exited {process.returncode} having read "
                             f"{summary.total_bytes_processed if summary else '?'} bytes: "
                             f"{err.decode(errors='replace').strip()[-500:]}")
        return summary.data_added

    def _timed(self, work: Callable[[], int | None]) -> Step:
        self.meter.start()
        began = monotonic()
        added = work()
        return Step(monotonic() - began, self.meter.stop(), added)

    def _note(self, name: str, step: Step) -> None:
        self.run.add(name, step)
        cpu = step.cpu
        added = "" if step.bytes_added is None else \
            f", added {step.bytes_added / MIB:.2f} MiB"
        print(f"  {name:<13}{step.seconds:6.1f} s {self.size / MIB / step.seconds:6.1f} MiB/s"
              f"  CPU {cpu.total:5.1f} s (processes {cpu.children:.1f}, bench {cpu.own:.1f}, "
              f"OSD {cpu.osd:.1f}){added}", flush=True)


def _summary(stdout: str) -> BackupSummary | None:
    for line in reversed(stdout.splitlines()):
        try:
            message = parse_message(line)
        except ResticOutputError:
            continue
        if isinstance(message, BackupSummary):
            return message
    return None


def _stop(process: subprocess.Popen[bytes], *, group: bool) -> None:
    """Kill a step's process if it still runs (only on failure or Ctrl-C) and reap it;
    with `group`, what is left of the session it leads too (restic reaps its command,
    which reaps rbd, so normally nothing is)."""
    if group:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
    elif process.poll() is None:
        process.kill()
    process.wait()
