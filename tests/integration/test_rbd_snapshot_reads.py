"""Mirror snapshots read in one batch of cls_rbd calls, opening no image, equal what
librbd gives one opened image at a time: on the primary and on both peers."""

import time
import uuid
from collections.abc import Callable
from functools import partial

import pytest
import rbd

from drd.ceph import rbd_images
from drd.ceph.cluster import CephError, connect
from drd.domain.replication_plan import ImageRef
from drd.domain.rpo import MirrorSnapshot
from drd.lab.description import LabDescription, SiteRecord
from tests.integration.rbd_images import (
    MiB,
    create_mirrored_image,
    pool,
    random_bytes,
    write,
)

RUN = uuid.uuid4().hex[:6]  # a lab reused across runs keeps older images
NAMES = [f"snapreads-{RUN}-{n}" for n in range(4)]
SYNC_TIMEOUT_S = 120.0
MISSING_ID = "0000deadbeef"


def eventually(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not true after {timeout} s")
        time.sleep(0.5)


def per_image(site: SiteRecord, names: list[str]) -> dict[str, list[MirrorSnapshot]]:
    with connect(site.conf) as cluster:
        return {name: rbd_images.mirror_snapshots(cluster, ImageRef(site.rbd_pool, "", name))
                for name in names}


def batched(site: SiteRecord, names: list[str]) -> dict[str, list[MirrorSnapshot] | CephError]:
    with connect(site.conf) as cluster:
        ids = rbd_images.image_ids_by_name(cluster, site.rbd_pool, "")
        found = rbd_images.mirror_snapshots_many(cluster, site.rbd_pool, "",
                                                 [ids[name] for name in names])
        return {name: found[ids[name]] for name in names}


def synced(site: SiteRecord, newest: dict[str, int]) -> bool:
    """Each copy on `site` holds the primary's newest snapshot complete."""
    try:
        copies = per_image(site, list(newest))
    except CephError:
        return False  # not created on the peer yet
    return all(any(s.complete and s.primary_snap_id == newest[name] for s in copies[name])
               for name in newest)


@pytest.fixture(scope="module")
def newest(lab: LabDescription) -> dict[str, int]:
    """Snapshot-mirrored images with 2 to 5 mirror snapshots each, synced to b and c;
    name -> the id of its newest snapshot on a."""
    a = lab.sites["a"]
    taken = {}
    with connect(a.conf) as cluster:
        for index, name in enumerate(NAMES):
            create_mirrored_image(a, name, 8 * MiB, "snapshot")
            if index == 0:
                with pool(a) as ioctx, rbd.Image(ioctx, name) as image:
                    image.create_snap("not-a-mirror-snapshot")  # copied to the peers too
            for shot in range(index + 1):
                write(a, name, shot * MiB, random_bytes(10 * index + shot, MiB))
                taken[name] = rbd_images.take_mirror_snapshot(
                    cluster, ImageRef(a.rbd_pool, "", name))
    for peer in ("b", "c"):
        eventually(partial(synced, lab.sites[peer], taken), SYNC_TIMEOUT_S,
                   f"every image's newest snapshot complete on {peer}")
    return taken


@pytest.mark.parametrize("site_name", ["a", "b", "c"])
def test_the_batch_reads_what_librbd_reads_image_by_image(
        lab: LabDescription, newest: dict[str, int], site_name: str) -> None:
    site = lab.sites[site_name]
    # rbd-mirror may prune a snapshot between the two readings: then read both again.
    deadline = time.monotonic() + 30
    while True:
        found, expected = batched(site, NAMES), per_image(site, NAMES)
        if found == expected or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert found == expected
    for name, snapshots in found.items():
        assert isinstance(snapshots, list), f"{name}: {snapshots}"
        assert [s.snap_id for s in snapshots] == sorted(s.snap_id for s in snapshots)
        if site_name == "a":
            assert len(snapshots) >= 2  # mirroring enabled, then at least one taken
            assert all(s.primary and s.complete and not s.demoted for s in snapshots)
            assert snapshots[-1].snap_id == newest[name]
        else:
            assert not any(s.primary for s in snapshots)
            assert any(s.complete and s.primary_snap_id == newest[name] for s in snapshots)


def test_a_missing_image_is_an_error_for_that_image_alone(
        lab: LabDescription, newest: dict[str, int]) -> None:
    a = lab.sites["a"]
    with connect(a.conf) as cluster:
        image_id = rbd_images.image_ids_by_name(cluster, a.rbd_pool, "")[NAMES[0]]
        found = rbd_images.mirror_snapshots_many(cluster, a.rbd_pool, "",
                                                 [MISSING_ID, image_id])
        assert rbd_images.mirror_snapshots_many(cluster, a.rbd_pool, "", []) == {}
    present = found[image_id]
    assert isinstance(present, list)
    assert present[-1].snap_id == newest[NAMES[0]]
    missing = found[MISSING_ID]
    assert isinstance(missing, CephError)
    assert str(missing) == (f"reading the snapshots of image id {MISSING_ID} in "
                            f"{a.rbd_pool}: No such file or directory")


def test_a_pool_that_does_not_exist_fails_the_batch(lab: LabDescription) -> None:
    with connect(lab.sites["a"].conf) as cluster, \
            pytest.raises(CephError, match="opening pool no-such-pool"):
        rbd_images.mirror_snapshots_many(cluster, "no-such-pool", "", [MISSING_ID])
