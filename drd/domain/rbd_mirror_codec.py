"""An image's mirroring state and promotion, from cls_rbd and cls_journal replies,
decoded, and judged as librbd's `mirror_image_get_info` judges them. Pure.

The calls, as of Ceph 16.2 (Pacific), checked against replies captured from a 16.2.15
OSD (tests/unit/data/rbd_mirror_16.2.15.json):

- `rbd.mirror_image_get` on `rbd_mirroring` (input: string image id): one
  `cls::rbd::MirrorImage`, ENCODE_START v2 compat 1: string global_image_id, u8 state,
  and since v2 u8 mode. ENOENT: mirroring was never enabled. (Pacific's
  `mirror_image_list` answers image id -> global id only, without state or mode.)
- `rbd.mirror_image_status_list` on `rbd_mirroring` (input: string start_after, u64
  max_return): `map<string image id, MirrorImage>` of every image with a mirror entry,
  then each one's per-site status. One call gives a whole namespace's entries; only
  the map is read.
- `journal.get_client` on `journal.<image id>` (input: string client id, "" for the
  image's own client): one `cls::journal::Client`, v1: string id, bufferlist data,
  ObjectSetPosition, u8 state. Its data is librbd's `ClientData` v2 compat 1: u32 meta
  type (0: image), then for the image client u64 tag_class and bool resync_requested;
  for a peer site's rbd-mirror (type 1, client id: that site's mirror uuid) string
  image_id, the id of that site's copy, then its sync state.
- `journal.client_unregister` (input: string client id) removes a client.
- `journal.tag_list` (input: u64 start_after_tag_tid, u64 max_return, string client id,
  optional<u64> tag_class): `set<cls::journal::Tag>` (u32 count), each v1: u64 tid,
  u64 tag_class, bufferlist data. The data is librbd's `TagData`, unversioned: string
  mirror_uuid of the tag's owner ("" for this cluster), then its predecessor.

Promotion follows librbd 16.2's `mirror::GetInfoRequest`: a snapshot-mode image is
primary when its newest mirror snapshot is in state primary (demoted, non-primary or
no mirror snapshot at all: not primary); a journal-mode image is primary when the
newest tag of its image client's tag class is owned by "" (LOCAL_MIRROR_UUID).
"""

import struct
from dataclasses import dataclass

from drd.domain.rbd_snapshot_codec import MIRROR_PRIMARY, DecodeError, Reader, SnapshotInfo
from drd.domain.replication_plan import (
    ImageRef,
    MirrorMode,
    MirrorState,
    ObservedImage,
)

STATE_DISABLING = 0
STATE_ENABLED = 1
STATE_DISABLED = 2
STATE_CREATING = 3  # rbd-mirror's copy while it is first made
MODE_JOURNAL = 0
MODE_SNAPSHOT = 1
IMAGE_CLIENT = ""  # the journal client of the image itself
LOCAL_MIRROR_UUID = ""
TAG_PAGE = 256  # tags per tag_list reply; a tag is under 200 bytes
# Entries per mirror_image_status_list reply. An entry with its statuses from two peers
# is about 1 KB: 128 of them stay far inside the 1 MiB reply buffer.
STATUS_LIST_PAGE = 128

_STATES = {STATE_DISABLING: MirrorState.DISABLING, STATE_ENABLED: MirrorState.ENABLED,
           STATE_DISABLED: MirrorState.DISABLED}
_MODES = {MODE_JOURNAL: MirrorMode.JOURNAL, MODE_SNAPSHOT: MirrorMode.SNAPSHOT}
_IMAGE_CLIENT_META = 0
_MIRROR_PEER_CLIENT_META = 1


@dataclass(frozen=True)
class MirrorImage:
    global_image_id: str
    state: int  # STATE_DISABLING ... STATE_CREATING
    mode: int  # MODE_JOURNAL or MODE_SNAPSHOT (journal for a v1 entry)


@dataclass(frozen=True)
class JournalTag:
    tid: int
    tag_class: int
    owner: str  # mirror_uuid of the cluster that owned the journal from this tag on


def _string_request(value: str) -> bytes:
    raw = value.encode()
    return struct.pack("<I", len(raw)) + raw


def encode_mirror_image_get_request(image_id: str) -> bytes:
    return _string_request(image_id)


def encode_get_client_request(client_id: str = IMAGE_CLIENT) -> bytes:
    return _string_request(client_id)


def encode_tag_list_request(tag_class: int, start_after_tid: int = 0,
                            max_return: int = TAG_PAGE,
                            client_id: str = IMAGE_CLIENT) -> bytes:
    return (struct.pack("<QQ", start_after_tid, max_return) + _string_request(client_id)
            + struct.pack("<BQ", 1, tag_class))


def encode_mirror_image_status_list_request(start_after: str = "",
                                            max_return: int = STATUS_LIST_PAGE) -> bytes:
    return _string_request(start_after) + struct.pack("<Q", max_return)


def decode_mirror_image(data: bytes) -> MirrorImage:
    """Decode what `rbd.mirror_image_get` returns: one `cls::rbd::MirrorImage`."""
    outer = Reader(data, "mirror image")
    image = _mirror_image(outer)
    outer.finish()
    return image


def decode_mirror_image_status_list(data: bytes) -> dict[str, MirrorImage]:
    """The image id -> mirror entry map that opens `rbd.mirror_image_status_list`'s
    reply. The per-site statuses after it are not read."""
    reader = Reader(data, "mirror image status list")
    entries = {}
    for _ in range(reader.u32()):
        image_id = reader.string()
        entries[image_id] = _mirror_image(reader)
    return entries


def _mirror_image(outer: Reader) -> MirrorImage:
    reader = outer.struct("mirror image")
    global_image_id = reader.string()
    (state,) = reader.take("<B")
    mode = reader.take("<B")[0] if reader.version >= 2 else MODE_JOURNAL
    return MirrorImage(global_image_id, state, mode)


def encode_client_unregister_request(client_id: str) -> bytes:
    return _string_request(client_id)


def decode_image_client_tag_class(data: bytes) -> int:
    """The tag class of the image's own journal client, from `journal.get_client`."""
    return _client_meta(data, _IMAGE_CLIENT_META, "the image client's").u64()


def decode_peer_client_image_id(data: bytes) -> str:
    """The id of the copy a peer site's rbd-mirror registered with this journal, from
    `journal.get_client` of that site's mirror uuid."""
    return _client_meta(data, _MIRROR_PEER_CLIENT_META, "a mirror peer's").string()


def _client_meta(data: bytes, expected_type: int, whose: str) -> Reader:
    outer = Reader(data, "journal client")
    client = outer.struct("journal client")
    outer.finish()
    client.string()  # its id
    blob = client.raw(client.u32())
    meta_outer = Reader(blob, "journal client data")
    meta = meta_outer.struct("journal client data")
    meta_outer.finish()
    meta_type = meta.u32()
    if meta_type != expected_type:
        raise DecodeError(f"journal client data is of meta type {meta_type}, not {whose}")
    return meta


def decode_tag_list(data: bytes) -> list[JournalTag]:
    """Decode what `journal.tag_list` returns, in tid order."""
    reader = Reader(data, "tag list")
    tags = []
    for _ in range(reader.u32()):
        tag = reader.struct("journal tag")
        tid = tag.u64()
        tag_class = tag.u64()
        tag_data = Reader(tag.raw(tag.u32()), f"journal tag {tid} data")
        tags.append(JournalTag(tid, tag_class, tag_data.string()))
    reader.finish()
    return tags


def snapshot_primary(newest_mirror_snapshot: SnapshotInfo | None) -> bool:
    """librbd's `primary` of a snapshot-mode image, from its newest mirror snapshot."""
    mirror = newest_mirror_snapshot.mirror if newest_mirror_snapshot else None
    return mirror is not None and mirror.state == MIRROR_PRIMARY


def journal_primary(newest_tag: JournalTag) -> bool:
    """librbd's `primary` of a journal-mode image, from the newest tag of its class."""
    return newest_tag.owner == LOCAL_MIRROR_UUID


def observed(ref: ImageRef, image_id: str, entry: MirrorImage | None,
             primary: bool | None) -> ObservedImage:
    """One image as the reconciler sees it. Mode and promotion are only given for an
    enabled image; a state Ceph is moving through (disabling, creating) is shown as
    such, so that the planner waits for it to settle."""
    if entry is None or entry.state == STATE_DISABLED:
        return ObservedImage(ref, image_id, MirrorState.DISABLED, None, None, None)
    state = _STATES.get(entry.state, MirrorState.ENABLING)
    return ObservedImage(ref, image_id, state, _MODES.get(entry.mode),
                         primary if state is MirrorState.ENABLED else None, None)
