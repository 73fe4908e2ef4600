"""The restic adapter: the one place drd runs restic. argv comes from restic_argv, the
environment from restic_env (the password only through RESTIC_PASSWORD_FILE), exit codes
are read by restic_outcome and --json output by restic_messages. Jobs (backup, forget,
prune, check, restore) return a result whose outcome says whether they succeeded and
why; queries (locks here; snapshots, stats and the repository's objects in restic_reads)
raise ResticError. Children are run by restic_process: deadlines, cancellation, no
leftovers."""

import os
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psutil
import structlog

from drd.backup import restic_argv as argv
from drd.backup.restic_env import RepositoryCredentials, is_scrubbed, restic_environment
from drd.backup.restic_locks import (
    HolderProcess,
    RepositoryLock,
    StaleLockReport,
    plan_unlock,
)
from drd.backup.restic_messages import (
    BackupStatus,
    BackupSummary,
    CheckSummary,
    ItemError,
    ResticOutputError,
    parse_forget,
    parse_ids,
    parse_lock,
    parse_message,
    parse_messages,
    parse_version,
)
from drd.backup.restic_outcome import (
    BackupResult,
    CheckResult,
    ForgetResult,
    Outcome,
    OutcomeKind,
    RepositoryState,
    RestoreResult,
    consumer_outcome,
    interpret,
    judge_backup,
    judge_restore,
    stopped,
)
from drd.backup.restic_process import Children, Finished, run, run_pipeline
from drd.backup.restic_reads import ResticReads

log = structlog.get_logger()

RESTIC = "restic"
MINIMUM_VERSION = (0, 17, 0)  # exit codes 10-12, --stdin-from-command, a clean SIGINT
QUERY_TIMEOUT = 300.0  # seconds for snapshots, stats, locks, probes
JOB_TIMEOUT = 6 * 3600.0  # forget, prune, check, unlock; a backup's comes from its caller


class ResticError(Exception):
    """restic failed at something drd asked of it; `outcome` says how and why."""

    def __init__(self, outcome: Outcome) -> None:
        super().__init__(outcome.reason)
        self.outcome = outcome


class ResticUnavailable(Exception):
    """restic is missing, or too old for drd."""


@dataclass(frozen=True)
class ResticRepository:
    """One repository and what opening it takes. The URL is checked for a password."""

    url: str
    password_file: Path
    cache_dir: Path
    credentials: RepositoryCredentials = field(default_factory=RepositoryCredentials)

    def __post_init__(self) -> None:
        argv.check_repository(self.url)


async def probe_version(binary: str = RESTIC, *, deadline: float = 30.0,
                        children: Children | None = None) -> tuple[int, int, int]:
    """restic's version; ResticUnavailable if it is missing or older than 0.17."""
    env = {name: value for name, value in os.environ.items() if not is_scrubbed(name)}
    try:
        done = await run([binary, *argv.version()], env=env, deadline=deadline,
                         children=children or Children())
    except FileNotFoundError:
        raise ResticUnavailable(f"{binary} is not installed; drd needs restic 0.17 or "
                                f"newer (Debian 13's restic 0.18)") from None
    if done.timed_out:
        raise ResticUnavailable(f"`{binary} version` gave no answer in {deadline:.0f} s")
    if done.exit_code != 0:
        outcome = interpret("version", done.exit_code, done.stderr_tail)
        raise ResticUnavailable(f"`{binary} version` failed: {outcome.reason}")
    try:
        return require_version(parse_version(done.stdout))
    except ResticOutputError as error:
        raise ResticUnavailable(str(error)) from None


def require_version(found: tuple[int, int, int]) -> tuple[int, int, int]:
    """`found`, if drd can drive it; ResticUnavailable with the reason otherwise."""
    if found < MINIMUM_VERSION:
        raise ResticUnavailable(
            f"restic {'.'.join(map(str, found))} is too old: drd needs 0.17 or newer, for "
            f"--stdin-from-command, --retry-lock and exit codes 10, 11 and 12")
    return found


def holder_running(pid: int) -> bool:
    """Whether `pid` runs on this host (a zombie has ended): `remove_stale_locks`'s usual
    `is_holder_alive`."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
    except psutil.AccessDenied:
        return True


class Restic(ResticReads):
    """restic against one repository. `children` is shared by every Restic of a daemon,
    so a lock held by any restic it runs counts as live. Its queries are in ResticReads."""

    repository: ResticRepository

    def __init__(self, repository: ResticRepository, *, binary: str = RESTIC,
                 retry_lock: timedelta = timedelta(minutes=1),
                 children: Children | None = None, hostname: str | None = None) -> None:
        self.repository = repository
        self.binary = binary
        self.retry_lock = retry_lock
        self.children = children if children is not None else Children()
        self.hostname = hostname or socket.gethostname()

    async def ensure_repository(self, initialise: bool) -> RepositoryState:
        """Make sure the repository exists, creating it only if `initialise`."""
        probe = await self._query("cat config", argv.cat_config(self.repository.url))
        if probe.ok:
            return RepositoryState.EXISTED
        if probe.kind is not OutcomeKind.NO_REPOSITORY:
            raise ResticError(probe)
        if not initialise:
            raise ResticError(Outcome(probe.kind, probe.exit_code,
                                      f"{probe.reason}; the policy does not let drd create it"))
        created = await self._query("init", argv.init(self.repository.url))
        if created.ok:
            return RepositoryState.INITIALISED
        again = await self._query("cat config", argv.cat_config(self.repository.url))
        if again.ok:  # another drd created it meanwhile
            return RepositoryState.EXISTED
        raise ResticError(created)

    async def backup_from_command(
            self, command: Sequence[str], *, stdin_filename: str, host: str,
            tags: Sequence[str] = (), limit_upload_kib: int | None = None,
            time: datetime | None = None,
            progress: Callable[[BackupStatus], None] | None = None,
            deadline: float | None = None) -> BackupResult:
        """Back up the stdout of `command`; ok only if restic saved a complete snapshot."""
        args = argv.backup_from_command(
            self.repository.url, command, stdin_filename=stdin_filename, host=host, tags=tags,
            limit_upload_kib=limit_upload_kib, retry_lock=self.retry_lock, time=time)
        return await self._backup(args, progress, deadline)

    async def backup_paths(
            self, paths: Sequence[str], *, host: str, tags: Sequence[str] = (),
            limit_upload_kib: int | None = None,
            progress: Callable[[BackupStatus], None] | None = None,
            deadline: float | None = None) -> BackupResult:
        """Back up files at `paths`; a file restic cannot read is exit 3, a failure."""
        args = argv.backup_paths(self.repository.url, paths, host=host, tags=tags,
                                 limit_upload_kib=limit_upload_kib,
                                 retry_lock=self.retry_lock)
        return await self._backup(args, progress, deadline)

    async def _backup(self, args: list[str],
                      progress: Callable[[BackupStatus], None] | None,
                      deadline: float | None) -> BackupResult:
        summary: list[BackupSummary] = []
        unreadable: list[str] = []

        def on_line(line: str) -> None:
            try:
                message = parse_message(line)
            except ResticOutputError as error:  # one bad line must not stop the backup
                unreadable.append(str(error))
                return
            if isinstance(message, BackupStatus) and progress is not None:
                progress(message)
            elif isinstance(message, BackupSummary):
                summary.append(message)

        done = await self._run(args, deadline, on_line=on_line)
        last = summary[-1] if summary else None
        outcome = judge_backup(self._outcome("backup", done), last)
        if last is None and unreadable and outcome.exit_code == 0:
            outcome = Outcome(outcome.kind, 0, f"{outcome.reason}: {unreadable[-1]}")
        return BackupResult(outcome, last, _item_errors(done))

    async def forget(self, rules: argv.KeepRules,
                     selection: argv.SnapshotFilter = argv.ALL_SNAPSHOTS, *,
                     group_by: Sequence[str] = argv.DEFAULT_GROUP_BY,
                     dry_run: bool = False, deadline: float = JOB_TIMEOUT) -> ForgetResult:
        """Apply keep rules to each group of the selected snapshots; prune is separate."""
        done = await self._run(argv.forget(self.repository.url, rules, selection,
                                           group_by=group_by, retry_lock=self.retry_lock,
                                           dry_run=dry_run), deadline)
        outcome = self._outcome("forget", done)
        if not outcome.ok:
            return ForgetResult(outcome)
        return ForgetResult(outcome, tuple(parse_forget(done.stdout)))

    async def forget_snapshots(self, snapshot_ids: Sequence[str], *,
                               deadline: float = JOB_TIMEOUT) -> Outcome:
        """Remove the named snapshots (an incomplete one a failed backup left)."""
        done = await self._run(argv.forget_snapshots(self.repository.url, snapshot_ids,
                                                     retry_lock=self.retry_lock), deadline)
        return self._outcome("forget", done)

    async def prune(self, *, deadline: float = JOB_TIMEOUT) -> Outcome:
        done = await self._run(argv.prune(self.repository.url, retry_lock=self.retry_lock),
                               deadline)
        return self._outcome("prune", done)

    async def check(self, read_data_subset: str | None = None, *,
                    deadline: float = JOB_TIMEOUT) -> CheckResult:
        """`restic check`; only reading data (a subset) finds damage inside pack files."""
        done = await self._run(argv.check(self.repository.url,
                                          read_data_subset=read_data_subset,
                                          retry_lock=self.retry_lock), deadline)
        outcome = self._outcome("check", done)
        summaries = [message for message in parse_messages(done.stdout.splitlines(),
                                                           strict=False)
                     if isinstance(message, CheckSummary)]
        summary = summaries[-1] if summaries else None
        if outcome.ok and summary is not None and summary.num_errors:
            outcome = Outcome(OutcomeKind.FAILED, outcome.exit_code,
                              f"restic check exited 0 but counted {summary.num_errors} errors")
        return CheckResult(outcome, summary, _item_errors(done))

    async def dump_to(self, snapshot: str, path: str, consumer: Sequence[str], *,
                      selection: argv.SnapshotFilter = argv.ALL_SNAPSHOTS,
                      deadline: float | None = None) -> RestoreResult:
        """Stream one file of `snapshot` into `consumer`'s stdin (e.g. `rbd import - P/I`)
        through an OS pipe. On failure the consumer's target holds partial data."""
        if not consumer:
            raise ValueError("a restore needs a consumer command")
        args = argv.dump(self.repository.url, snapshot, path, selection,
                         retry_lock=self.retry_lock)
        consumer_env = {k: v for k, v in os.environ.items() if not is_scrubbed(k)}
        try:
            dumped, consumed = await run_pipeline(
                [self.binary, *args], consumer, producer_env=self._env(),
                consumer_env=consumer_env, deadline=deadline, children=self.children)
        except FileNotFoundError as error:
            if error.filename == self.binary:
                raise ResticUnavailable(f"{self.binary} is not installed") from None
            raise
        await self._clear_lock_of_killed("dump", dumped)
        restic = self._outcome("dump", dumped)
        name = Path(consumer[0]).name
        if consumed.timed_out:
            used = stopped(name, OutcomeKind.TIMED_OUT, "was stopped at its deadline",
                           consumed.stderr_tail, self._secrets())
        else:
            used = consumer_outcome(name, consumed.exit_code, consumed.stderr_tail,
                                    self._secrets())
        return RestoreResult(judge_restore(restic, used), restic, used, consumed.stdout_tail)

    async def locks(self) -> list[RepositoryLock]:
        """Every lock in the repository now; one released while being read is left out."""
        listed = await self._checked("list locks", argv.list_locks(self.repository.url),
                                     takes_lock=False)
        found = []
        for lock_id in parse_ids(listed.stdout):
            done = await self._run(argv.cat_lock(self.repository.url, lock_id), QUERY_TIMEOUT,
                                   takes_lock=False)
            outcome = self._outcome("cat lock", done)
            if outcome.ok:
                found.append(RepositoryLock(lock_id, parse_lock(done.stdout)))
                continue
            again = await self._checked("list locks", argv.list_locks(self.repository.url),
                                        takes_lock=False)
            if lock_id in parse_ids(again.stdout):
                raise ResticError(outcome)
        return found

    async def remove_stale_locks(self, is_holder_alive: Callable[[int], bool]
                                 ) -> StaleLockReport:
        """Run `restic unlock` only if it would remove exactly provably stale locks and
        signal no process but a restic; `is_holder_alive(pid)` speaks for this host."""
        found = await self.locks()
        holders = {lock.info.pid: self._holder(lock.info.pid, is_holder_alive)
                   for lock in found if lock.info.hostname == self.hostname}
        plan = plan_unlock(found, now=datetime.now(UTC), hostname=self.hostname,
                           holders=holders)
        if not plan.run:
            return StaleLockReport(plan, (), None)
        done = await self._run(argv.unlock(self.repository.url), JOB_TIMEOUT, takes_lock=False)
        outcome = self._outcome("unlock", done)
        after = await self._checked("list locks", argv.list_locks(self.repository.url),
                                    takes_lock=False)
        remaining = set(parse_ids(after.stdout))
        return StaleLockReport(plan, tuple(i for i in plan.removes if i not in remaining),
                               outcome)

    def _holder(self, pid: int, is_holder_alive: Callable[[int], bool]) -> HolderProcess:
        try:
            # restic ignores SIGHUP
            harmless = psutil.Process(pid).name() in (RESTIC, Path(self.binary).name)
        except psutil.ZombieProcess:
            harmless = True  # a zombie acts on no signal, and restic's probe reaches it
        except psutil.NoSuchProcess:
            return HolderProcess(exists=False, harmless_to_signal=False,
                                 alive_holder=pid in self.children)
        except psutil.AccessDenied:
            harmless = False  # not ours to judge, nor to have signalled
        return HolderProcess(exists=True, harmless_to_signal=harmless,
                             alive_holder=pid in self.children or is_holder_alive(pid))

    async def _query(self, action: str, args: list[str]) -> Outcome:
        """cat config --no-lock and init, which take no lock."""
        return self._outcome(action, await self._run(args, QUERY_TIMEOUT, takes_lock=False))

    async def _output(self, action: str, args: list[str]) -> str:
        return (await self._checked(action, args)).stdout

    async def _checked(self, action: str, args: list[str], *,
                       takes_lock: bool = True) -> Finished:
        done = await self._run(args, QUERY_TIMEOUT, takes_lock=takes_lock)
        outcome = self._outcome(action, done)
        if not outcome.ok:
            raise ResticError(outcome)
        return done

    async def _run(self, args: list[str], deadline: float | None,
                   on_line: Callable[[str], None] | None = None, *,
                   takes_lock: bool = True) -> Finished:
        try:
            done = await run([self.binary, *args], env=self._env(), deadline=deadline,
                             children=self.children, on_line=on_line)
        except FileNotFoundError:
            raise ResticUnavailable(f"{self.binary} is not installed") from None
        if takes_lock:
            await self._clear_lock_of_killed(args[0], done)
        return done

    async def _clear_lock_of_killed(self, action: str, done: Finished) -> None:
        """A restic killed by a signal (SIGKILL past the grace; SIGPIPE when a restore's
        consumer quits early) leaves its lock; its PID is reaped, so clear it now."""
        if done.exit_code >= 0:
            return
        try:
            report = await self.remove_stale_locks(holder_running)
        except ResticError as error:
            log.warning("lock of a killed restic not cleared", action=action,
                        signal=-done.exit_code, reason=str(error))
            return
        log.info("lock of a killed restic cleared", action=action, signal=-done.exit_code,
                 removed=list(report.removed), plan=report.plan.reason)

    def _outcome(self, action: str, done: Finished) -> Outcome:
        if done.timed_out:
            return stopped(action, OutcomeKind.TIMED_OUT, "was stopped at its deadline",
                           done.stderr_tail, self._secrets())
        return interpret(action, done.exit_code, done.stderr_tail, self._secrets())

    def _env(self) -> dict[str, str]:
        repository = self.repository
        return restic_environment(os.environ, password_file=repository.password_file,
                                  cache_dir=repository.cache_dir,
                                  credentials=repository.credentials)

    def _secrets(self) -> tuple[str, ...]:
        return self.repository.credentials.secrets()


def _item_errors(done: Finished) -> tuple[ItemError, ...]:
    return tuple(message for message in parse_messages(done.stderr_tail, strict=False)
                 if isinstance(message, ItemError))
