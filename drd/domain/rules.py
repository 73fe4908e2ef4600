"""What a rule that spans fields reports: where in the document, and what is wrong.

Shared by every config model (site config, tenant policy, and the platform rules that
check a policy against the site config), so the validator can put a line on each one.
"""

import os
import re
import stat as stat_bits
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

# A place in a document: mapping keys and sequence indexes, e.g. ("peers", 0, "url").
FieldPath = tuple[str | int, ...]


@dataclass(frozen=True)
class RuleViolation:
    """A broken cross-field rule: the path it is reported at, and a sentence for people."""

    path: FieldPath
    message: str


def duplicate_names(names: Sequence[str], section: FieldPath, what: str,
                    scope: str) -> Iterator[RuleViolation]:
    """A violation at every name of a list (`section`) that an earlier entry took."""
    first_index: dict[str, int] = {}
    where = ".".join(str(part) for part in section)
    for index, name in enumerate(names):
        first = first_index.setdefault(name, index)
        if first != index:
            yield RuleViolation((*section, index, "name"),
                                f"{what} {name!r} is already defined at {where}[{first}]; "
                                f"names must be unique {scope}")


# systemd's unit name characters, and the glob characters systemctl matches loaded units by.
_SYSTEMD_UNIT = re.compile(r"^[A-Za-z0-9:_.\\@*?\[\]-]+\.(service|target)$")


def is_systemd_unit(name: str) -> bool:
    """Whether `name` is a service or target unit name (or a glob of them)."""
    return _SYSTEMD_UNIT.match(name) is not None


# How a rule learns a file's mode: os.stat, or a fake in unit tests.
StatFile = Callable[[Path], os.stat_result]


def private_file_issues(path: Path, where: FieldPath, stat: StatFile, *, missing: str,
                        guards: str) -> tuple[list[RuleViolation], int | None]:
    """A secret's file must be a regular file only its owner may read or write (0600 or
    stricter). The issues, and the file's permission bits when it could be judged.

    `missing` ends the sentence for a file that does not exist; `guards` names what
    others could read or change through it.
    """
    try:
        status = stat(path)
    except FileNotFoundError:
        return [RuleViolation(where, f"{path} does not exist; {missing}")], None
    except OSError as error:
        return [RuleViolation(where, f"cannot read the status of {path}: "
                                     f"{error.strerror or error}")], None
    if not stat_bits.S_ISREG(status.st_mode):
        return [RuleViolation(where, f"{path} is not a regular file")], None
    mode = stat_bits.S_IMODE(status.st_mode)
    if mode & 0o077:
        return [RuleViolation(where, f"{path} is mode {mode:04o}, so users other than its "
                                     f"owner may read or change {guards}; make it 0600: "
                                     f"chmod 600 {path}")], mode
    return [], mode
