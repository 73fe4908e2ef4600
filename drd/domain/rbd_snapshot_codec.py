"""RBD snapshot records as cls_rbd returns them, decoded, and turned into the mirror
snapshots RPO is measured from. Pure.

Two cls_rbd methods on an image's header object `rbd_header.<image id>` give what
librbd reads when it opens an image, without opening it:

- `get_snapcontext` (no input): u64 snap_seq, then a vector (u32 count, u64 each) of
  every snapshot id, newest first.
- `snapshot_get` (input: u64 snap id): one `cls::rbd::SnapshotInfo`.

Encodings as of Ceph 16.2 (Pacific), checked against replies captured from a 16.2.15
OSD (tests/unit/data/rbd_snapshots_16.2.15.json). A versioned struct starts with
ENCODE_START: u8 version, u8 oldest compatible version, u32 length of what follows.

    SnapshotInfo            v1: u64 id, SnapshotNamespace, string name, u64 image_size,
                                utime_t timestamp (u32 sec, u32 nsec), u32 child_count
    SnapshotNamespace       v1 (later Ceph writes v2, group fields at the end): u32 type,
                                then for type 3 (mirror) MirrorSnapshotNamespace:
    MirrorSnapshotNamespace     u8 state, bool complete, set<string> mirror_peer_uuids,
                                string primary_mirror_uuid, u64 primary_snap_id,
                                u64 last_copied_object_number, map<u64,u64> snap_seqs

Strings are u32 length and bytes. Fields a newer version appends are skipped by the
struct's length, as Ceph's own DECODE_FINISH does.
"""

import struct
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from drd.domain.rpo import MirrorSnapshot

NAMESPACE_USER = 0
NAMESPACE_GROUP = 1
NAMESPACE_TRASH = 2
NAMESPACE_MIRROR = 3

MIRROR_PRIMARY = 0
MIRROR_PRIMARY_DEMOTED = 1
MIRROR_NON_PRIMARY = 2
MIRROR_NON_PRIMARY_DEMOTED = 3

_PRIMARY_STATES = (MIRROR_PRIMARY, MIRROR_PRIMARY_DEMOTED)
_DEMOTED_STATES = (MIRROR_PRIMARY_DEMOTED, MIRROR_NON_PRIMARY_DEMOTED)
_KNOWN_VERSION = 1  # of SnapshotInfo and SnapshotNamespace, as Pacific writes them
_NANOSECONDS = 1_000_000_000


class DecodeError(ValueError):
    """The bytes are not what cls_rbd encodes."""


@dataclass(frozen=True)
class SnapContext:
    seq: int  # the highest snapshot id the image ever had
    snap_ids: tuple[int, ...]  # every existing snapshot, newest first


@dataclass(frozen=True)
class MirrorNamespace:
    state: int  # MIRROR_PRIMARY ... MIRROR_NON_PRIMARY_DEMOTED
    complete: bool
    mirror_peer_uuids: frozenset[str]
    primary_mirror_uuid: str
    primary_snap_id: int  # CEPH_NOSNAP on a primary snapshot
    last_copied_object_number: int
    snap_seqs: tuple[tuple[int, int], ...]  # primary snap id -> this image's snap id


@dataclass(frozen=True)
class SnapshotInfo:
    snap_id: int
    namespace_type: int  # NAMESPACE_USER ... NAMESPACE_MIRROR, or one Ceph added later
    mirror: MirrorNamespace | None  # for a mirror snapshot only
    name: str
    image_size: int
    timestamp: datetime  # UTC, to the microsecond (Ceph keeps nanoseconds)
    child_count: int


class Reader:
    """Ceph's little-endian encoding, read front to back; running short is a DecodeError."""

    def __init__(self, data: bytes, what: str) -> None:
        self.data = data
        self.what = what
        self.at = 0
        self.version = 0  # of the struct this reads, for one `struct` gave

    def take(self, fmt: str) -> tuple[int, ...]:
        size = struct.calcsize(fmt)
        if self.at + size > len(self.data):
            raise DecodeError(f"{self.what} ends early: {size} bytes wanted at byte "
                              f"{self.at} of {len(self.data)}")
        values = struct.unpack_from(fmt, self.data, self.at)
        self.at += size
        return values

    def u32(self) -> int:
        return self.take("<I")[0]

    def u64(self) -> int:
        return self.take("<Q")[0]

    def raw(self, length: int) -> bytes:
        if self.at + length > len(self.data):
            raise DecodeError(f"{self.what} ends early: {length} bytes wanted at byte "
                              f"{self.at} of {len(self.data)}")
        value = self.data[self.at:self.at + length]
        self.at += length
        return value

    def string(self) -> str:
        # Names are bytes to Ceph; none of drd's decisions reads them.
        return self.raw(self.u32()).decode("utf-8", errors="replace")

    def struct(self, what: str) -> "Reader":
        """An ENCODE_START struct: a reader over its body, which this one steps past."""
        version, compat, length = self.take("<BBI")
        if compat > _KNOWN_VERSION:
            raise DecodeError(f"{what} v{version} needs a decoder of v{compat} or newer; "
                              f"drd decodes v{_KNOWN_VERSION}")
        inner = Reader(self.raw(length), what)
        inner.version = version
        return inner

    def finish(self) -> None:
        if self.at != len(self.data):
            raise DecodeError(f"{self.what} has {len(self.data) - self.at} bytes "
                              "after its end")


def encode_snapshot_get_request(snap_id: int) -> bytes:
    return struct.pack("<Q", snap_id)


def decode_snapcontext(data: bytes) -> SnapContext:
    """Decode what `rbd.get_snapcontext` returns."""
    reader = Reader(data, "snap context")
    seq = reader.u64()
    count = reader.u32()
    if count * 8 > len(data) - reader.at:
        raise DecodeError(f"snap context ends early: {count} snapshot ids announced, "
                          f"{len(data) - reader.at} bytes left")
    snap_ids = reader.take(f"<{count}Q")
    reader.finish()
    return SnapContext(seq, snap_ids)


def decode_snapshot_info(data: bytes) -> SnapshotInfo:
    """Decode what `rbd.snapshot_get` returns: one `cls::rbd::SnapshotInfo`."""
    outer = Reader(data, "snapshot info")
    reader = outer.struct("snapshot info")
    outer.finish()
    snap_id = reader.u64()
    namespace_type, mirror = _namespace(reader.struct("snapshot namespace"))
    name = reader.string()
    image_size = reader.u64()
    seconds, nanoseconds = reader.take("<II")
    if nanoseconds >= _NANOSECONDS:
        raise DecodeError(f"snapshot {snap_id} has a timestamp of {nanoseconds} ns "
                          "past the second")
    child_count = reader.u32()
    timestamp = (datetime.fromtimestamp(seconds, UTC)
                 + timedelta(microseconds=nanoseconds // 1000))
    return SnapshotInfo(snap_id, namespace_type, mirror, name, image_size, timestamp,
                        child_count)


def _namespace(reader: Reader) -> tuple[int, MirrorNamespace | None]:
    namespace_type = reader.u32()
    if namespace_type != NAMESPACE_MIRROR:
        return namespace_type, None  # its fields are not needed; the length skips them
    state, complete = reader.take("<BB")
    peers = frozenset(reader.string() for _ in range(reader.u32()))
    primary_mirror_uuid = reader.string()
    primary_snap_id = reader.u64()
    last_copied_object_number = reader.u64()
    snap_seqs = tuple((reader.u64(), reader.u64()) for _ in range(reader.u32()))
    return namespace_type, MirrorNamespace(state, bool(complete), peers, primary_mirror_uuid,
                                           primary_snap_id, last_copied_object_number,
                                           snap_seqs)


def to_mirror_snapshots(infos: Iterable[SnapshotInfo]) -> list[MirrorSnapshot]:
    """The mirror snapshots among `infos`, oldest first, exactly as
    `drd.ceph.rbd_images.mirror_snapshots` reads them through librbd."""
    found = []
    for info in sorted(infos, key=lambda info: info.snap_id):
        mirror = info.mirror
        if mirror is None:
            continue
        primary = mirror.state in _PRIMARY_STATES
        found.append(MirrorSnapshot(
            snap_id=info.snap_id,
            # librbd's Python binding dates a snapshot in whole seconds (its
            # get_snap_timestamp keeps tv_sec only); both readers must agree.
            created=info.timestamp.replace(microsecond=0),
            primary=primary,
            complete=mirror.complete,
            primary_snap_id=None if primary else mirror.primary_snap_id,
            demoted=mirror.state in _DEMOTED_STATES))
    return found
