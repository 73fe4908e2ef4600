"""RBD journal commit positions, decoded from cls_journal's `client_list`, and turned
into RPO. Pure.

rbd-mirror on each peer commits how far it has replayed a journal into the journal
header (every 0.5 s with the lab's tuning); the image's own client ("") commits how
far the image has applied its writes. Read together, in one call, they say whether a
peer holds everything the primary holds at that instant. drd samples the primary's
position over time to date a peer that is behind.
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
        if master is None or (peer is not None and peer >= master):
            return RpoReading(timedelta(0), now, "caught up")
        # The peer holds entries up to `peer`; the primary was last seen at or before
        # that position at the newest such sample, so the peer's data is that fresh.
        as_of = next((at for at, position in reversed(self.history)
                      if peer is not None and position <= peer), None)
        if as_of is None:
            oldest = self.history[0][0] if self.history else now
            return RpoReading(now - oldest, oldest,
                              "behind since before drd started sampling (a lower bound)")
        return RpoReading(now - as_of, as_of, "replaying")
