"""restic's repository objects, as `restic cat` prints them, read into typed values. Pure;
written against real restic 0.18 output (tests/unit/data/restic_objects_0.18.0.json).

A restore test verifies a restored image against what restic itself recorded at backup
time, without drd hashing anything during the backup:
- `cat snapshot ID` names the snapshot's root tree;
- `cat blob TREE` is that tree's JSON: the node of a stdin file has its `size` and its
  `content`, the IDs of its data blobs in order. A data blob's ID is the sha256 of its
  plaintext, i.e. of one consecutive piece of the file;
- `cat index ID` (for each ID `list index` prints) gives every blob's `length` in its
  pack. A compressed blob (repository version 2, the default) also has
  `uncompressed_length`, its plaintext length; an uncompressed one (`--compression off`,
  or a version 1 repository) is its plaintext plus CRYPTO_OVERHEAD bytes (a 16-byte
  nonce and a 16-byte MAC), checked on real restic 0.18 in both modes.
"""

import json
import re
from dataclasses import dataclass
from typing import Any

from drd.backup.restic_messages import ResticOutputError

CRYPTO_OVERHEAD = 32  # restic's AES-256-CTR nonce (16) and Poly1305 MAC (16) per blob

_HEX_ID = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class SnapshotObject:
    """A snapshot as `restic cat snapshot` prints it (the ID is not in it)."""

    tree: str
    paths: tuple[str, ...]
    hostname: str


@dataclass(frozen=True)
class FileNode:
    """A regular file in a tree: its size and its data blobs, in order."""

    name: str
    size: int
    content: tuple[str, ...]


def parse_snapshot_object(text: str) -> SnapshotObject:
    """`restic cat snapshot ID`."""
    data = _document(text, "cat snapshot")
    try:
        return SnapshotObject(tree=_hex_id(data["tree"]),
                              paths=tuple(str(path) for path in data.get("paths") or ()),
                              hostname=str(data.get("hostname", "")))
    except (KeyError, TypeError, ValueError) as error:
        raise ResticOutputError(f"restic cat snapshot printed a snapshot drd cannot read: "
                                f"{error}") from None


def parse_file_node(text: str, name: str) -> FileNode:
    """The regular file `name` in a tree (`restic cat blob TREE`); ResticOutputError if the
    tree holds no such file."""
    data = _document(text, "cat blob")
    try:
        for node in data["nodes"] or ():
            if node.get("name") != name:
                continue
            if node.get("type") != "file":
                raise ValueError(f"{name!r} is a {node.get('type')}, not a file")
            content = tuple(_hex_id(blob) for blob in node.get("content") or ())
            return FileNode(name=name, size=int(node.get("size", 0)), content=content)
    except (KeyError, TypeError, ValueError, AttributeError) as error:
        raise ResticOutputError(f"restic cat blob printed a tree drd cannot read: "
                                f"{error}") from None
    raise ResticOutputError(f"the snapshot's tree holds no file {name!r}")


def parse_index_lengths(text: str) -> dict[str, int]:
    """The plaintext length of every data blob an index file (`restic cat index ID`)
    lists, by blob ID; tree blobs are left out."""
    data = _document(text, "cat index")
    lengths: dict[str, int] = {}
    try:
        for pack in data["packs"] or ():
            for blob in pack["blobs"] or ():
                if blob["type"] == "data":
                    lengths[_hex_id(blob["id"])] = plaintext_length(blob)
    except (KeyError, TypeError, ValueError) as error:
        raise ResticOutputError(f"restic cat index printed an index drd cannot read: "
                                f"{error}") from None
    return lengths


def plaintext_length(blob: dict[str, Any]) -> int:
    """The length of a blob's plaintext, from its index entry."""
    uncompressed = blob.get("uncompressed_length")
    if uncompressed:  # restic omits it, or writes 0, for a blob stored uncompressed
        return int(uncompressed)
    length = int(blob["length"])
    if length < CRYPTO_OVERHEAD:
        raise ValueError(f"blob {blob.get('id')} is {length} bytes, less than restic's "
                         f"{CRYPTO_OVERHEAD} bytes of nonce and MAC")
    return length - CRYPTO_OVERHEAD


def _hex_id(value: Any) -> str:
    if not isinstance(value, str) or not _HEX_ID.match(value):
        raise ValueError(f"{value!r} is not a restic ID (64 hex digits)")
    return value


def _document(text: str, command: str) -> dict[str, Any]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise ResticOutputError(f"restic {command} printed no JSON: {error}: "
                                f"{text.strip()[:200]!r}") from None
    if not isinstance(data, dict):
        raise ResticOutputError(f"restic {command} printed JSON of the wrong shape "
                                f"({type(data).__name__})")
    return data
