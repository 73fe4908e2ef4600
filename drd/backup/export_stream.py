"""The command restic reads an RBD image from: `rbd export` relayed to stdout, with the
stream's sha256 noted on the way.

    python -m drd.backup.export_stream --digest-file PATH -- rbd ... export SPEC@SNAP -

restic runs this with `--stdin-from-command` and stores what it prints. The digest is
what a restore test later compares a restored image with: the sha256 of exactly the
bytes restic was given. It is written (atomically) only when the export finished with
status 0 and every byte was relayed, so a digest file never describes a partial image.

The relay is not free: bench/backup.py measures it at 1.4 to 2.0 CPU seconds per GiB,
the sha256 (about 0.85 s with SHA-NI) and one more pass of every byte through a pipe.
restic spends nearly all of the 14 to 16 CPU s a bare `rbd export | restic backup`
takes per GiB and fills 2 CPUs by itself, so on such a host the relay is why drd's
backup runs at about 0.9 of that pipeline's throughput.
"""

import argparse
import hashlib
import io
import os
import signal
import subprocess
import sys
from pathlib import Path
from types import FrameType
from typing import cast

CHUNK = 4 << 20  # the size of an RBD object, and of rbd export's reads


def relay(command: list[str], digest_file: Path) -> int:
    """Run `command`, copy its stdout to ours, and write its sha256 to `digest_file`."""
    child = subprocess.Popen(command, stdout=subprocess.PIPE)

    def forward(signum: int, _frame: FrameType | None) -> None:
        # restic stops its command with SIGINT or SIGTERM; the export must stop too.
        child.send_signal(signum)

    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, forward)
    exported = cast("io.BufferedReader", child.stdout)  # stdout=PIPE: a buffered reader
    digest = hashlib.sha256()
    buffer = bytearray(CHUNK)
    view = memoryview(buffer)
    try:
        while count := exported.readinto(buffer):
            digest.update(view[:count])
            _write_all(view[:count])
    except BrokenPipeError:
        child.terminate()  # restic went away: nobody reads the rest
        child.wait()
        return 1
    status = child.wait()
    if status != 0:
        return status if status > 0 else 128 - status
    partial = digest_file.with_name(digest_file.name + ".partial")
    partial.write_text(digest.hexdigest() + "\n")
    partial.replace(digest_file)
    return 0


def _write_all(data: memoryview) -> None:
    while data:
        written = os.write(sys.stdout.fileno(), data)
        data = data[written:]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m drd.backup.export_stream")
    parser.add_argument("--digest-file", type=Path, required=True)
    parser.add_argument("command", nargs=argparse.REMAINDER)
    options = parser.parse_args(argv)
    command = options.command[1:] if options.command[:1] == ["--"] else options.command
    if not command:
        parser.error("give the export command after --")
    return relay(command, options.digest_file)


if __name__ == "__main__":
    sys.exit(main())
