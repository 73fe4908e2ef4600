"""A read-back image against restic's chunks: any read size hashes the same pieces, and a
wrong size or a tampered chunk is named by index and byte offset."""

import hashlib
import os
import random

import pytest

from drd.domain.chunk_check import (
    ChunkHasher,
    ChunkLayout,
    ChunkMismatch,
    ReadBack,
    layout_problem,
    readback_problem,
)

LENGTHS = (700_001, 1_048_576, 3, 2_500_000, 524_288)


def cut(data: bytes, lengths: tuple[int, ...]) -> ChunkLayout:
    """The layout restic would record for `data` cut at `lengths`."""
    chunks, offset = [], 0
    for length in lengths:
        chunks.append((hashlib.sha256(data[offset:offset + length]).hexdigest(), length))
        offset += length
    return ChunkLayout.of(len(data), chunks)


def read_back(data: bytes, chunks: ChunkLayout | None, reads: list[int]) -> ReadBack:
    hasher, offset = ChunkHasher(chunks), 0
    for size in reads:
        hasher.update(data[offset:offset + size])
        offset += size
    hasher.update(data[offset:])
    return hasher.result()


DATA = os.urandom(sum(LENGTHS))
CHUNKS = cut(DATA, LENGTHS)


@pytest.mark.parametrize("reads", [
    [], [1] * 10 + [4 << 20], [700_000, 2, 1_048_575, 1, 1, 1],
    [random.Random(7).randint(1, 300_000) for _ in range(40)]])  # noqa: S311
def test_every_read_size_hashes_the_same_pieces(reads: list[int]) -> None:
    found = read_back(DATA, CHUNKS, reads)
    assert found == ReadBack(len(DATA), hashlib.sha256(DATA).hexdigest(), len(LENGTHS))
    assert readback_problem(CHUNKS, found) is None
    assert layout_problem(len(DATA), CHUNKS) is None


def test_without_a_layout_only_the_whole_is_hashed() -> None:
    assert read_back(DATA, None, [1 << 20]) == ReadBack(len(DATA),
                                                        hashlib.sha256(DATA).hexdigest())


def test_a_tampered_chunk_is_named_by_index_and_offset() -> None:
    at = LENGTHS[0] + LENGTHS[1] + 1  # the 3-byte chunk, index 2
    tampered = DATA[:at] + bytes([DATA[at] ^ 1]) + DATA[at + 1:]
    found = read_back(tampered, CHUNKS, [4 << 20])
    start = LENGTHS[0] + LENGTHS[1]
    assert found.first_mismatch == ChunkMismatch(
        2, start, 3, CHUNKS.blob_id(2),
        hashlib.sha256(tampered[start:start + 3]).hexdigest())
    assert (found.chunks_matched, found.mismatches) == (4, 1)
    assert readback_problem(CHUNKS, found) == (
        f"chunk 2 of 5 (bytes {start} to {start + 2}) differs from the backup: its sha256 "
        f"is {found.first_mismatch.found}, restic's blob is {CHUNKS.blob_id(2)}")


def test_every_differing_chunk_is_counted_and_the_first_named() -> None:
    tampered = bytearray(DATA)
    tampered[10] ^= 0xFF
    tampered[-1] ^= 0xFF
    found = read_back(bytes(tampered), CHUNKS, [1 << 20] * 5)
    problem = readback_problem(CHUNKS, found)
    assert problem is not None
    assert problem.startswith("chunk 0 of 5 (bytes 0 to 700000) differs from the backup")
    assert problem.endswith("; 2 of 5 chunks differ")


@pytest.mark.parametrize(("size", "message"), [
    (len(DATA) - 1, f"the restored image is {len(DATA) - 1} bytes, but the backup holds "
                    f"{len(DATA)}"),
    (len(DATA) + 4096, f"the restored image is {len(DATA) + 4096} bytes, but the backup "
                       f"holds {len(DATA)}"),
])
def test_a_restored_image_of_another_size_fails_before_its_chunks(size: int,
                                                                  message: str) -> None:
    data = (DATA + bytes(4096))[:size]
    found = read_back(data, CHUNKS, [1 << 20] * 5)
    assert readback_problem(CHUNKS, found) == message
    if size < len(DATA):  # the last chunk was cut short: neither matched nor counted
        assert (found.chunks_matched, found.mismatches) == (4, 0)


def test_a_recorded_size_restic_does_not_agree_with_fails_before_restoring() -> None:
    assert layout_problem(len(DATA) + 1, CHUNKS) == (
        f"restic recorded the file as {len(DATA)} bytes, but the image was "
        f"{len(DATA) + 1} bytes at the backup's snapshot")
    short = ChunkLayout(len(DATA), CHUNKS.digests[:-32], CHUNKS.lengths[:-1])
    assert layout_problem(len(DATA), short) == (
        f"the file's 4 chunks add up to {len(DATA) - LENGTHS[-1]} bytes, not its {len(DATA)}")


def test_an_empty_file_has_no_chunks_and_a_layout_holds_one_digest_per_length() -> None:
    empty = ChunkLayout.of(0, [])
    found = read_back(b"", empty, [])
    assert readback_problem(empty, found) is None and found.size == 0
    with pytest.raises(ValueError, match="2 chunk lengths but 1 digests"):
        ChunkLayout(5, bytes(32), (2, 3))
