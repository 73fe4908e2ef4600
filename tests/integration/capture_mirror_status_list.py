"""Capture `rbd.mirror_image_status_list` replies from a real lab, for the codec's tests.

    .venv/bin/python -m tests.integration.capture_mirror_status_list LAB_DIR OUT.json

On a lab that is up: makes a snapshot- and a journal-mirrored image on site a in a
namespace of its own, waits for their copies on b, and records on both sites the raw
reply for that namespace beside librbd's `mirror_image_get_info` and mode per image id.
"""

import json
import sys
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

import rbd

from drd.ceph import rbd_images
from drd.ceph.cluster import connect
from drd.domain import rbd_mirror_codec as mirror
from drd.lab.description import SiteRecord
from drd.lab.lab_store import load_description
from tests.integration.capture_rbd_mirror import BUFFER, wait_copied
from tests.integration.rbd_images import MiB, create_mirrored_image

RUN = uuid.uuid4().hex[:6]


def capture(site: SiteRecord) -> dict[str, Any]:
    with connect(site.conf) as cluster:
        ioctx = rbd_images.pool_ioctx(cluster, site.rbd_pool, "")
        try:
            _, reply = ioctx.execute("rbd_mirroring", "rbd", "mirror_image_status_list",
                                     mirror.encode_mirror_image_status_list_request(),
                                     BUFFER)
            librbd = {}
            for listed in rbd.RBD().list2(ioctx):
                with rbd.Image(ioctx, listed["name"], read_only=True) as image:
                    info = image.mirror_image_get_info()
                    if info["state"] != rbd.RBD_MIRROR_IMAGE_DISABLED:
                        librbd[listed["id"]] = {
                            "global_id": info["global_id"], "state": info["state"],
                            "mode": image.mirror_image_get_mode()}
        finally:
            ioctx.close()
    return {"site": site.name, "mirror_image_status_list": reply.hex(), "librbd": librbd}


def main(lab_dir: Path, out: Path) -> None:
    lab = load_description(lab_dir)
    assert lab is not None, f"no lab in {lab_dir}"
    a, b = lab.sites["a"], lab.sites["b"]
    for mode in ("snapshot", "journal"):
        create_mirrored_image(a, f"statuslist-{RUN}-{mode}", 8 * MiB, mode)
        wait_copied(b, f"statuslist-{RUN}-{mode}")
    out.write_text(json.dumps({
        "captured_at": datetime.now().astimezone().isoformat(timespec="seconds"),
        "ceph": "16.2.15 (Debian 12), drd lab: pool rbd, sites a (primary) and b",
        "how": "python -m tests.integration.capture_mirror_status_list LAB_DIR OUT",
        "sites": [capture(a), capture(b)]}, indent=1) + "\n")


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
