"""restic's repository objects, read from what real restic 0.18.0 printed for a file of
reproducible data, in a repository with default compression and one without.

tests/unit/data/restic_objects_0.18.0.json was written by
`python -m tests.integration.capture_restic_objects`; the file's bytes are remade here
from the recipe in it, so the chunks restic recorded are checked against real data.
"""

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from drd.backup.restic_messages import ResticOutputError
from drd.backup.restic_objects import (
    CRYPTO_OVERHEAD,
    parse_file_node,
    parse_index_lengths,
    parse_snapshot_object,
    plaintext_length,
)
from drd.backup.restic_outcome import OutcomeKind, interpret
from drd.domain.chunk_check import ChunkHasher, ChunkLayout, readback_problem

CAPTURED: dict[str, Any] = json.loads(
    (Path(__file__).parent / "data" / "restic_objects_0.18.0.json").read_text())
RUNS: dict[str, Any] = CAPTURED["runs"]
DATA: dict[str, Any] = CAPTURED["data"]
FILE = DATA["file_name"]


def recipe_bytes() -> bytes:
    """The captured file, as the capture's recipe says it was made."""
    size, zeros_at, zeros = int(DATA["size"]), int(DATA["zeros_at"]), int(DATA["zeros"])
    blocks = b"".join(hashlib.sha256(n.to_bytes(8, "big")).digest()
                      for n in range(-(-size // 32)))
    content = blocks[:zeros_at] + bytes(zeros) + blocks[zeros_at + zeros:size]
    assert hashlib.sha256(content).hexdigest() == DATA["sha256"]
    return content


def changed_bytes(content: bytes) -> bytes:
    at, count = int(DATA["changed_at"]), int(DATA["changed"])
    changed = content[:at] + b"\xff" * count + content[at + count:]
    assert hashlib.sha256(changed).hexdigest() == DATA["changed_sha256"]
    return changed


def index_lengths(repository: str) -> dict[str, int]:
    lengths: dict[str, int] = {}
    for number in range(len(CAPTURED["repositories"][repository]["indexes"])):
        lengths.update(parse_index_lengths(RUNS[f"{repository}_cat_index_{number}"]["stdout"]))
    return lengths


def layout(repository: str, snapshot: int) -> ChunkLayout:
    tree = parse_snapshot_object(RUNS[f"{repository}_cat_snapshot_{snapshot}"]["stdout"]).tree
    assert tree == CAPTURED["repositories"][repository]["snapshots"][snapshot]["tree"]
    node = parse_file_node(RUNS[f"{repository}_cat_tree_{snapshot}"]["stdout"], FILE)
    lengths = index_lengths(repository)
    return ChunkLayout.of(node.size, [(blob, lengths[blob]) for blob in node.content])


@pytest.mark.parametrize(("repository", "snapshot"), [("auto", 0), ("auto", 1), ("off", 0)])
def test_the_chunks_restic_recorded_are_the_pieces_of_the_file(repository: str,
                                                               snapshot: int) -> None:
    content = recipe_bytes()
    if snapshot == 1:
        content = changed_bytes(content)
    chunks = layout(repository, snapshot)
    assert chunks.size == chunks.total == len(content) == DATA["size"]
    assert chunks.count > 5  # restic's chunks average 1 MiB
    hasher = ChunkHasher(chunks)
    hasher.update(content)
    found = hasher.result()
    assert readback_problem(chunks, found) is None
    assert (found.size, found.chunks_matched, found.mismatches) == (len(content),
                                                                    chunks.count, 0)
    assert found.sha256 == hashlib.sha256(content).hexdigest()


def test_compressed_blobs_carry_their_plaintext_length_and_the_others_add_32_bytes() -> None:
    def blobs(repository: str) -> list[dict[str, Any]]:
        index = json.loads(RUNS[f"{repository}_cat_index_0"]["stdout"])
        return [blob for pack in index["packs"] for blob in pack["blobs"]
                if blob["type"] == "data"]

    compressed = blobs("auto")
    assert all("uncompressed_length" in blob for blob in compressed)
    # The run of zeros compresses to a few hundred bytes; random data grows a little.
    assert min(b["length"] / b["uncompressed_length"] for b in compressed) < 0.01
    assert any(b["length"] > b["uncompressed_length"] + CRYPTO_OVERHEAD for b in compressed)
    assert all(plaintext_length(b) == b["uncompressed_length"] for b in compressed)
    stored = blobs("off")
    assert stored and not any("uncompressed_length" in blob for blob in stored)
    assert all(plaintext_length(b) == b["length"] - CRYPTO_OVERHEAD for b in stored)


def test_a_changed_file_shares_chunks_listed_in_the_first_backups_index() -> None:
    first, second = (set(parse_file_node(RUNS[f"auto_cat_tree_{n}"]["stdout"], FILE).content)
                     for n in (0, 1))
    own = parse_index_lengths(RUNS["auto_cat_index_1"]["stdout"]).keys()
    earlier = parse_index_lengths(RUNS["auto_cat_index_0"]["stdout"]).keys()
    assert second & first and second - first  # 4 KiB changed: one or two new chunks
    assert second - first <= own and second & first <= earlier
    tree = CAPTURED["repositories"]["auto"]["snapshots"][0]["tree"]
    assert tree in RUNS["auto_cat_index_0"]["stdout"] and tree not in earlier  # data only


def test_the_snapshot_object_names_its_tree_and_path() -> None:
    snapshot = parse_snapshot_object(RUNS["auto_cat_snapshot_0"]["stdout"])
    assert snapshot.paths == (f"/{FILE}",) and snapshot.hostname == "water"


def test_a_tree_without_that_file_or_with_it_as_a_directory_is_an_error() -> None:
    tree = RUNS["auto_cat_tree_0"]["stdout"]
    with pytest.raises(ResticOutputError, match=r"holds no file 'other\.raw'"):
        parse_file_node(tree, "other.raw")
    as_dir = tree.replace('"type":"file"', '"type":"dir"')
    with pytest.raises(ResticOutputError, match="is a dir, not a file"):
        parse_file_node(as_dir, FILE)


@pytest.mark.parametrize(("parse", "text", "message"), [
    (parse_snapshot_object, "[]", "cat snapshot printed JSON of the wrong shape"),
    (parse_snapshot_object, '{"tree": "abc"}', "not a restic ID"),
    (parse_file_node, "not json", "cat blob printed no JSON"),
    (parse_index_lengths, '{"packs": [{"blobs": [{"id": "' + "a" * 64
     + '", "type": "data", "length": 12}]}]}', "less than restic's 32 bytes"),
    (parse_index_lengths, '{"packs": [{"id": "x"}]}', "cat index printed an index"),
])
def test_output_drd_cannot_read_is_an_error(parse: Any, text: str, message: str) -> None:
    with pytest.raises(ResticOutputError, match=message):
        parse(text, FILE) if parse is parse_file_node else parse(text)


@pytest.mark.parametrize("run", ["cat_snapshot_missing", "cat_tree_missing",
                                 "cat_index_missing"])
def test_an_unknown_id_is_a_failure_with_restics_words(run: str) -> None:
    outcome = interpret(run, RUNS[run]["exit_code"], RUNS[run]["stderr"].splitlines())
    assert outcome.kind is OutcomeKind.FAILED
    assert "not found" in outcome.reason or "no such file" in outcome.reason
