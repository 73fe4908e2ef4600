"""Real restic repositories in a directory, and real restic processes that hold their locks,
for tests that need no Ceph."""

import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from drd.backup import restic_argv as argv
from drd.backup.restic import Restic, ResticRepository
from drd.backup.restic_env import restic_environment
from drd.backup.restic_messages import parse_ids


def make_repository(root: Path, password: str) -> ResticRepository:
    """A repository at root/repo (not created yet) with a 0600 password file."""
    root.mkdir(parents=True, exist_ok=True)
    password_file = root / "password"
    password_file.write_text(password + "\n")
    password_file.chmod(0o600)
    return ResticRepository(str(root / "repo"), password_file, root / "cache")


def environment(repository: ResticRepository) -> dict[str, str]:
    return restic_environment(os.environ, password_file=repository.password_file,
                              cache_dir=repository.cache_dir)


def raw_restic(restic: Restic, *args: str) -> subprocess.CompletedProcess[str]:
    """restic run by hand, beside drd: to compare with what drd reports."""
    return subprocess.run(["restic", *args], env=environment(restic.repository),
                          capture_output=True, text=True, timeout=120, check=False)


def raw_json(restic: Restic, *args: str) -> Any:
    done = raw_restic(restic, *args, "--repo", restic.repository.url, "--json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def lock_ids(restic: Restic) -> list[str]:
    return parse_ids(raw_restic(restic, *argv.list_locks(restic.repository.url)).stdout)


def wait_for_locks(restic: Restic, count: int) -> list[str]:
    for _ in range(400):
        ids = lock_ids(restic)
        if len(ids) >= count:
            return ids
        time.sleep(0.05)
    raise AssertionError(f"never saw {count} locks")


def start_exclusive_holder(restic: Restic, fifo: Path) -> subprocess.Popen[bytes]:
    """A real restic holding an exclusive lock: `key passwd` takes it, then waits to read
    the new password from a FIFO nobody writes to."""
    os.mkfifo(fifo)
    repository = restic.repository
    holder = subprocess.Popen(
        ["restic", "key", "passwd", "--repo", repository.url, "--new-password-file",
         str(fifo)], env=environment(repository), stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL, start_new_session=True)
    wait_for_locks(restic, 1)
    return holder


@contextmanager
def exclusive_lock(restic: Restic, fifo: Path) -> Iterator[subprocess.Popen[bytes]]:
    """A live exclusive holder for the block, then released cleanly."""
    holder = start_exclusive_holder(restic, fifo)
    try:
        yield holder
    finally:
        with suppress(OSError):  # no reader any more: the holder is gone
            os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))  # EOF: an empty password
        try:
            holder.wait(timeout=20)
        finally:
            kill_group(holder)


def kill_group(process: subprocess.Popen[bytes]) -> None:
    """SIGKILL the process's group (restic then leaves its lock behind) and reap it."""
    with suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def disk_bytes(directory: Path) -> int:
    """What the files under `directory` take, as the repository's storage sees it."""
    return sum(path.stat().st_size for path in directory.rglob("*") if path.is_file())


def largest_pack(repository: Path) -> Path:
    packs = [p for p in (repository / "data").rglob("*") if p.is_file()]
    return max(packs, key=lambda p: p.stat().st_size)


def damage_largest_pack(repository: Path) -> Path:
    """Zero 64 bytes in the middle of the repository's largest pack file."""
    packs = [p for p in (repository / "data").rglob("*") if p.is_file()]
    largest = max(packs, key=lambda p: p.stat().st_size)
    largest.chmod(0o600)
    with largest.open("r+b") as pack:
        pack.seek(largest.stat().st_size // 2)
        pack.write(b"\0" * 64)
    return largest
