"""Write files atomically; those holding secrets 0600 from the first byte."""

import os
from pathlib import Path


def write_private(path: Path, text: str, keep_owner: bool = False) -> None:
    """Write `text` to `path` so that no reader ever sees a partial or readable file.

    With `keep_owner`, the replacement keeps the old file's owner and group: root may
    rewrite a file that the daemon's own user must go on reading.
    """
    write_atomically(path, text, 0o600, keep_owner)


def write_atomically(path: Path, text: str, mode: int, keep_owner: bool = False) -> None:
    """Write `text` to `path` through a temporary file, fsync, and rename over it."""
    temporary = path.with_name(f".{path.name}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
        if keep_owner and path.exists():
            owner = path.stat()
            os.fchown(handle.fileno(), owner.st_uid, owner.st_gid)
        handle.flush()
        os.fsync(handle.fileno())
    temporary.replace(path)
