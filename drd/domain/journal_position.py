"""RBD journal commit positions, decoded from cls_journal's `client_list`, and turned
into RPO. Pure.

rbd-mirror on each peer commits how far it has replayed a journal into the journal
header (every `rbd_mirror_journal_commit_age`, 0.2 s in the lab); the image's own
client ("") commits how far the writer has applied its writes (every
`rbd_journal_commit_age` of the writer's librbd: 5 s by default, 0.2 s in the lab).
Read together, in one call, they say whether a peer holds everything the primary had
committed at that instant. drd samples the primary's position over time to date a
peer that is behind, and adds the writer's commit interval: writes appended since
the primary's last commit are invisible in the header, so a reading is an upper bound.

Measured here: a peer commits a replayed write only once the replay is flushed,
which happens on the guest's next flush or after 32 writes in flight, so a writer
that never flushes shows a peer seconds behind although the data is there.
"""

import struct
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from drd.domain.rpo import RpoReading

MASTER_CLIENT = ""  # the journal client of the image itself


@dataclass(frozen=True, order=True)
class Position:
    tag_tid: int
    entry_tid: int


@dataclass(frozen=True)
class JournalClient:
    client_id: str
    position: Position | None  # the newest committed entry, None before the first


class DecodeError(ValueError):
    """The bytes are not what cls_journal encodes."""


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.at = 0

    def take(self, fmt: str) -> tuple[int, ...]:
        size = struct.calcsize(fmt)
        if self.at + size > len(self.data):
            raise DecodeError("client list ends early")
        values = struct.unpack_from(fmt, self.data, self.at)
        self.at += size
        return values

    def blob(self) -> bytes:
        (length,) = self.take("<I")
        if self.at + length > len(self.data):
            raise DecodeError("client list ends early")
        value = self.data[self.at:self.at + length]
        self.at += length
        return value

    def start(self) -> int:
        """ENCODE_START: version, compat version, length; return where the struct ends."""
        _, _, length = self.take("<BBI")
        return self.at + length


def encode_client_list_request(start_after: str = "", max_return: int = 1024) -> bytes:
    raw = start_after.encode()
    return struct.pack("<I", len(raw)) + raw + struct.pack("<Q", max_return)


def decode_client_list(data: bytes) -> list[JournalClient]:
    """Decode `std::set<cls::journal::Client>` as `journal.client_list` returns it."""
    reader = _Reader(data)
    (count,) = reader.take("<I")
    clients = []
    for _ in range(count):
        end = reader.start()
        client_id = reader.blob().decode()
        reader.blob()  # opaque client data
        position_end = reader.start()
        (positions,) = reader.take("<I")
        newest: Position | None = None
        for _ in range(positions):
            object_end = reader.start()
            _, tag_tid, entry_tid = reader.take("<QQQ")
            reader.at = object_end
            candidate = Position(tag_tid, entry_tid)
            newest = candidate if newest is None else max(newest, candidate)
        reader.at = position_end
        reader.at = end  # skips the state byte and anything newer versions add
        clients.append(JournalClient(client_id, newest))
    return clients


@dataclass
class JournalRpoTracker:
    """Dates positions by sampling the primary's position; one tracker per image.

    Each entry is a position and the last time the primary was seen at it: the data
    a peer at that position holds is at most that old.
    """

    writer_commit_age: timedelta = timedelta(0)
    history: deque[tuple[datetime, Position]] = field(
        default_factory=lambda: deque(maxlen=600))

    def observe(self, now: datetime, clients: list[JournalClient],
                peer_client: str) -> RpoReading:
        by_id = {client.client_id: client.position for client in clients}
        master = by_id.get(MASTER_CLIENT)
        if master is not None:
            if self.history and self.history[-1][1] == master:
                self.history[-1] = (now, master)
            else:
                self.history.append((now, master))
        if peer_client not in by_id:
            return RpoReading(None, None, "the peer has not registered with the journal")
        peer = by_id[peer_client]
        lag = self.writer_commit_age  # appends the primary has not committed yet
        if master is None or (peer is not None and peer >= master):
            return RpoReading(lag, now - lag, "caught up")
        # The peer holds entries up to `peer`; the primary was last seen at or before
        # that position at the newest such sample, so the peer's data is that fresh.
        as_of = next((at for at, position in reversed(self.history)
                      if peer is not None and position <= peer), None)
        if as_of is None:
            oldest = self.history[0][0] if self.history else now
            return RpoReading(now - oldest + lag, oldest - lag,
                              "behind since before drd started sampling (a lower bound)")
        return RpoReading(now - as_of + lag, as_of - lag, "replaying")
