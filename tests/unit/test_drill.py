"""The drill's pure parts: names, the clone plan, clone marks, when a drill snapshot has
arrived whole on a replica, and how a clone is judged against its source."""

import json
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest
from pydantic import ValidationError

from drd.domain.drill import (
    DRILL_NAMESPACE,
    CloneMarks,
    Comparison,
    DrillImage,
    arrived,
    clone_ref,
    compare_sectors,
    drill_snapshot,
    plan_clones,
    read_marks,
    run_snapshots,
    window_end_snapshot,
)
from drd.domain.rbd_snapshot_codec import (
    MIRROR_NON_PRIMARY,
    MIRROR_PRIMARY,
    NAMESPACE_MIRROR,
    NAMESPACE_USER,
    MirrorNamespace,
    SnapshotInfo,
    decode_snapshot_info,
)
from drd.domain.replication_plan import ImageRef
from drd.domain.runbook_steps import DrillVerify, DrillVerifyParams

WATER_DB = ImageRef("rbd", "water", "db")
CAPTURED = {f"{image['site']}: {image['what']}": image for image in json.loads(
    (Path(__file__).parent / "data" / "rbd_snapshots_16.2.15.json").read_text())["images"]}
T0 = datetime(2026, 11, 22, tzinfo=UTC)


def test_names_carry_the_run_id_and_never_match_another_runs() -> None:
    assert drill_snapshot(7) == "drd-drill-run7"
    assert window_end_snapshot(7) == "drd-drill-run7-end"
    assert run_snapshots(7) == ("drd-drill-run7", "drd-drill-run7-end")
    assert not set(run_snapshots(7)) & set(run_snapshots(70))
    assert clone_ref("water", WATER_DB, 7) == ImageRef("rbd", DRILL_NAMESPACE, "water-db-run7")


def test_every_image_gets_its_own_clone_in_the_drill_namespace_of_its_pool() -> None:
    images = [("water", WATER_DB), ("transport", ImageRef("fast", "transport", "db")),
              ("water", ImageRef("rbd", "water2", "logs"))]
    planned, refused = plan_clones(images, 7)
    assert refused == []
    assert {(d.tenant, d.source, d.clone) for d in planned} == {
        ("water", WATER_DB, ImageRef("rbd", "drd-drill", "water-db-run7")),
        ("transport", ImageRef("fast", "transport", "db"),
         ImageRef("fast", "drd-drill", "transport-db-run7")),
        ("water", ImageRef("rbd", "water2", "logs"), ImageRef("rbd", "drd-drill",
                                                             "water-logs-run7"))}


def test_images_whose_clones_would_share_a_name_are_refused_both_and_others_go_on() -> None:
    images = [("a", ImageRef("rbd", "a", "b-c")), ("a-b", ImageRef("rbd", "a-b", "c")),
              ("water", WATER_DB)]
    planned, refused = plan_clones(images, 7)
    assert planned == [DrillImage("water", WATER_DB, clone_ref("water", WATER_DB, 7))]
    assert len(refused) == 2
    assert refused[0].startswith("rbd/a/b-c: its clone would be named "
                                 "rbd/drd-drill/a-b-c-run7, as would that of another image")


def test_marks_read_back_as_written_and_broken_marks_read_as_none() -> None:
    marks = CloneMarks(7, "water", "a", WATER_DB, "drd-drill-run7", "drd-drill-run7-end")
    assert read_marks(marks.metadata()) == marks
    no_window = replace(marks, window_end=None)
    assert "drd.drill.window_end" not in no_window.metadata()
    assert read_marks(no_window.metadata()) == no_window
    root = replace(marks, source=ImageRef("rbd", "", "db"))
    assert read_marks(root.metadata()) == root
    assert read_marks({}) is None
    assert read_marks({**marks.metadata(), "drd.drill.run": "seven"}) is None
    assert read_marks({"other.key": "x"}) is None


def _captured(what: str) -> list[SnapshotInfo]:
    return [decode_snapshot_info(bytes.fromhex(data))
            for data in CAPTURED[what]["snapshot_get"].values()]


def test_in_snapshot_mode_a_user_snapshot_is_whole_once_a_later_mirror_snapshot_is() -> None:
    # Captured from Ceph 16.2.15: `before-mirror` was snapshot 10 on a; b holds it and
    # the complete copy of a's mirror snapshot 12.
    synced = _captured("b: non-primary copy, synced")
    assert arrived(synced, "before-mirror", 10, snapshot_mode=True)
    assert not arrived(synced, "before-mirror", 12, snapshot_mode=True)
    assert not arrived(synced, "another", 10, snapshot_mode=True)
    copying = [_user("before-mirror", 30), _mirror(31, MIRROR_NON_PRIMARY, False, 12)]
    assert not arrived(copying, "before-mirror", 10, snapshot_mode=True), \
        "the user snapshot exists before its data is copied"
    assert arrived([*copying, _mirror(33, MIRROR_NON_PRIMARY, True, 14)], "before-mirror",
                   10, snapshot_mode=True), "a newer sync completed (12 was pruned)"
    primary = [_user("before-mirror", 30), _mirror(31, MIRROR_PRIMARY, True, 12)]
    assert not arrived(primary, "before-mirror", 10, snapshot_mode=True)


def test_in_journal_mode_the_replayed_snapshot_is_enough() -> None:
    assert arrived([_user("drd-drill-run7", 4)], "drd-drill-run7", 9, snapshot_mode=False)
    assert not arrived([_mirror(4, MIRROR_NON_PRIMARY, True, 9)], "drd-drill-run7", 9,
                       snapshot_mode=False)


def test_in_journal_mode_the_snapshot_after_it_must_have_been_replayed_too() -> None:
    first, end = "drd-drill-run7", "drd-drill-run7-end"
    assert not arrived([_user(first, 4)], first, 9, snapshot_mode=False, then=end)
    assert arrived([_user(first, 4), _user(end, 5)], first, 9, snapshot_mode=False, then=end)
    assert not arrived([_user(end, 5)], first, 9, snapshot_mode=False, then=end)


def _user(name: str, snap_id: int) -> SnapshotInfo:
    return SnapshotInfo(snap_id, NAMESPACE_USER, None, name, 1 << 20, T0, 0)


def _mirror(snap_id: int, state: int, complete: bool, primary_snap_id: int) -> SnapshotInfo:
    namespace = MirrorNamespace(state, complete, frozenset(), "uuid", primary_snap_id, 0, ())
    return SnapshotInfo(snap_id, NAMESPACE_MIRROR, namespace, f".mirror.{snap_id}", 1 << 20,
                        T0, 0)


START = bytes(range(256)) * 64  # 16 KiB: four blocks
END = START[:4096] + b"\x01" * 1024 + START[5120:]  # sectors 8 and 9 written after


def test_an_identical_chunk_has_nothing_to_report() -> None:
    assert compare_sectors(START, START, END, 0) == compare_sectors(START, START, None, 0)
    assert compare_sectors(START, START, None, 0).bad_offsets == ()


def test_sectors_written_right_after_the_snapshot_may_hold_either_value() -> None:
    clone = START[:4096] + b"\x01" * 512 + START[4608:]
    check = compare_sectors(clone, START, END, 1 << 20)
    assert (check.window_sectors, check.bad_offsets) == (1, ())
    assert compare_sectors(END, START, END, 0).window_sectors == 2


def test_any_other_difference_is_bad_and_named_by_its_offset() -> None:
    clone = START[:512] + b"\xff" * 512 + START[1024:4096] + b"\x01" * 512 + START[4608:]
    check = compare_sectors(clone, START, END, 1 << 20)
    assert check.window_sectors == 1
    assert check.bad_offsets == ((1 << 20) + 512,)
    # Without a window (snapshot mode) the window's value is wrong too.
    assert compare_sectors(clone, START, None, 0).bad_offsets == (512, 4096)


def test_a_sector_outside_the_window_cannot_hide_behind_the_window_end() -> None:
    # The window end holds the same as the start wherever nobody wrote, so a clone
    # differing there differs from both.
    clone = b"\x00" * 512 + START[512:]
    assert compare_sectors(clone, START, END, 0).bad_offsets == (0,)


def _comparison(**changes: object) -> Comparison:
    same = Comparison(size=1 << 20, source_size=1 << 20, sha256="ab" * 32,
                      source_sha256="ab" * 32, window_sectors=0, bad_sectors=0,
                      first_bad=None)
    return replace(same, **changes)  # type: ignore[arg-type]


CLONE = ImageRef("rbd", "drd-drill", "water-db-run7")


def test_verdicts_read_like_the_operators_log() -> None:
    source = "a:rbd/water/db@drd-drill-run7"
    assert _comparison().verdict(CLONE, source) == (
        "rbd/drd-drill/water-db-run7: verified, sha256 abababababababab equals "
        "a:rbd/water/db@drd-drill-run7's")
    window = _comparison(sha256="cd" * 32, window_sectors=8)
    assert window.verified
    assert "verified, equal to a:rbd/water/db@drd-drill-run7 but for 8 sectors that hold " \
           "what the source wrote there right after it" in window.verdict(CLONE, source)
    bad = _comparison(sha256="cd" * 32, bad_sectors=3, first_bad=4096)
    assert not bad.verified
    assert bad.verdict(CLONE, source) == (
        "rbd/drd-drill/water-db-run7: FAILED: 3 sectors of 512 bytes differ from "
        "a:rbd/water/db@drd-drill-run7, the first at byte 4096; sha256 cdcdcdcdcdcdcdcd, "
        "a:rbd/water/db@drd-drill-run7 abababababababab")
    short = _comparison(size=1 << 19)
    assert not short.verified
    assert short.verdict(CLONE, source).endswith(f"FAILED: {1 << 19} bytes, but {source} has "
                                                 f"{1 << 20}")


def test_a_hook_verification_names_its_argv_and_a_checksum_takes_none() -> None:
    assert DrillVerifyParams(site="b", method=DrillVerify.HOOK, hook=("fsck.ext4", "-n"))
    with pytest.raises(ValidationError, match="method hook needs hook"):
        DrillVerifyParams(site="b", method=DrillVerify.HOOK)
    with pytest.raises(ValidationError, match="hook is run only with method hook"):
        DrillVerifyParams(site="b", hook=("fsck.ext4",))
    with pytest.raises(ValidationError, match="at least 1 item"):
        DrillVerifyParams(site="b", method=DrillVerify.HOOK, hook=())
