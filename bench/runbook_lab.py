"""What the runbook benchmark sets up in the lab and checks there, through librbd and
drd's own adapters, independently of the runbook engine it measures.

The tenant's images live in a namespace of their own, `rbd/<tenant>`, created on every
site; no lab daemon's policy names it, so no daemon touches them. Mirroring is enabled
the way drd's daemon does it: the tenant's policy, reduced to selections
(drd.domain.protection), goes through one pass of drd's reconciler on site a. The data
is written before mirroring is enabled, so rbd-mirror copies it in its initial sync and
never bootstraps a journal image that is being written (which crashes Ceph 16.2.15,
see tests/integration/rbd_images.py). Blocking: call from the main thread or workers.
"""

import hashlib
import os
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import rados
import rbd
from daemon_process import BenchError
from replication_lab import prepare_namespaces

from drd.ceph import rbd_images
from drd.ceph.cluster import CephError, ClusterHandle, connect
from drd.domain.drill import DRILL_NAMESPACE, run_snapshots
from drd.domain.protection import protection_specs
from drd.domain.replay_progress import snapshot_in_sync
from drd.domain.replication_plan import ImageRef, MirrorMode
from drd.domain.tenant_policy import TenantPolicy
from drd.lab.description import DaemonRole, LabDescription
from drd.lab.processes import is_running
from drd.replication.reconciler import reconcile_once

POOL = "rbd"
MIB = 1024**2
CLIENT = "admin"
CEPH_TIMEOUT_S = 30.0
WRITE_CHUNK = 4 * MIB
THREADS = 8  # images written or read at once per site
POLL_S = 1.0
JOURNAL_PREFIX = "jrn-"
SNAPSHOT_PREFIX = "snp-"


@dataclass(frozen=True)
class Tenant:
    """The benchmark's tenant: its name is also its namespace."""

    name: str
    journal: tuple[str, ...]
    snapshot: tuple[str, ...]
    size: int

    @property
    def images(self) -> list[str]:
        return [*self.journal, *self.snapshot]

    def mode(self, image: str) -> MirrorMode:
        return MirrorMode.JOURNAL if image in self.journal else MirrorMode.SNAPSHOT

    def policy(self) -> TenantPolicy:
        """Journal mode to the same-city site for `jrn-*`, snapshot mode for `snp-*`;
        Pacific mirrors a pool to all its peers, so site c gets copies too."""
        return TenantPolicy.model_validate({"tenant": self.name, "protection": {"block": [
            {"name": "databases", "pool": POOL, "namespace": self.name,
             "images": [f"{JOURNAL_PREFIX}*"],
             "same_city": {"mode": "journal", "rpo_target": "30s"}},
            {"name": "volumes", "pool": POOL, "namespace": self.name,
             "images": [f"{SNAPSHOT_PREFIX}*"],
             "same_city": {"mode": "snapshot", "interval": "1m", "rpo_target": "2m"}}]}})


def make_tenant(name: str, journal: int, snapshot: int, size: int) -> Tenant:
    return Tenant(name, tuple(f"{JOURNAL_PREFIX}{n:03d}" for n in range(journal)),
                  tuple(f"{SNAPSHOT_PREFIX}{n:03d}" for n in range(snapshot)), size)


def _in_namespace(cluster: Any, namespace: str) -> Any:
    ioctx = cluster.open_ioctx(POOL)
    ioctx.set_namespace(namespace)
    return ioctx


def _parallel(work: Callable[[str], Any], names: Sequence[str]) -> list[Any]:
    with ThreadPoolExecutor(max_workers=THREADS) as pool:
        return list(pool.map(work, names))


def create_images(lab: LabDescription, tenant: Tenant) -> None:
    """The namespace on every site, then the images on a, each full of random data."""
    prepare_namespaces(lab, [tenant.name])
    with connect(lab.sites["a"].conf, CLIENT, CEPH_TIMEOUT_S) as cluster:
        ioctx = _in_namespace(cluster, tenant.name)
        try:
            existing = set(rbd.RBD().list(ioctx))
            if existing & set(tenant.images):
                raise BenchError(f"{POOL}/{tenant.name} on site a already holds images")

            def fill(name: str) -> None:
                rbd.RBD().create(ioctx, name, tenant.size, old_format=False)
                with rbd.Image(ioctx, name) as image:
                    for offset in range(0, tenant.size, WRITE_CHUNK):
                        image.write(os.urandom(min(WRITE_CHUNK, tenant.size - offset)),
                                    offset)
            _parallel(fill, tenant.images)
        finally:
            ioctx.close()


def enable_mirroring(lab: LabDescription, tenant: Tenant) -> int:
    """One pass of drd's reconciler on site a with the tenant's policy; images enabled."""
    selections = [spec.selection for spec in protection_specs({tenant.name: tenant.policy()})]
    handle = ClusterHandle(lab.sites["a"].conf, CLIENT, CEPH_TIMEOUT_S)
    try:
        report = reconcile_once(handle, selections, production_site=True)
    finally:
        handle.close()
    if report.failed or report.pool_errors:
        raise BenchError("drd's reconciler could not enable mirroring: "
                         + "; ".join([o.error for o in report.failed] + list(report.pool_errors)))
    return len(report.outcomes)


def checksums(conf: Path, tenant: Tenant, names: Sequence[str] | None = None) -> dict[str, str]:
    """sha256 of each image's whole content (HEAD) on one site; "missing" if it has none."""
    with connect(conf, CLIENT, CEPH_TIMEOUT_S) as cluster:
        ioctx = _in_namespace(cluster, tenant.name)
        try:
            def digest(name: str) -> str:
                hashed = hashlib.sha256()
                try:
                    with rbd.Image(ioctx, name, read_only=True) as image:
                        size = image.size()
                        for offset in range(0, size, WRITE_CHUNK):
                            hashed.update(image.read(offset, min(WRITE_CHUNK, size - offset)))
                except rbd.ImageNotFound:
                    return "missing"
                except (rbd.Error, rados.Error) as error:
                    return f"unreadable: {error}"
                return hashed.hexdigest()
            wanted = list(names if names is not None else tenant.images)
            return dict(zip(wanted, _parallel(digest, wanted), strict=True))
        finally:
            ioctx.close()


def wait_equal(conf: Path, tenant: Tenant, expected: dict[str, str], timeout: float,
               each_poll: Callable[[], object] = lambda: None) -> tuple[float, dict[str, str]]:
    """Poll a site until every image hashes as `expected`, calling `each_poll` first
    each time; the seconds it took and the images still different (with what they
    hash to) when the timeout came first."""
    started = time.monotonic()
    pending = dict(expected)
    found: dict[str, str] = {}
    while True:
        each_poll()
        found = checksums(conf, tenant, sorted(pending))
        pending = {name: digest for name, digest in pending.items() if found[name] != digest}
        if not pending or time.monotonic() - started > timeout:
            return time.monotonic() - started, {n: found[n] for n in pending}
        time.sleep(POLL_S)


def wait_snapshot_copies(lab: LabDescription, site: str, tenant: Tenant, timeout: float,
                         each_poll: Callable[[], object] = lambda: None) -> float:
    """Until `site` holds a complete copy of a's newest mirror snapshot of every
    snapshot-mode image; the seconds it took. Equal content is not enough: rbd-mirror
    marks a copy complete only after its last write, and a forced promote rolls a copy
    back to its newest complete snapshot."""
    started = time.monotonic()
    refs = [ImageRef(POOL, tenant.name, name) for name in tenant.snapshot]
    with connect(lab.sites["a"].conf, CLIENT, CEPH_TIMEOUT_S) as primary, \
            connect(lab.sites[site].conf, CLIENT, CEPH_TIMEOUT_S) as copy:
        while True:
            each_poll()
            waiting = {}
            for ref in refs:
                try:
                    progress = snapshot_in_sync(rbd_images.mirror_snapshots(primary, ref),
                                                rbd_images.mirror_snapshots(copy, ref))
                except CephError as error:
                    waiting[ref.name] = str(error)
                    continue
                if not progress.done:
                    waiting[ref.name] = progress.detail
            if not waiting:
                return time.monotonic() - started
            refs = [ref for ref in refs if ref.name in waiting]
            if time.monotonic() - started > timeout:
                first = next(iter(waiting.items()))
                raise BenchError(f"{len(waiting)} snapshot-mode copies on {site} are not "
                                 f"complete after {timeout:.0f} s; {first[0]} {first[1]}")
            time.sleep(POLL_S)


def wait_replaying(lab: LabDescription, tenant: Tenant, timeout: float,
                   each_poll: Callable[[], object] = lambda: None) -> float:
    """Until rbd-mirror on every peer of a reports each journal image replaying, as the
    writers need (see the module docstring); the seconds it took."""
    started = time.monotonic()
    with connect(lab.sites["a"].conf, CLIENT, CEPH_TIMEOUT_S) as cluster:
        peers = set(rbd_images.peer_mirror_uuids(cluster, POOL))
        ids = rbd_images.image_ids_by_name(cluster, POOL, tenant.name)
        wanted = [ids[name] for name in tenant.journal]
        while True:
            each_poll()
            statuses = rbd_images.peer_statuses(cluster, POOL, tenant.name)
            waiting = [i for i in wanted if {s.site for s in statuses.get(i, [])
                                             if s.up and s.state == "replaying"} != peers]
            if not waiting:
                return time.monotonic() - started
            if time.monotonic() - started > timeout:
                raise BenchError(f"{len(waiting)} of {len(wanted)} journal images are not "
                                 f"replaying on every peer after {timeout:.0f} s")
            time.sleep(POLL_S)


def dead_mirrors(lab: LabDescription) -> list[str]:
    """rbd-mirror daemons of the lab that are no longer running."""
    return [p.entity for _, p in lab.all_processes()
            if p.role is DaemonRole.RBD_MIRROR and not is_running(p)]


def take_mirror_snapshots(conf: Path, tenant: Tenant, names: Sequence[str]) -> None:
    """A mirror snapshot of each named snapshot-mode image, as drd's schedule takes them."""
    with connect(conf, CLIENT, CEPH_TIMEOUT_S) as cluster:
        ioctx = _in_namespace(cluster, tenant.name)
        try:
            for name in names:
                if tenant.mode(name) is MirrorMode.SNAPSHOT:
                    with rbd.Image(ioctx, name) as image:
                        image.mirror_image_create_snapshot()
        finally:
            ioctx.close()


def drill_leftovers(lab: LabDescription, tenant: Tenant, run_id: int) -> list[str]:
    """Everything of one drill run on every site: its clones, and its snapshots on the
    tenant's images, in the trash namespace too."""
    found = []
    names = set(run_snapshots(run_id))
    for site, record in sorted(lab.sites.items()):
        with connect(record.conf, CLIENT, CEPH_TIMEOUT_S) as cluster:
            drills = _in_namespace(cluster, DRILL_NAMESPACE)
            try:
                found += [f"{site}: clone {DRILL_NAMESPACE}/{n}" for n in rbd.RBD().list(drills)
                          if n.startswith(f"{tenant.name}-") and n.endswith(f"-run{run_id}")]
            except rbd.Error:
                pass  # no drill namespace on this site: no clone either
            finally:
                drills.close()
            ioctx = _in_namespace(cluster, tenant.name)
            try:
                for name in tenant.images:
                    found += [f"{site}: {name}@{kept}" for kept in _snapshot_names(ioctx, name)
                              if kept in names]
            finally:
                ioctx.close()
    return found


def _snapshot_names(ioctx: Any, name: str) -> list[str]:
    try:
        with rbd.Image(ioctx, name, read_only=True) as image:
            kept = []
            for snap in image.list_snaps():
                if snap.get("namespace") == rbd.RBD_SNAP_NAMESPACE_TYPE_TRASH:
                    kept.append(str(image.snap_get_trash_namespace(snap["id"])["original_name"]))
                else:
                    kept.append(str(snap["name"]))
            return kept
    except rbd.ImageNotFound:
        return []


def remove_tenant(lab: LabDescription, tenant: Tenant) -> list[str]:
    """On a reused lab: disable mirroring on the primary side (the peers then delete their
    copies) and delete the images; what could not be removed."""
    problems = []
    for site in ("a", "b"):
        try:
            with connect(lab.sites[site].conf, CLIENT, CEPH_TIMEOUT_S) as cluster:
                ioctx = _in_namespace(cluster, tenant.name)
                try:
                    for name in rbd.RBD().list(ioctx):
                        _remove_if_primary(ioctx, name)
                finally:
                    ioctx.close()
        except (CephError, rbd.Error, rados.Error) as error:
            problems.append(f"site {site}: {error}")
    return problems


def _remove_if_primary(ioctx: Any, name: str) -> None:
    try:
        with rbd.Image(ioctx, name) as image:
            info = image.mirror_image_get_info()
            if info["state"] == rbd.RBD_MIRROR_IMAGE_ENABLED and not info["primary"]:
                return  # the primary's site removes it, and mirroring its copy here
            for snap in list(image.list_snaps()):
                if snap.get("namespace") == rbd.RBD_SNAP_NAMESPACE_TYPE_USER:
                    image.remove_snap(snap["name"])
            if info["state"] == rbd.RBD_MIRROR_IMAGE_ENABLED:
                image.mirror_image_disable(False)
        rbd.RBD().remove(ioctx, name)
    except rbd.ImageNotFound:
        pass  # a copy rbd-mirror removed meanwhile, its primary gone
