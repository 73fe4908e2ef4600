"""Read and write lab.json atomically, and serialise lab commands on one lab dir."""

import fcntl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pydantic import ValidationError

from drd.lab.description import LabDescription
from drd.lab.errors import LabError

DESCRIPTION_FILE = "lab.json"

# Site boots run in threads and each records its processes; one writer at a time.
_write_lock = threading.Lock()


def description_path(lab_dir: Path) -> Path:
    return lab_dir / DESCRIPTION_FILE


def load_description(lab_dir: Path) -> LabDescription | None:
    """The lab at `lab_dir`, or None when there is none."""
    path = description_path(lab_dir)
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    try:
        return LabDescription.model_validate_json(text)
    except ValidationError as error:
        raise LabError(
            f"{path} is not a lab description this drd understands ({error.error_count()} "
            f"errors, first: {error.errors()[0]['msg']})",
            hint=f"stop its processes by hand, then remove {lab_dir}",
        ) from error


def save_description(description: LabDescription) -> None:
    """Write lab.json so that a reader never sees half a file."""
    path = description_path(description.dir)
    with _write_lock:
        temporary = path.with_suffix(".json.tmp")
        temporary.write_text(description.model_dump_json(indent=2) + "\n")
        temporary.replace(path)


@contextmanager
def lab_lock(lab_dir: Path) -> Iterator[None]:
    """Hold an exclusive lock for one lab command; a second command fails fast."""
    lock_path = lab_dir.with_name(lab_dir.name + ".lock")
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with lock_path.open("a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as error:
            raise LabError(
                f"another drd lab command is working on {lab_dir}",
                hint="wait for it to finish",
            ) from error
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
