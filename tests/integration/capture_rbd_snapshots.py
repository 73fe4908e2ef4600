"""Capture cls_rbd's snapshot replies from a real lab, for the codec's unit tests.

    .venv/bin/python -m tests.integration.capture_rbd_snapshots LAB_DIR OUT.json

On a lab that is up: makes snapshot-mirrored images on site a (one with a user
snapshot, one whose copy is caught mid-sync, one demoted), waits for the copies on b,
and records, per image and site, the raw `get_snapcontext` and `snapshot_get` replies
beside what librbd says of the same snapshots. librbd's view is the expected value.
"""

import json
import sys
import time
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

import rbd

from drd.ceph import rbd_images
from drd.ceph.cluster import CephError, connect
from drd.domain.replication_plan import ImageRef
from drd.lab.lab_store import load_description
from tests.integration.rbd_images import MiB, create_mirrored_image, pool, random_bytes, write

RUN = uuid.uuid4().hex[:6]
BUFFER = 1 << 20  # synchronous execute refuses (ERANGE) a larger reply; none comes near


def raw_replies(ioctx: Any, image_id: str) -> dict[str, Any]:
    header = f"rbd_header.{image_id}"
    _, context = ioctx.execute(header, "rbd", "get_snapcontext", b"", BUFFER)
    count = int.from_bytes(context[8:12], "little")
    snap_ids = [int.from_bytes(context[12 + 8 * n:20 + 8 * n], "little") for n in range(count)]
    snaps = {}
    for snap_id in snap_ids:
        _, reply = ioctx.execute(header, "rbd", "snapshot_get", snap_id.to_bytes(8, "little"),
                                 BUFFER)
        snaps[str(snap_id)] = reply.hex()
    return {"get_snapcontext": context.hex(), "snapshot_get": snaps}


def librbd_view(ioctx: Any, name: str) -> list[dict[str, Any]]:
    """Every snapshot as librbd gives it; the mirror fields for mirror snapshots."""
    view = []
    with rbd.Image(ioctx, name, read_only=True) as image:
        for snap in image.list_snaps():
            entry = {"id": snap["id"], "name": snap["name"], "size": snap["size"],
                     "namespace": snap["namespace"],
                     "timestamp": image.get_snap_timestamp(snap["id"]).isoformat()}
            if snap["namespace"] == rbd.RBD_SNAP_NAMESPACE_TYPE_MIRROR:
                mirror = image.snap_get_mirror_namespace(snap["id"])
                entry["mirror"] = {**mirror,
                                   "mirror_peer_uuids": sorted(mirror["mirror_peer_uuids"])}
            view.append(entry)
    return view


def capture(conf: Path, pool_name: str, name: str, site: str, what: str) -> dict[str, Any]:
    """The raw replies, bracketed by two equal librbd views so that they agree."""
    with connect(conf) as cluster, cluster.open_ioctx(pool_name) as ioctx:
        image_id = rbd_images.image_ids_by_name(cluster, pool_name, "")[name]
        deadline = time.monotonic() + 30
        while True:
            before = librbd_view(ioctx, name)
            snapshots = rbd_images.mirror_snapshots(cluster, ImageRef(pool_name, "", name))
            replies = raw_replies(ioctx, image_id)
            view = librbd_view(ioctx, name)
            if view == before:
                break
            assert time.monotonic() < deadline, f"{name} on {site} never held still"
    return {"what": what, "site": site, "image": name, **replies, "librbd": view,
            "mirror_snapshots": [{**vars(s), "created": s.created.isoformat()}
                                 for s in snapshots]}


def wait_synced(conf: Path, pool_name: str, name: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with connect(conf) as cluster:
                found = rbd_images.mirror_snapshots(cluster, ImageRef(pool_name, "", name))
            if found and found[-1].complete:
                return
        except CephError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"{name} did not sync to {conf} within {timeout} s")


def main(lab_dir: Path, out: Path) -> None:
    lab = load_description(lab_dir)
    assert lab is not None, f"no lab in {lab_dir}"
    a, b = lab.sites["a"], lab.sites["b"]
    captured = []

    plain, demoted, large = (f"codec-{RUN}-{kind}" for kind in ("plain", "demoted", "large"))
    for name in (plain, demoted):
        create_mirrored_image(a, name, 8 * MiB, "snapshot")
        write(a, name, 0, random_bytes(1, MiB))
    with pool(a) as ioctx, rbd.Image(ioctx, plain) as image:
        image.create_snap("before-mirror")  # a user snapshot, which peers copy too
        image.mirror_image_create_snapshot()
        image.mirror_image_create_snapshot()
    for name in (plain, demoted):
        wait_synced(b.conf, b.rbd_pool, name)
    captured.append(capture(a.conf, a.rbd_pool, plain, "a", "primary, with a user snapshot"))
    captured.append(capture(b.conf, b.rbd_pool, plain, "b", "non-primary copy, synced"))

    with pool(a) as ioctx, rbd.Image(ioctx, demoted) as image:
        image.mirror_image_demote()
    deadline = time.monotonic() + 120
    while True:
        entry = capture(b.conf, b.rbd_pool, demoted, "b", "non-primary copy of a demotion")
        if any(s["demoted"] and s["complete"] for s in entry["mirror_snapshots"]):
            break
        assert time.monotonic() < deadline, "the demotion did not reach b"
        time.sleep(0.2)
    captured.append(capture(a.conf, a.rbd_pool, demoted, "a", "primary, demoted"))
    captured.append(entry)

    # Big enough that b's copy is still syncing when it is read.
    create_mirrored_image(a, large, 256 * MiB, "snapshot")
    wait_synced(b.conf, b.rbd_pool, large)
    write(a, large, 0, random_bytes(2, 128 * MiB))
    with pool(a) as ioctx, rbd.Image(ioctx, large) as image:
        image.mirror_image_create_snapshot()
    deadline = time.monotonic() + 60
    while True:
        entry = capture(b.conf, b.rbd_pool, large, "b", "non-primary copy, mid-sync")
        if any(not s["complete"] for s in entry["mirror_snapshots"]):
            break
        assert time.monotonic() < deadline, "never saw b's copy mid-sync"
        time.sleep(0.02)
    captured.append(entry)

    out.write_text(json.dumps({
        "captured_at": datetime.now().astimezone().isoformat(timespec="seconds"),
        "ceph": "16.2.15 (Debian 12), drd lab: pool rbd, sites a (primary) and b",
        "how": "python -m tests.integration.capture_rbd_snapshots LAB_DIR OUT",
        "images": captured}, indent=1) + "\n")


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
