"""Capture the repository objects real restic prints, for the unit tests of
drd.backup.restic_objects and drd.domain.chunk_check.

    .venv/bin/python -m tests.integration.capture_restic_objects OUT.json

Backs up a file of reproducible data (its recipe and sha256 are in the capture, so a
test can make the same bytes) with drd's argv into two throw-away repositories, one
with restic's default compression and one with `--compression off`, then into the
first a copy with 4 KiB changed, and records what a restore test reads: `cat snapshot`,
`cat blob` of the root tree, `list index` and every `cat index`, plus the errors for an
ID that is not there. Paths under the
temporary directory are written as <tmp>. Needs no Ceph.
"""

import hashlib
import json
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from drd.backup import restic_argv as argv
from tests.integration.capture_restic_output import Capture

MiB = 1 << 20
# Random-looking pieces around a run of zeros: chunks restic compresses well and chunks
# it cannot, in one file whose size is no multiple of anything.
SIZE, ZEROS_AT, ZEROS, CHANGED_AT, CHANGED = 10 * MiB + 1234, 5 * MiB, 2 * MiB, 8 * MiB, 4096
RECIPE = {"what": "sha256(counter as 8 bytes big-endian) blocks from counter 0, except "
                  "zeros in [zeros_at, zeros_at + zeros)",
          "size": SIZE, "zeros_at": ZEROS_AT, "zeros": ZEROS,
          "changed.raw": "the same with 0xff bytes in [changed_at, changed_at + changed)",
          "changed_at": CHANGED_AT, "changed": CHANGED}
FILE_NAME = "rbd+water+db-1.raw"
MISSING = "0" * 64


def recipe_bytes(size: int, zeros_at: int, zeros: int) -> bytes:
    blocks = b"".join(hashlib.sha256(n.to_bytes(8, "big")).digest()
                      for n in range(-(-size // 32)))
    return blocks[:zeros_at] + bytes(zeros) + blocks[zeros_at + zeros:size]


def capture_repository(c: Capture, name: str, files: list[Path], compression: str | None
                       ) -> dict[str, Any]:
    """Back each file up in turn as FILE_NAME; each snapshot's objects, then the index."""
    repo = str(c.root / name)
    c.run(f"{name}_init", argv.init(repo), "init --json")
    snapshots = []
    for number, data in enumerate(files):
        backup = argv.backup_from_command(repo, ["cat", str(data)], stdin_filename=FILE_NAME,
                                          host="water", tags=["drd:tenant=water"])
        if compression is not None:
            backup[1:1] = ["--compression", compression]
        summary = json.loads(c.run(f"{name}_backup_{number}", backup,
                                   f"{data.name}, compression {compression or 'default'}"
                                   )["stdout"].splitlines()[-1])
        snapshot_id = summary["snapshot_id"]
        snapshot = c.run(f"{name}_cat_snapshot_{number}",
                         argv.cat_snapshot(repo, snapshot_id), "cat snapshot ID")
        tree = json.loads(snapshot["stdout"])["tree"]
        c.run(f"{name}_cat_tree_{number}", argv.cat_tree(repo, tree),
              "cat blob of the root tree")
        snapshots.append({"file": data.name, "snapshot_id": snapshot_id, "tree": tree})
    listed = c.run(f"{name}_list_index", argv.list_index(repo), "list index")
    indexes = listed["stdout"].split()
    for number, index_id in enumerate(indexes):
        c.run(f"{name}_cat_index_{number}", argv.cat_index(repo, index_id),
              f"cat index {number + 1} of {len(indexes)}")
    return {"snapshots": snapshots, "indexes": indexes}


def capture(root: Path) -> dict[str, Any]:
    c = Capture(root)
    data, changed = root / "image.raw", root / "changed.raw"
    content = recipe_bytes(SIZE, ZEROS_AT, ZEROS)
    data.write_bytes(content)
    changed.write_bytes(content[:CHANGED_AT] + b"\xff" * CHANGED
                        + content[CHANGED_AT + CHANGED:])
    c.run("version", argv.version(), "restic version")
    # The second backup reuses most of the first's blobs: its chunks are listed in two
    # index files, the first's and its own.
    repositories = {"auto": capture_repository(c, "auto", [data, changed], None),
                    "off": capture_repository(c, "off", [data], "off")}
    repo = str(root / "auto")
    c.run("cat_snapshot_missing", argv.cat_snapshot(repo, MISSING), "an unknown snapshot")
    c.run("cat_tree_missing", argv.cat_tree(repo, MISSING), "an unknown tree blob")
    c.run("cat_index_missing", argv.cat_index(repo, MISSING), "an unknown index")
    return {"captured_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "restic": c.runs["version"]["stdout"].strip(),
            "how": "python -m tests.integration.capture_restic_objects OUT",
            "data": {**RECIPE, "file_name": FILE_NAME,
                     "sha256": hashlib.sha256(content).hexdigest(),
                     "changed_sha256": hashlib.sha256(changed.read_bytes()).hexdigest()},
            "repositories": repositories, "runs": c.runs}


def main() -> None:
    out = Path(sys.argv[1])
    with tempfile.TemporaryDirectory(prefix="restic-capture-") as tmp:
        document = capture(Path(tmp))
    out.write_text(json.dumps(document, indent=1) + "\n")
    print(f"{len(document['runs'])} runs of {document['restic']} written to {out}")


if __name__ == "__main__":
    main()
