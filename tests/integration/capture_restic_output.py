"""Capture what real restic prints, for the unit tests of drd.backup's parsers.

    .venv/bin/python -m tests.integration.capture_restic_output OUT.json

Runs the installed restic (0.18 here) against throw-away repositories in a temporary
directory, with the argv drd.backup.restic_argv builds and the environment restic_env
builds, and records each run's exit code, stdout and stderr. Paths under the
temporary directory are written as <tmp>. Needs no Ceph; holds a lock with `restic key
passwd --new-password-file FIFO`, which takes an exclusive lock and then waits to read
the FIFO.
"""

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from drd.backup import restic_argv as argv
from drd.backup.restic_env import restic_environment

MiB = 1 << 20


class Capture:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.password = root / "password"
        self.password.write_text("capture-password\n")
        self.password.chmod(0o600)
        self.runs: dict[str, dict[str, Any]] = {}

    def env(self, password: Path | None = None) -> dict[str, str]:
        return restic_environment(os.environ, password_file=password or self.password,
                                  cache_dir=self.root / "cache")

    def run(self, name: str, args: list[str], what: str, **kwargs: Any) -> dict[str, Any]:
        result = subprocess.run(["restic", *args], capture_output=True, text=True,
                                env=kwargs.pop("env", None) or self.env(), check=False,
                                timeout=120, **kwargs)
        return self.record(name, args, what, result.returncode, result.stdout,
                           stderr=result.stderr)

    def record(self, name: str, args: list[str], what: str, code: int, stdout: str, *,
               stderr: str) -> dict[str, Any]:
        tmp = str(self.root)
        run = {"what": what, "argv": ["restic", *(a.replace(tmp, "<tmp>") for a in args)],
               "exit_code": code, "stdout": stdout.replace(tmp, "<tmp>"),
               "stderr": stderr.replace(tmp, "<tmp>")}
        self.runs[name] = run
        return run


def capture(root: Path) -> dict[str, Any]:
    c = Capture(root)
    repo, damaged = str(root / "repo"), str(root / "damaged")
    data = root / "image.raw"
    data.write_bytes(os.urandom(48 * MiB))
    c.run("version", argv.version(), "restic version")
    c.run("cat_config_missing", argv.cat_config(repo), "probe before init: exit 10")
    c.run("init", argv.init(repo), "init --json")
    c.run("cat_config", argv.cat_config(repo), "probe after init")
    backup = argv.backup_from_command(repo, ["cat", str(data)], stdin_filename="vm1.raw",
                                      host="water", tags=["drd:tenant=water"],
                                      limit_upload_kib=24 * 1024)
    c.run("backup_first", backup, "48 MiB of random data at 24 MiB/s upload limit")
    c.run("backup_unchanged", backup, "the same data again")
    c.run("backup_empty", argv.backup_from_command(
        repo, ["true"], stdin_filename="empty.raw", host="water"),
        "a command that prints nothing: exit 3, and a snapshot is still saved")
    c.run("backup_command_fails", argv.backup_from_command(
        repo, ["sh", "-c", "head -c 1000 /dev/zero; exit 7"], stdin_filename="bad.raw",
        host="water"), "the command exits 7 after some output: exit 1, no snapshot")
    wrong = root / "wrong-password"
    wrong.write_text("not-the-password\n")
    c.run("snapshots_wrong_password", argv.snapshots(repo), "wrong password: exit 12",
          env=c.env(wrong))
    for day in ("2026-01-01", "2026-01-02", "2026-01-03", "2026-01-10"):
        moment = datetime.fromisoformat(f"{day}T03:00:00+00:00")
        c.run(f"backup_dated_{day}", argv.backup_from_command(
            repo, ["echo", day], stdin_filename="dated.raw", host="water", time=moment),
            f"--time {day} 03:00:00 UTC")
    c.run("snapshots", argv.snapshots(repo, argv.SnapshotFilter(hosts=("water",))),
          "snapshots --json --host water")
    c.run("forget_dry_run", argv.forget(
        repo, argv.KeepRules(last=1, daily=2), argv.SnapshotFilter(paths=("/dated.raw",)),
        dry_run=True), "keep-last 1, keep-daily 2 over the four dated snapshots")
    c.run("stats_raw_data", argv.stats_raw_data(repo), "stats --mode raw-data --json")
    c.run("check", argv.check(repo, read_data_subset="100%"), "a healthy repository")
    hold_lock(c, repo)
    c.run("prune", argv.prune(repo), "prune prints text even with --json")
    subprocess.run(["cp", "-a", repo, damaged], check=True)
    packs = sorted(Path(damaged, "data").rglob("*"), key=lambda p: p.stat().st_size)
    with packs[-1].open("r+b") as pack:
        pack.seek(4096)
        pack.write(b"\0" * 64)
    c.run("check_damaged_structure", argv.check(damaged),
          "64 bytes zeroed inside the largest pack: check without reading data")
    c.run("check_damaged", argv.check(damaged, read_data_subset="100%"),
          "the same, reading all data")
    return {"captured_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "restic": c.runs["version"]["stdout"].strip(),
            "how": "python -m tests.integration.capture_restic_output OUT", "runs": c.runs}


def hold_lock(c: Capture, repo: str) -> None:
    """An exclusive lock held by `key passwd` waiting on a FIFO, then a stale one."""
    fifo = c.root / "new-password"
    os.mkfifo(fifo)
    holder = subprocess.Popen(["restic", "key", "passwd", "--repo", repo,
                               "--new-password-file", str(fifo)], env=c.env(),
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        ids: list[str] = []
        for _ in range(100):
            ids = c.run("list_locks", argv.list_locks(repo), "one exclusive lock held")[
                "stdout"].split()
            if ids:
                break
            time.sleep(0.1)
        c.run("cat_lock", argv.cat_lock(repo, ids[0]), "the held lock")
        c.run("backup_locked", argv.backup_from_command(
            repo, ["echo", "x"], stdin_filename="x.raw", host="water",
            retry_lock=timedelta(seconds=2)), "backup while locked, --retry-lock 2s: exit 11")
        interrupted = subprocess.Popen(
            ["restic", *argv.check(repo, retry_lock=timedelta(minutes=1))], env=c.env(),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(2)
        interrupted.send_signal(signal.SIGINT)
        out, err = interrupted.communicate(timeout=30)
        c.record("check_interrupted", argv.check(repo, retry_lock=timedelta(minutes=1)),
                 "SIGINT while waiting for the lock: exit 130", interrupted.returncode,
                 out, stderr=err)
        holder.kill()  # SIGKILL: the lock stays behind, its PID dead
        holder.wait()
        c.run("backup_stale_lock", argv.backup_from_command(
            repo, ["echo", "x"], stdin_filename="x.raw", host="water",
            retry_lock=timedelta(seconds=1)), "a dead holder's lock still blocks: exit 11")
        c.run("unlock", argv.unlock(repo), "unlock removes the dead holder's lock")
        c.run("list_locks_after_unlock", argv.list_locks(repo), "no locks left")
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()


def main() -> None:
    out = Path(sys.argv[1])
    with tempfile.TemporaryDirectory(prefix="restic-capture-") as tmp:
        document = capture(Path(tmp))
    out.write_text(json.dumps(document, indent=1) + "\n")
    print(f"{len(document['runs'])} runs of {document['restic']} written to {out}")


if __name__ == "__main__":
    main()
