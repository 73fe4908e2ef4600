"""Mirror entries and journal tags, as a Ceph 16.2.15 OSD sent them, decode to what
librbd said of the same images (tests/integration/capture_rbd_mirror.py captured both)."""

import json
import struct
from pathlib import Path
from typing import Any

import pytest

from drd.domain import rbd_mirror_codec as mirror
from drd.domain.rbd_snapshot_codec import DecodeError, decode_snapshot_info
from drd.domain.replication_plan import ImageRef, MirrorMode, MirrorState, ObservedImage

CAPTURED = json.loads(
    (Path(__file__).parent / "data" / "rbd_mirror_16.2.15.json").read_text())["images"]
IMAGES = {f"{image['site']}: {image['what']}": image for image in CAPTURED}
JOURNAL_PRIMARY = IMAGES["a: journal mode, primary"]
REF = ImageRef("rbd", "ns", "vm-1")


def primary_from_replies(image: dict[str, Any]) -> bool:
    """What the batch reader concludes from the replies, newest snapshot or tag."""
    if "snapshot_get" in image:
        return mirror.snapshot_primary(decode_snapshot_info(bytes.fromhex(image["snapshot_get"])))
    return mirror.journal_primary(mirror.decode_tag_list(bytes.fromhex(image["tag_list"]))[-1])


@pytest.mark.parametrize("image", CAPTURED, ids=list(IMAGES))
def test_the_mirror_entry_decodes_to_what_librbd_reports(image: dict[str, Any]) -> None:
    entry = mirror.decode_mirror_image(bytes.fromhex(image["mirror_image_get"]))
    librbd = image["librbd"]
    assert (entry.global_image_id, entry.state, entry.mode) == \
        (librbd["global_id"], librbd["state"], librbd["mode"])


@pytest.mark.parametrize("image", CAPTURED, ids=list(IMAGES))
def test_primary_is_judged_as_librbd_judges_it(image: dict[str, Any]) -> None:
    assert primary_from_replies(image) is image["librbd"]["primary"]


def test_a_journal_image_client_names_its_tag_class_and_its_tags_their_owner() -> None:
    tag_class = mirror.decode_image_client_tag_class(bytes.fromhex(JOURNAL_PRIMARY["get_client"]))
    tags = mirror.decode_tag_list(bytes.fromhex(JOURNAL_PRIMARY["tag_list"]))
    assert tag_class == 0
    assert [t.tid for t in tags] == sorted(t.tid for t in tags)
    assert {t.tag_class for t in tags} == {tag_class}
    assert tags[-1].owner == mirror.LOCAL_MIRROR_UUID
    copy = mirror.decode_tag_list(bytes.fromhex(IMAGES["b: journal mode, non-primary copy"]
                                                ["tag_list"]))
    assert len(copy[-1].owner) == 36  # site a's mirror uuid


def test_a_peer_sites_journal_client_names_the_copy_it_replays_into() -> None:
    registered = mirror.decode_peer_client_image_id(
        bytes.fromhex(JOURNAL_PRIMARY["peer_get_client"]))
    assert registered == JOURNAL_PRIMARY["peer_copy_image_id"]
    with pytest.raises(DecodeError, match="meta type 0"):
        mirror.decode_peer_client_image_id(bytes.fromhex(JOURNAL_PRIMARY["get_client"]))


def test_requests_are_encoded_as_cls_rbd_and_cls_journal_decode_them() -> None:
    assert mirror.encode_mirror_image_get_request("10ab") == b"\x04\x00\x00\x0010ab"
    assert mirror.encode_get_client_request() == b"\x00\x00\x00\x00"
    assert mirror.encode_client_unregister_request("c-uuid") == b"\x06\x00\x00\x00c-uuid"
    assert mirror.encode_tag_list_request(7, start_after_tid=3, max_return=5) == (
        struct.pack("<QQI", 3, 5, 0) + b"\x01" + struct.pack("<Q", 7))


def test_a_v1_mirror_entry_is_journal_mode() -> None:
    body = struct.pack("<I", 3) + b"gid" + b"\x01"
    entry = mirror.decode_mirror_image(struct.pack("<BBI", 1, 1, len(body)) + body)
    assert entry == mirror.MirrorImage("gid", mirror.STATE_ENABLED, mirror.MODE_JOURNAL)


def test_no_mirror_snapshot_yet_is_not_primary() -> None:
    assert mirror.snapshot_primary(None) is False


@pytest.mark.parametrize(("field", "damage"), [
    ("mirror_image_get", lambda data: data[:-1]),
    ("mirror_image_get", lambda data: data + b"\x00"),
    ("mirror_image_get", lambda data: b"\x03\x03" + data[2:]),  # a version drd cannot read
    ("get_client", lambda data: data[:20]),
    ("tag_list", lambda data: data[:-3]),
    ("tag_list", lambda data: b"\xff\x00\x00\x00" + data[4:]),
])
def test_malformed_replies_are_decode_errors(field: str, damage: Any) -> None:
    decode = {"mirror_image_get": mirror.decode_mirror_image,
              "get_client": mirror.decode_image_client_tag_class,
              "tag_list": mirror.decode_tag_list}[field]
    with pytest.raises(DecodeError):
        decode(damage(bytes.fromhex(JOURNAL_PRIMARY[field])))


def test_client_data_of_another_meta_type_is_a_decode_error() -> None:
    meta = struct.pack("<I", 1)  # a mirror peer's client, not the image's
    data = struct.pack("<BBI", 1, 1, len(meta)) + meta
    client = struct.pack("<I", 0) + struct.pack("<I", len(data)) + data
    with pytest.raises(DecodeError, match="meta type 1"):
        mirror.decode_image_client_tag_class(struct.pack("<BBI", 1, 1, len(client)) + client)


@pytest.mark.parametrize(("entry", "primary", "expected"), [
    (None, None, (MirrorState.DISABLED, None, None)),
    (mirror.MirrorImage("g", mirror.STATE_DISABLED, 1), None, (MirrorState.DISABLED, None, None)),
    (mirror.MirrorImage("g", mirror.STATE_ENABLED, 1), True,
     (MirrorState.ENABLED, MirrorMode.SNAPSHOT, True)),
    (mirror.MirrorImage("g", mirror.STATE_ENABLED, 0), False,
     (MirrorState.ENABLED, MirrorMode.JOURNAL, False)),
    (mirror.MirrorImage("g", mirror.STATE_DISABLING, 1), None,
     (MirrorState.DISABLING, MirrorMode.SNAPSHOT, None)),
    (mirror.MirrorImage("g", mirror.STATE_CREATING, 0), None,
     (MirrorState.ENABLING, MirrorMode.JOURNAL, None)),
])
def test_observed_images_say_what_the_planner_reads(
        entry: mirror.MirrorImage | None, primary: bool | None,
        expected: tuple[MirrorState, MirrorMode | None, bool | None]) -> None:
    assert mirror.observed(REF, "10ab", entry, primary) == \
        ObservedImage(REF, "10ab", *expected, None)


STATUS_LISTS = json.loads((Path(__file__).parent / "data"
                           / "rbd_mirror_status_list_16.2.15.json").read_text())["sites"]


@pytest.mark.parametrize("site", STATUS_LISTS, ids=[s["site"] for s in STATUS_LISTS])
def test_a_namespaces_mirror_entries_decode_from_one_status_list_reply(
        site: dict[str, Any]) -> None:
    entries = mirror.decode_mirror_image_status_list(
        bytes.fromhex(site["mirror_image_status_list"]))
    assert {image_id: {"global_id": e.global_image_id, "state": e.state, "mode": e.mode}
            for image_id, e in entries.items()} == site["librbd"]
    assert {e.mode for e in entries.values()} == {mirror.MODE_SNAPSHOT, mirror.MODE_JOURNAL}


def test_a_truncated_status_list_reply_is_refused() -> None:
    reply = bytes.fromhex(STATUS_LISTS[0]["mirror_image_status_list"])
    with pytest.raises(DecodeError):
        mirror.decode_mirror_image_status_list(reply[:40])
