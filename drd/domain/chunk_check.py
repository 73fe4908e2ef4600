"""Checking a restored image against restic's own record of the backup, chunk by chunk.
Pure: no I/O, the bytes are handed in.

restic stores a file as consecutive chunks, each a data blob whose ID is the sha256 of
its plaintext, and records the file's size and its blob IDs in order (restic_objects
reads them). So a backup needs no hash of its own: a restored image is the backed-up
one when its size is the recorded size and the sha256 of each consecutive piece, cut at
the chunks' plaintext lengths, is that chunk's blob ID.

ChunkHasher is fed the image once, in reads of any size. Every byte passes through one
piece's sha256 (slices of the read buffer, never copied) and through the whole image's
sha256, which an operator can compare with their own copies of the image.
"""

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

DIGEST_BYTES = 32


@dataclass(frozen=True)
class ChunkLayout:
    """A file as restic recorded it: its size, and its chunks' sha256s (32 bytes each,
    concatenated: a few MiB even for a TiB image) with their plaintext lengths."""

    size: int
    digests: bytes
    lengths: tuple[int, ...]

    def __post_init__(self) -> None:
        if len(self.digests) != DIGEST_BYTES * len(self.lengths):
            raise ValueError(f"{len(self.lengths)} chunk lengths but "
                             f"{len(self.digests) / DIGEST_BYTES:g} digests")

    @classmethod
    def of(cls, size: int, chunks: Sequence[tuple[str, int]]) -> "ChunkLayout":
        """From (blob ID, plaintext length) pairs in file order."""
        return cls(size, b"".join(bytes.fromhex(blob) for blob, _ in chunks),
                   tuple(length for _, length in chunks))

    @property
    def count(self) -> int:
        return len(self.lengths)

    @property
    def total(self) -> int:
        """The sum of the chunks' lengths, which must be the file's size."""
        return sum(self.lengths)

    def blob_id(self, index: int) -> str:
        return self.digests[DIGEST_BYTES * index:DIGEST_BYTES * (index + 1)].hex()


@dataclass(frozen=True)
class ChunkMismatch:
    """The first piece of a read-back image that is not the chunk restic stored."""

    index: int  # 0-based
    offset: int  # of its first byte in the image
    length: int
    expected: str  # the blob ID: the sha256 restic recorded
    found: str  # the sha256 of that piece of the image


@dataclass(frozen=True)
class ReadBack:
    """What reading an image back found: its size, its sha256, and how its pieces
    compared with the chunks (no layout: nothing compared)."""

    size: int
    sha256: str
    chunks_matched: int = 0
    first_mismatch: ChunkMismatch | None = None
    mismatches: int = 0


class ChunkHasher:
    """Hashes an image fed to `update` in order: whole, and piece by piece against
    `layout`'s chunks. Bytes past the last chunk are only in the whole sha256."""

    def __init__(self, layout: ChunkLayout | None = None) -> None:
        self._layout = layout
        self._lengths = layout.lengths if layout is not None else ()
        self._whole = hashlib.sha256()
        self._piece = hashlib.sha256()
        self._index = 0  # the chunk being hashed
        self._filled = 0  # bytes of it hashed so far
        self._start = 0  # its offset in the image
        self._size = 0
        self._matched = 0
        self._mismatches = 0
        self._first: ChunkMismatch | None = None

    def update(self, data: bytes) -> None:
        self._whole.update(data)
        self._size += len(data)
        view = memoryview(data)
        while view and self._index < len(self._lengths):
            take = view[:self._lengths[self._index] - self._filled]
            self._piece.update(take)
            self._filled += len(take)
            view = view[len(take):]
            if self._filled == self._lengths[self._index]:
                self._end_piece()

    def result(self) -> ReadBack:
        """What was read; a chunk the image ended inside of is not counted either way."""
        return ReadBack(self._size, self._whole.hexdigest(), self._matched, self._first,
                        self._mismatches)

    def _end_piece(self) -> None:
        assert self._layout is not None  # pieces exist only with a layout
        index = self._index
        found = self._piece.digest()
        if found == self._layout.digests[DIGEST_BYTES * index:DIGEST_BYTES * (index + 1)]:
            self._matched += 1
        else:
            self._mismatches += 1
            if self._first is None:
                self._first = ChunkMismatch(index, self._start, self._lengths[index],
                                            self._layout.blob_id(index), found.hex())
        self._index += 1
        self._start += self._filled
        self._filled = 0
        self._piece = hashlib.sha256()


def layout_problem(image_bytes: int, layout: ChunkLayout) -> str | None:
    """Why restic's record of a file cannot be the image drd backed up, or None: its size
    against the image's recorded size, and its chunks against its size."""
    if layout.size != image_bytes:
        return (f"restic recorded the file as {layout.size} bytes, but the image was "
                f"{image_bytes} bytes at the backup's snapshot")
    if layout.total != layout.size:
        return (f"the file's {layout.count} chunks add up to {layout.total} bytes, not its "
                f"{layout.size}")
    return None


def readback_problem(layout: ChunkLayout, found: ReadBack) -> str | None:
    """Why a read-back image is not the one restic stored, or None: its size, then the
    first differing chunk (by index and byte offset) and how many differ."""
    if found.size != layout.size:
        return (f"the restored image is {found.size} bytes, but the backup holds "
                f"{layout.size}")
    mismatch = found.first_mismatch
    if mismatch is not None:
        last = mismatch.offset + mismatch.length - 1
        also = f"; {found.mismatches} of {layout.count} chunks differ" \
            if found.mismatches > 1 else ""
        return (f"chunk {mismatch.index} of {layout.count} (bytes {mismatch.offset} to "
                f"{last}) differs from the backup: its sha256 is {mismatch.found}, restic's "
                f"blob is {mismatch.expected}{also}")
    if found.chunks_matched != layout.count:
        return (f"only {found.chunks_matched} of the backup's {layout.count} chunks were "
                f"read back")
    return None
