"""Capture cls replies on image mirroring from a real lab, for the codec's unit tests.

    .venv/bin/python -m tests.integration.capture_rbd_mirror LAB_DIR OUT.json

On a lab that is up: makes a snapshot- and a journal-mirrored image on site a, waits
for their copies on b, and records, per image and site, the raw `mirror_image_get`,
`get_snapcontext` and newest `snapshot_get` (snapshot mode) or `journal.get_client` and
`journal.tag_list` (journal mode) replies beside librbd's `mirror_image_get_info`,
and on a's journal the `journal.get_client` of b's rbd-mirror beside the id of b's
copy; then the same on a with both images demoted, before promoting them again.
"""

import json
import sys
import time
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

import rados
import rbd

from drd.domain import rbd_mirror_codec as mirror
from drd.domain.rbd_snapshot_codec import decode_snapcontext, encode_snapshot_get_request
from drd.lab.description import SiteRecord
from drd.lab.lab_store import load_description
from tests.integration.rbd_images import MiB, create_mirrored_image, pool, promote

RUN = uuid.uuid4().hex[:6]
BUFFER = 1 << 20  # synchronous execute refuses (ERANGE) a larger reply; none comes near


def raw_replies(ioctx: Any, image_id: str) -> dict[str, str]:
    _, entry = ioctx.execute("rbd_mirroring", "rbd", "mirror_image_get",
                             mirror.encode_mirror_image_get_request(image_id), BUFFER)
    found = {"mirror_image_get": entry.hex()}
    if mirror.decode_mirror_image(entry).mode == mirror.MODE_SNAPSHOT:
        header = f"rbd_header.{image_id}"
        _, context = ioctx.execute(header, "rbd", "get_snapcontext", b"", BUFFER)
        newest = decode_snapcontext(context).snap_ids[0]
        _, snap = ioctx.execute(header, "rbd", "snapshot_get",
                                encode_snapshot_get_request(newest), BUFFER)
        return {**found, "get_snapcontext": context.hex(), "snapshot_get": snap.hex()}
    journal = f"journal.{image_id}"
    _, client = ioctx.execute(journal, "journal", "get_client",
                              mirror.encode_get_client_request(), BUFFER)
    tag_class = mirror.decode_image_client_tag_class(client)
    _, tags = ioctx.execute(journal, "journal", "tag_list",
                            mirror.encode_tag_list_request(tag_class), BUFFER)
    return {**found, "get_client": client.hex(), "tag_list": tags.hex()}


def capture(site: SiteRecord, name: str, what: str) -> dict[str, Any]:
    """The raw replies, bracketed by two equal librbd readings so that they agree."""
    with pool(site) as ioctx:
        image_id = next(i["id"] for i in rbd.RBD().list2(ioctx) if i["name"] == name)
        while True:
            with rbd.Image(ioctx, name, read_only=True) as image:
                before = image.mirror_image_get_info()
            replies = raw_replies(ioctx, image_id)
            with rbd.Image(ioctx, name, read_only=True) as image:
                info = image.mirror_image_get_info()
                mode = image.mirror_image_get_mode()
            if info == before:
                break
    return {"what": what, "site": site.name, "image": name, **replies,
            "librbd": {**info, "mode": mode}}


def peer_registration(primary: SiteRecord, peer: SiteRecord, name: str) -> dict[str, str]:
    """The peer's rbd-mirror client of the primary's journal, and the id of its copy."""
    with pool(peer) as ioctx:
        copy_id = next(i["id"] for i in rbd.RBD().list2(ioctx) if i["name"] == name)
        client_id = rbd.RBD().mirror_uuid_get(ioctx)
    with pool(primary) as ioctx:
        image_id = next(i["id"] for i in rbd.RBD().list2(ioctx) if i["name"] == name)
        deadline = time.monotonic() + 60
        while True:  # the peer registers once it starts replaying
            try:
                _, client = ioctx.execute(f"journal.{image_id}", "journal", "get_client",
                                          mirror.encode_get_client_request(client_id), BUFFER)
                break
            except rados.ObjectNotFound:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)
    return {"peer_get_client": client.hex(), "peer_copy_image_id": copy_id}


def wait_copied(site: SiteRecord, name: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with pool(site) as ioctx:
            try:
                with rbd.Image(ioctx, name, read_only=True) as image:
                    if image.mirror_image_get_info()["state"] == rbd.RBD_MIRROR_IMAGE_ENABLED:
                        return
            except rbd.ImageNotFound:
                pass
        time.sleep(0.5)
    raise SystemExit(f"{name} was not copied to {site.name} within {timeout} s")


def main(lab_dir: Path, out: Path) -> None:
    lab = load_description(lab_dir)
    assert lab is not None, f"no lab in {lab_dir}"
    a, b = lab.sites["a"], lab.sites["b"]
    images = {mode: f"mirrorcodec-{RUN}-{mode}" for mode in ("snapshot", "journal")}
    for mode, name in images.items():
        create_mirrored_image(a, name, 8 * MiB, mode)
    captured = []
    for mode, name in images.items():
        wait_copied(b, name)
        captured.append(capture(a, name, f"{mode} mode, primary"))
        captured.append(capture(b, name, f"{mode} mode, non-primary copy"))
    captured[-2] |= peer_registration(a, b, images["journal"])
    for name in images.values():
        with pool(a) as ioctx, rbd.Image(ioctx, name) as image:
            image.mirror_image_demote()
    for mode, name in images.items():
        captured.append(capture(a, name, f"{mode} mode, demoted"))
    for name in images.values():
        promote(a, name)
    out.write_text(json.dumps({
        "captured_at": datetime.now().astimezone().isoformat(timespec="seconds"),
        "ceph": "16.2.15 (Debian 12), drd lab: pool rbd, sites a (primary) and b",
        "how": "python -m tests.integration.capture_rbd_mirror LAB_DIR OUT",
        "images": captured}, indent=1) + "\n")


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
