"""Names and the restore refusal decision for RBD image backups."""

import pytest

from drd.domain.image_backups import (
    ExistingImage,
    backup_snapshot_name,
    image_file_name,
    image_of_file_name,
    is_backup_snapshot,
    replaced_image,
    restore_refusal,
    scratch_image,
    snapshot_spec,
    staging_image,
)
from drd.domain.replication_plan import ImageRef

TOKEN = "0123456789abcdef"  # noqa: S105  (a name token, not a secret)
VM = ImageRef("rbd", "water", "vm-1")


@pytest.mark.parametrize(("ref", "name"), [
    (ImageRef("rbd", "water", "db-1"), "rbd+water+db-1.raw"),
    (ImageRef("rbd", "", "db-1"), "rbd+db-1.raw"),  # never "rbd++db-1" nor "rbd//db-1"
    (ImageRef("rbd.ssd", "water", "db.v2"), "rbd.ssd+water+db.v2.raw"),
    (ImageRef("rbd", "water", "a+b"), "rbd+water+a%2Bb.raw"),
    (ImageRef("rbd", "water", "100%"), "rbd+water+100%25.raw"),
    (ImageRef("rbd", "water", "vm 1"), "rbd+water+vm%201.raw"),
])
def test_image_file_names_are_stable_and_read_back(ref: ImageRef, name: str) -> None:
    assert image_file_name(ref) == name
    assert image_of_file_name(name) == ref


def test_file_names_never_collide_where_dotted_names_would() -> None:
    # pool "a.b" image "c" and pool "a" namespace "b" image "c" would both be "a.b.c".
    refs = [ImageRef("a.b", "", "c"), ImageRef("a", "b", "c"), ImageRef("a", "", "b+c"),
            ImageRef("a", "b", "c.raw")]
    names = {image_file_name(ref) for ref in refs}
    assert len(names) == 4
    assert all("/" not in name for name in names)


@pytest.mark.parametrize("name", ["rbd+water+db-1", "rbd++db-1.raw", "rbd.raw", "+x.raw",
                                  "a+b+c+d.raw", "rbd+water+%64b.raw", "rbd+water+.raw"])
def test_other_file_names_are_not_image_backups(name: str) -> None:
    with pytest.raises(ValueError, match="not an RBD image backup"):
        image_of_file_name(name)


def test_an_image_without_pool_or_name_has_no_file_name() -> None:
    with pytest.raises(ValueError, match="needs a pool and a name"):
        image_file_name(ImageRef("rbd", "water", ""))


def test_drd_names_its_snapshots_and_images_with_a_token() -> None:
    assert backup_snapshot_name(TOKEN) == "drd-backup-0123456789abcdef"
    assert snapshot_spec(VM, backup_snapshot_name(TOKEN)) == \
        "rbd/water/vm-1@drd-backup-0123456789abcdef"
    assert snapshot_spec(ImageRef("rbd", "", "vm"), "s") == "rbd/vm@s"
    assert scratch_image("scratch", "", TOKEN) == \
        ImageRef("scratch", "", "drd-restore-test-0123456789abcdef")
    assert staging_image(VM, TOKEN) == ImageRef("rbd", "water", "drd-restore-0123456789abcdef")
    assert replaced_image(VM, TOKEN).name == "drd-replaced-0123456789abcdef"
    with pytest.raises(ValueError, match="16 lowercase hex digits"):
        backup_snapshot_name("monday")


@pytest.mark.parametrize(("name", "ours"), [
    ("drd-backup-0123456789abcdef", True),
    ("drd-backup-monday", False),  # a tenant's own snapshot: never swept
    ("drd-backup-0123456789ABCDEF", False),
    ("drd-backup-0123456789abcdef0", False),
    ("x-drd-backup-0123456789abcdef", False),
])
def test_only_snapshots_a_backup_took_are_sweepable(name: str, ours: bool) -> None:
    assert is_backup_snapshot(name) is ours


PLAIN = ExistingImage(size=1 << 20, mirroring=False, watchers=0, snapshots=())


def test_a_new_target_may_always_be_restored() -> None:
    assert restore_refusal(VM, None, force=False) is None
    assert restore_refusal(VM, None, force=True) is None


def test_an_existing_target_needs_force() -> None:
    assert restore_refusal(VM, PLAIN, force=False) == (
        "image rbd/water/vm-1 already exists; restore into a new image, or give --force "
        "to replace it")
    assert restore_refusal(VM, PLAIN, force=True) is None


def test_force_never_replaces_what_deleting_would_break() -> None:
    mirrored = restore_refusal(VM, ExistingImage(1, mirroring=True, watchers=0, snapshots=()),
                               force=True)
    assert mirrored is not None
    assert mirrored.startswith("image rbd/water/vm-1 is mirrored to other sites; replacing it "
                               "would break its replication, even with --force")
    in_use = restore_refusal(VM, ExistingImage(1, mirroring=False, watchers=2, snapshots=()),
                             force=True)
    assert in_use is not None and "in use: 2 client(s) have it open" in in_use
    snapped = restore_refusal(VM, ExistingImage(1, False, 0, tuple(f"s{i}" for i in range(7))),
                              force=True)
    assert snapped is not None
    assert "has 7 snapshot(s) (s0, s1, s2, s3, s4, ...) that replacing it would delete" in snapped
