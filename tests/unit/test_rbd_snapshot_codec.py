"""cls_rbd's snapshot replies, as a Ceph 16.2.15 OSD sent them, decode to what librbd
said of the same snapshots (tests/integration/capture_rbd_snapshots.py captured both)."""

import json
import struct
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from drd.domain.rbd_snapshot_codec import (
    MIRROR_NON_PRIMARY_DEMOTED,
    NAMESPACE_MIRROR,
    NAMESPACE_USER,
    DecodeError,
    SnapshotInfo,
    decode_snapcontext,
    decode_snapshot_info,
    encode_snapshot_get_request,
    to_mirror_snapshots,
)
from drd.domain.rpo import MirrorSnapshot

CAPTURED = json.loads(
    (Path(__file__).parent / "data" / "rbd_snapshots_16.2.15.json").read_text())["images"]
IMAGES = {f"{image['site']}: {image['what']}": image for image in CAPTURED}
PRIMARY = IMAGES["a: primary, with a user snapshot"]
SYNCED = IMAGES["b: non-primary copy, synced"]


def reply(image: dict[str, Any], snap_id: int) -> bytes:
    return bytes.fromhex(image["snapshot_get"][str(snap_id)])


def infos(image: dict[str, Any]) -> list[SnapshotInfo]:
    return [decode_snapshot_info(bytes.fromhex(data)) for data in image["snapshot_get"].values()]


def as_librbd_gives(snapshot: MirrorSnapshot) -> dict[str, Any]:
    return {**vars(snapshot), "created": snapshot.created.isoformat()}


@pytest.mark.parametrize("image", CAPTURED, ids=list(IMAGES))
def test_the_snap_context_lists_every_snapshot_newest_first(image: dict[str, Any]) -> None:
    context = decode_snapcontext(bytes.fromhex(image["get_snapcontext"]))
    ids = [snap["id"] for snap in image["librbd"]]
    assert context.snap_ids == tuple(reversed(ids))
    assert context.seq >= max(ids)


@pytest.mark.parametrize("image", CAPTURED, ids=list(IMAGES))
def test_each_snapshot_decodes_to_what_librbd_reports(image: dict[str, Any]) -> None:
    decoded = {info.snap_id: info for info in infos(image)}
    for snap in image["librbd"]:
        info = decoded[snap["id"]]
        assert (info.name, info.image_size, info.namespace_type) == \
            (snap["name"], snap["size"], snap["namespace"])
        # librbd's binding gives whole seconds, as naive UTC.
        assert info.timestamp.replace(microsecond=0) == \
            datetime.fromisoformat(snap["timestamp"]).replace(tzinfo=UTC)
        if info.mirror is None:
            assert "mirror" not in snap
            continue
        mirror = snap["mirror"]
        assert (info.mirror.state, info.mirror.complete, sorted(info.mirror.mirror_peer_uuids),
                info.mirror.primary_mirror_uuid, info.mirror.primary_snap_id,
                info.mirror.last_copied_object_number) == \
            (mirror["state"], mirror["complete"], mirror["mirror_peer_uuids"],
             mirror["primary_mirror_uuid"], mirror["primary_snap_id"],
             mirror["last_copied_object_number"])


@pytest.mark.parametrize("image", CAPTURED, ids=list(IMAGES))
def test_mirror_snapshots_equal_what_the_librbd_reader_returned(image: dict[str, Any]) -> None:
    assert [as_librbd_gives(s) for s in to_mirror_snapshots(infos(image))] == \
        image["mirror_snapshots"]


def test_a_timestamp_keeps_its_microseconds_and_the_mirror_view_drops_them() -> None:
    info = decode_snapshot_info(reply(PRIMARY, 12))
    assert info.timestamp == datetime(2026, 11, 22, 4, 1, 48, 41151, tzinfo=UTC)
    [*_, newest] = to_mirror_snapshots([info])
    assert newest.created == datetime(2026, 11, 22, 4, 1, 48, tzinfo=UTC)


def test_user_snapshots_are_decoded_but_are_not_mirror_snapshots() -> None:
    user = decode_snapshot_info(reply(PRIMARY, 10))
    assert (user.namespace_type, user.mirror, user.name) == (NAMESPACE_USER, None, "before-mirror")
    assert [s.snap_id for s in to_mirror_snapshots(infos(PRIMARY))] == [8, 11, 12]


def test_a_non_primary_copy_names_its_primary_snapshot_and_maps_snap_ids() -> None:
    info = decode_snapshot_info(reply(SYNCED, 15))
    assert info.mirror is not None
    assert info.mirror.primary_snap_id == 12
    assert info.mirror.primary_mirror_uuid == "b7c15394-03cd-452f-87bb-1f093fdb0a8f"
    # primary's user snapshot 10 is 12 here; the mirror snapshot itself maps to NOSNAP
    assert info.mirror.snap_seqs == ((10, 12), (12, 0xFFFF_FFFF_FFFF_FFFE))


def test_a_demotion_shows_as_demoted_on_both_sides() -> None:
    primary = to_mirror_snapshots(infos(IMAGES["a: primary, demoted"]))
    copy = infos(IMAGES["b: non-primary copy of a demotion"])
    assert [(s.primary, s.demoted) for s in primary] == [(True, False), (True, True)]
    assert copy[0].mirror is not None and copy[0].mirror.state == MIRROR_NON_PRIMARY_DEMOTED
    [demoted_copy] = to_mirror_snapshots(copy)
    assert (demoted_copy.primary, demoted_copy.demoted, demoted_copy.primary_snap_id) == \
        (False, True, primary[-1].snap_id)


def test_a_copy_mid_sync_is_incomplete() -> None:
    snaps = to_mirror_snapshots(infos(IMAGES["b: non-primary copy, mid-sync"]))
    assert [(s.snap_id, s.complete) for s in snaps] == [(19, True), (20, False)]


def test_the_request_is_the_snap_id() -> None:
    assert encode_snapshot_get_request(12) == bytes.fromhex("0c00000000000000")


def _rebuilt(data: bytes, namespace_version: int = 1, namespace_tail: bytes = b"",
             info_tail: bytes = b"", info_compat: int = 1) -> bytes:
    """A captured SnapshotInfo with fields a newer encoder might append."""
    (info_length,) = struct.unpack_from("<I", data, 2)
    (ns_length,) = struct.unpack_from("<I", data, 16)
    namespace = data[20:20 + ns_length] + namespace_tail
    body = (data[6:14] + struct.pack("<BBI", namespace_version, 1, len(namespace)) + namespace
            + data[20 + ns_length:6 + info_length] + info_tail)
    return struct.pack("<BBI", 1, info_compat, len(body)) + body


def test_fields_a_newer_version_appends_are_skipped() -> None:
    data = reply(SYNCED, 15)
    assert _rebuilt(data) == data
    newer = _rebuilt(data, namespace_version=2, namespace_tail=b"\x01\x01\x0a\x00\x00\x00"
                     + bytes(10), info_tail=b"more")
    assert decode_snapshot_info(newer) == decode_snapshot_info(data)


def test_an_unknown_namespace_type_is_not_a_mirror_snapshot() -> None:
    data = bytearray(reply(PRIMARY, 12))
    struct.pack_into("<I", data, 20, 9)
    info = decode_snapshot_info(bytes(data))
    assert (info.namespace_type, info.mirror) == (9, None)
    assert info.name.startswith(".mirror.primary.")
    assert to_mirror_snapshots([info]) == []


@pytest.mark.parametrize("snap_id", [10, 12])
def test_every_truncation_is_a_decode_error(snap_id: int) -> None:
    data = reply(PRIMARY, snap_id)
    for length in range(len(data)):
        with pytest.raises(DecodeError, match="ends early"):
            decode_snapshot_info(data[:length])


def test_a_truncated_snap_context_is_a_decode_error() -> None:
    data = bytes.fromhex(PRIMARY["get_snapcontext"])
    for length in range(len(data)):
        with pytest.raises(DecodeError, match="snap context ends early"):
            decode_snapcontext(data[:length])


def test_a_snap_context_announcing_more_ids_than_it_holds_is_refused() -> None:
    data = struct.pack("<QI", 5, 0xFFFF_FFFF) + struct.pack("<Q", 5)
    with pytest.raises(DecodeError, match="4294967295 snapshot ids announced, 8 bytes left"):
        decode_snapcontext(data)


def test_bytes_after_the_reply_are_refused() -> None:
    with pytest.raises(DecodeError, match="snap context has 1 bytes after its end"):
        decode_snapcontext(bytes.fromhex(PRIMARY["get_snapcontext"]) + b"\0")
    with pytest.raises(DecodeError, match="snapshot info has 2 bytes after its end"):
        decode_snapshot_info(reply(PRIMARY, 12) + b"\0\0")


def test_an_encoding_only_a_newer_decoder_understands_is_refused() -> None:
    with pytest.raises(DecodeError, match=r"snapshot info v1 needs a decoder of v2 or newer"):
        decode_snapshot_info(_rebuilt(reply(PRIMARY, 12), info_compat=2))


def test_an_inner_length_past_the_struct_is_caught_inside_it() -> None:
    data = bytearray(reply(PRIMARY, 12))
    struct.pack_into("<I", data, 16, 10_000)  # the namespace claims more than there is
    with pytest.raises(DecodeError, match="snapshot info ends early"):
        decode_snapshot_info(bytes(data))


def test_nanoseconds_past_the_second_are_refused() -> None:
    data = bytearray(reply(PRIMARY, 12))
    struct.pack_into("<I", data, len(data) - 8, 1_000_000_000)
    with pytest.raises(DecodeError, match="1000000000 ns past the second"):
        decode_snapshot_info(bytes(data))


def test_a_mirror_namespace_cut_inside_its_struct_is_a_decode_error() -> None:
    data = reply(SYNCED, 15)
    assert struct.unpack_from("<I", data, 20)[0] == NAMESPACE_MIRROR
    (ns_length,) = struct.unpack_from("<I", data, 16)
    # 8 bytes fewer in the namespace, both lengths agreeing: snap_seqs then ends early.
    body = data[6:16] + struct.pack("<I", ns_length - 8) + data[20:20 + ns_length - 8] \
        + data[20 + ns_length:]
    short = struct.pack("<BBI", 1, 1, len(body)) + body
    with pytest.raises(DecodeError, match="snapshot namespace ends early"):
        decode_snapshot_info(short)
