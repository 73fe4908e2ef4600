"""What the replication benchmark sets up in the lab, through librbd, and reads back.

Namespaces on all three sites, images on site a, the second daemon's site config and
the tenants' policies. Also the independent checks: which images site a has
mirror-enabled, and image checksums on every site. Blocking: call from the main thread
or worker threads.
"""

import hashlib
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import rados
import rbd
import yaml
from daemon_process import BenchError, Workspace

from drd.ceph.cluster import CephError, connect
from drd.ceph.rbd_mirror_setup import ensure_namespace
from drd.lab.description import LabDescription

POOL = "rbd"
MIB = 1024**2
BLOCK = 4096
CEPH_TIMEOUT_S = 30.0
READ_CHUNK = 4 * MIB


@dataclass(frozen=True)
class Selection:
    """One block selection of a bench policy; None leaves a destination out."""

    name: str
    namespace: str
    glob: str
    same_city: dict[str, str] | None
    remote: dict[str, str] | None


def snapshot_destination(interval: str, rpo_target: str) -> dict[str, str]:
    return {"mode": "snapshot", "interval": interval, "rpo_target": rpo_target}


def journal_destination(rpo_target: str) -> dict[str, str]:
    return {"mode": "journal", "rpo_target": rpo_target}


def policy_yaml(tenant: str, selections: Iterable[Selection]) -> str:
    """A tenant policy as a tenant would PUT it."""
    block = []
    for selection in selections:
        entry: dict[str, Any] = {"name": selection.name, "pool": POOL,
                                 "namespace": selection.namespace, "images": [selection.glob]}
        if selection.same_city is not None:
            entry["same_city"] = selection.same_city
        if selection.remote is not None:
            entry["remote"] = selection.remote
        block.append(entry)
    return yaml.safe_dump({"tenant": tenant, "protection": {"block": block}}, sort_keys=False)


def grant_tenants(workspace: Workspace, grants: dict[str, str]) -> Path:
    """Give the second daemon its own, empty policies dir and grant each tenant its
    namespace (tenant -> namespace); return the policies dir.

    The lab daemon of site a keeps its own policies dir, so it never reconciles these
    tenants.
    """
    config = yaml.safe_load(workspace.config.read_text())
    policies = workspace.root / "policies"
    policies.mkdir(mode=0o700, exist_ok=True)
    config["paths"]["policies_dir"] = str(policies)
    config["tenants"] = {tenant: {"grants": [{"pool": POOL, "namespace": namespace}]}
                         for tenant, namespace in grants.items()}
    workspace.config.write_text(yaml.safe_dump(config))
    return policies


@contextmanager
def _ioctx(conf: Path, namespace: str) -> Iterator[Any]:
    with connect(conf, timeout=CEPH_TIMEOUT_S) as cluster:
        ioctx = cluster.open_ioctx(POOL)
        try:
            ioctx.set_namespace(namespace)
            yield ioctx
        finally:
            ioctx.close()


def prepare_namespaces(description: LabDescription, namespaces: list[str]) -> None:
    """Each namespace on every site, in image mirroring mode: Pacific mirrors a
    namespace's images only when it exists, in the same mode, on every peer."""
    for site in description.sites.values():
        with connect(site.conf, timeout=CEPH_TIMEOUT_S) as cluster:
            for namespace in namespaces:
                ensure_namespace(cluster, site.rbd_pool, namespace)


def create_images(conf: Path, namespace: str, names: list[str], size: int,
                  first_block: bool) -> None:
    """Thin images of `size` bytes; with `first_block`, 4 KiB of data at offset 0."""
    api = rbd.RBD()
    with _ioctx(conf, namespace) as ioctx:
        existing = set(api.list(ioctx))
        for name in names:
            if name in existing:
                raise BenchError(f"image {POOL}/{namespace}/{name} already exists on site a")
            api.create(ioctx, name, size, old_format=False)
            if first_block:
                with rbd.Image(ioctx, name) as image:
                    image.write(hashlib.sha256(name.encode()).digest() * (BLOCK // 32), 0)


def create_many(conf: Path, plan: dict[str, list[str]], size: int, first_block: bool,
                threads: int = 4) -> None:
    """`create_images` for every namespace of `plan`, a few namespaces at a time."""
    with ThreadPoolExecutor(max_workers=threads) as pool:
        futures = [pool.submit(create_images, conf, namespace, names, size, first_block)
                   for namespace, names in plan.items()]
        for future in futures:
            future.result()


def primary_enabled(conf: Path, namespaces: list[str]) -> int:
    """Images site a holds mirror-enabled and primary, over `namespaces`: one batch call
    per namespace, independent of anything drd reports."""
    api = rbd.RBD()
    count = 0
    with connect(conf, timeout=CEPH_TIMEOUT_S) as cluster:
        for namespace in namespaces:
            ioctx = cluster.open_ioctx(POOL)
            try:
                ioctx.set_namespace(namespace)
                for _, info in api.mirror_image_info_list(ioctx):
                    if info["state"] == rbd.RBD_MIRROR_IMAGE_ENABLED and info["primary"]:
                        count += 1
            finally:
                ioctx.close()
    return count


def image_checksum(cluster: Any, namespace: str, name: str) -> str:
    """sha256 of the image's whole content (HEAD), read-only."""
    digest = hashlib.sha256()
    try:
        ioctx = cluster.open_ioctx(POOL)
        try:
            ioctx.set_namespace(namespace)
            with rbd.Image(ioctx, name, read_only=True) as image:
                size = image.size()
                for offset in range(0, size, READ_CHUNK):
                    digest.update(image.read(offset, min(READ_CHUNK, size - offset)))
        finally:
            ioctx.close()
    except (rbd.Error, rados.Error) as error:
        raise CephError(f"reading {POOL}/{namespace}/{name}: {error}") from error
    return digest.hexdigest()

