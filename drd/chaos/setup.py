"""Bring a lab to where every chaos run starts: the experiment's images exist on
production, replicate to the same-city site, and their group's lease is held by
production, as every site agrees.
"""

import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import rados
import rbd

from drd.chaos.lab_access import LabAccess
from drd.chaos.primary_watch import primaries
from drd.chaos.write_load import open_cluster

TENANT = "transport"  # the lab's second tenant: the takeover tests use the first
NAMESPACE = TENANT
GROUP_NAME = "chaos"
GROUP = f"{TENANT}/{GROUP_NAME}"
RPO_TARGET_SECONDS = 10
IMAGE_BYTES = 16 * 1024 * 1024
READY_TIMEOUT = 240.0

POLICY = f"""\
tenant: {TENANT}
protection:
  block:
    - name: {GROUP_NAME}
      pool: rbd
      namespace: {NAMESPACE}
      images: ["chaos-*"]
      same_city: {{mode: journal, rpo_target: {RPO_TARGET_SECONDS}s}}
      remote: {{mode: snapshot, interval: 1m, rpo_target: 5m}}
      takeover: automatic
"""


class NotReady(Exception):
    """The lab is not in the state a chaos run starts from; the message says why."""


def image_names(count: int) -> list[str]:
    return [f"chaos-{number}" for number in range(count)]


def prepare(access: LabAccess, images: list[str]) -> None:
    """Create the images missing on production, apply the policy everywhere, and wait
    until the run can start; NotReady saying what never came about."""
    lab = access.lab
    production = lab.sites["a"]
    cluster = open_cluster(production)
    try:
        with cluster.open_ioctx(production.rbd_pool) as ioctx:
            ioctx.set_namespace(NAMESPACE)
            existing = set(rbd.RBD().list(ioctx))
            for name in images:
                if name not in existing:
                    rbd.RBD().create(ioctx, name, IMAGE_BYTES, old_format=False)
    finally:
        cluster.shutdown()
    with tempfile.TemporaryDirectory(prefix="drd-chaos-") as scratch:
        policy = Path(scratch) / f"{TENANT}.yaml"
        policy.write_text(POLICY)
        for site in sorted(lab.sites):
            applied = access.cli(site, "policy", "apply", str(policy))
            if applied.returncode != 0:
                raise NotReady(f"the chaos policy was refused on {site}: "
                               f"{applied.stderr.strip()}")
    _wait(lambda: _replicating(access, images), "production's images replicating to b")
    _wait(lambda: all(_held_by_production(access, site) for site in sorted(lab.sites)),
          f"every site promising the lease of {GROUP} to a")


def _replicating(access: LabAccess, images: list[str]) -> bool:
    lab = access.lab
    wanted = {"a": True, "b": False}
    for site, primary in wanted.items():
        try:
            cluster = open_cluster(lab.sites[site])
        except rados.Error:
            return False
        try:
            with cluster.open_ioctx(lab.sites[site].rbd_pool) as ioctx:
                ioctx.set_namespace(NAMESPACE)
                seen = primaries(ioctx, images)
        except (rados.Error, rbd.Error):
            return False
        finally:
            cluster.shutdown()
        if seen != dict.fromkeys(images, primary):
            return False
    return True


def _held_by_production(access: LabAccess, site: str) -> bool:
    lease = access.leases(site).get(GROUP)
    return lease is not None and lease.get("holder") == "a" and not lease.get("fenced")


def _wait(check: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + READY_TIMEOUT
    while not check():
        if time.monotonic() > deadline:
            raise NotReady(f"not within {READY_TIMEOUT:.0f} s: {what}; is production "
                           f"primary? a lab left after a takeover needs a failback first")
        time.sleep(1.0)
