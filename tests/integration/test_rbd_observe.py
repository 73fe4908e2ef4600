"""A namespace observed in batched cls calls equals what librbd's
`mirror_image_info_list` gives: snapshot and journal mode, primary and copies,
unmirrored, and demoted images, on the primary site and on a peer."""

import time
import uuid
from collections.abc import Callable, Iterator
from functools import partial

import pytest
import rbd

from drd.ceph import rbd_images
from drd.ceph.cluster import connect
from drd.ceph.rbd_observe import ObservationMemo, observe_pool_batched
from drd.domain.replication_plan import MirrorState, ObservedImage
from drd.lab.description import LabDescription, SiteRecord
from tests.integration.rbd_images import (
    MiB,
    create_mirrored_image,
    demote,
    mirror_snapshot,
    pool,
    promote,
)

RUN = uuid.uuid4().hex[:6]  # a lab reused across runs keeps older images
SNAPSHOT, USER_SNAP, JOURNAL, PLAIN, DEMOTED = (
    f"observe-{RUN}-{kind}" for kind in ("snapshot", "usersnap", "journal", "plain", "demoted"))
MIRRORED = [SNAPSHOT, USER_SNAP, JOURNAL, DEMOTED]
TIMEOUT_S = 120.0


def eventually(check: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + TIMEOUT_S
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not true after {TIMEOUT_S} s")
        time.sleep(0.5)


def mine(images: list[ObservedImage]) -> list[ObservedImage]:
    return sorted((i for i in images if RUN in i.ref.name), key=lambda i: i.ref)


def both(site: SiteRecord) -> tuple[list[ObservedImage], list[ObservedImage]]:
    with connect(site.conf) as cluster:
        return (mine(observe_pool_batched(cluster, site.rbd_pool, "")),
                mine(rbd_images.observe_pool(cluster, site.rbd_pool, "")))


def assert_equal_readings(site: SiteRecord) -> list[ObservedImage]:
    # rbd-mirror may change an image between the two readings: then read both again.
    deadline = time.monotonic() + 30
    while True:
        batched, librbd = both(site)
        if batched == librbd or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert batched == librbd
    return batched


def copied(site: SiteRecord) -> bool:
    return {i.ref.name for i in both(site)[1] if i.state is MirrorState.ENABLED} \
        == set(MIRRORED)


@pytest.fixture(scope="module")
def images(lab: LabDescription) -> Iterator[None]:
    a = lab.sites["a"]
    for name in (SNAPSHOT, USER_SNAP, DEMOTED):
        create_mirrored_image(a, name, 8 * MiB, "snapshot")
        mirror_snapshot(a, name)
    with pool(a) as ioctx:
        with rbd.Image(ioctx, USER_SNAP) as image:
            image.create_snap("newer-than-the-mirror-snapshots")  # the walk steps past it
        rbd.RBD().create(ioctx, PLAIN, 8 * MiB, old_format=False)
    create_mirrored_image(a, JOURNAL, 8 * MiB, "journal")
    for peer in ("b", "c"):
        eventually(partial(copied, lab.sites[peer]), f"every image copied to {peer}")
    yield


@pytest.mark.parametrize("site_name", ["a", "b"])
def test_the_batch_observes_what_librbd_observes(
        lab: LabDescription, images: None, site_name: str) -> None:
    found = assert_equal_readings(lab.sites[site_name])
    by_name = {i.ref.name: i for i in found}
    for name in MIRRORED:
        assert by_name[name].state is MirrorState.ENABLED
        assert by_name[name].primary is (site_name == "a")
    if site_name == "a":
        assert by_name[PLAIN] == ObservedImage(by_name[PLAIN].ref, by_name[PLAIN].image_id,
                                               MirrorState.DISABLED, None, None, None)


def test_a_demoted_image_is_observed_alike_on_both_sites(
        lab: LabDescription, images: None) -> None:
    a, b = lab.sites["a"], lab.sites["b"]
    demote(a, DEMOTED)
    try:
        for site in (a, b):
            found = {i.ref.name: i for i in assert_equal_readings(site)}
            assert found[DEMOTED].primary is False
    finally:
        promote(a, DEMOTED)
    assert {i.ref.name: i for i in assert_equal_readings(a)}[DEMOTED].primary is True


def test_what_one_pass_remembers_never_hides_a_demotion_or_a_promotion(
        lab: LabDescription, images: None) -> None:
    """A reconcile pass keeps what cannot change (snapshot kinds, journal tag classes)
    for the next one; promotion and demotion must still show at once."""
    a = lab.sites["a"]
    memo = ObservationMemo()

    def primaries() -> dict[str, bool | None]:
        with connect(a.conf) as cluster:
            found = mine(observe_pool_batched(cluster, a.rbd_pool, "", memo))
        return {i.ref.name: i.primary for i in found if i.ref.name in (DEMOTED, JOURNAL)}

    assert primaries() == {DEMOTED: True, JOURNAL: True}
    assert primaries() == {DEMOTED: True, JOURNAL: True}  # now read with the memo
    for name in (DEMOTED, JOURNAL):
        demote(a, name)
    try:
        assert primaries() == {DEMOTED: False, JOURNAL: False}
        assert mine(observe_pool_batched_with(a, memo)) == assert_equal_readings(a)
    finally:
        for name in (DEMOTED, JOURNAL):
            promote(a, name)
    assert primaries() == {DEMOTED: True, JOURNAL: True}


def observe_pool_batched_with(site: SiteRecord, memo: ObservationMemo) -> list[ObservedImage]:
    with connect(site.conf) as cluster:
        return observe_pool_batched(cluster, site.rbd_pool, "", memo)
