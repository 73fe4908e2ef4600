"""Automatic takeover on a lab of its own: every process of production killed, the
same-city site takes over by itself (lease, quorum and witness), its copies writable
with every byte, the remote site following it; production, returning with its stale
epoch, demotes itself and waits for a failback; the operator's failback hands the lease
back to it. A second tenant declares a service probe of its service at production: while
that service answers (a listener on a's address the test keeps up), b does not take
the tenant over however lost a is to drd; once it stops answering, b does.
"""

import json
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from functools import partial
from typing import Any

import psutil
import pytest
import rbd

from drd.lab.description import DaemonRole, LabDescription
from tests.integration.own_lab import booted, replicated_images, stop
from tests.integration.rbd_images import (
    MiB,
    image_sha256,
    pool,
    random_bytes,
    wait_for_checksum,
    wait_snapshot_copied,
)
from tests.integration.runbook_helpers import (
    NAMESPACE,
    api,
    checksums,
    is_primary,
    kill,
    pids,
    restart_dead,
    steps_told,
    wait_answers,
    wait_ended,
    wait_until,
)
from tests.integration.test_replication import drd

pytestmark = pytest.mark.integration
BLOCK = os.environ.get("DRD_TEST_TAKEOVER_BLOCK", "79")
RUN = uuid.uuid4().hex[:6]
IMAGES = [f"to-{RUN}-j{n}" for n in range(2)] + [f"to-{RUN}-s{n}" for n in range(2)]
SNAPSHOT = [name for name in IMAGES if "-s" in name]
GROUPS = ["water/takeover-journal", "water/takeover-snapshot"]
POLICY = f"""\
tenant: water
protection:
  block:
    - {{name: takeover-journal, pool: rbd, namespace: water, images: ["to-{RUN}-j*"],
       same_city: {{mode: journal, rpo_target: 10s}},
       remote: {{mode: snapshot, interval: 1m, rpo_target: 5m}}, takeover: automatic}}
    - {{name: takeover-snapshot, pool: rbd, namespace: water, images: ["to-{RUN}-s*"],
       same_city: {{mode: snapshot, interval: 1m, rpo_target: 2m}},
       remote: {{mode: snapshot, interval: 1m, rpo_target: 5m}}, takeover: automatic}}
"""
SERVED_IMAGE = f"ts-{RUN}-0"
SERVED_GROUP = "transport/takeover-served"
SERVED_POLICY = f"""\
tenant: transport
protection:
  block:
    - {{name: takeover-served, pool: rbd, namespace: transport, images: ["ts-{RUN}-*"],
       same_city: {{mode: snapshot, interval: 1m, rpo_target: 2m}}, takeover: automatic}}
  service_probes:
    - {{name: ticketing, production: "tcp://{{address}}:{{port}}", timeout: 1s}}
"""
CEPH = {DaemonRole.MON, DaemonRole.MGR, DaemonRole.RBD_MIRROR, DaemonRole.RGW}


@pytest.fixture(scope="module")
def own_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabDescription]:
    """A lab this module may break: production is killed in it."""
    yield from booted(tmp_path_factory.mktemp("takeover") / "lab", BLOCK)


@pytest.fixture(scope="module")
def replicated(own_lab: LabDescription, tmp_path_factory: pytest.TempPathFactory
               ) -> dict[str, str]:
    """The images on a, whole on b; their checksums."""
    policy = tmp_path_factory.mktemp("takeover-policy") / "water.yaml"
    policy.write_text(POLICY)
    return replicated_images(own_lab, IMAGES, 16 * MiB, policy, SNAPSHOT)


class ServiceAtProduction:
    """A tenant's service on a's address: accepts and closes connections until closed."""

    def __init__(self, address: str) -> None:
        self.server = socket.create_server((address, 0))
        self.server.settimeout(0.2)
        self.port = self.server.getsockname()[1]
        self._open = True
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while self._open:
            try:
                connection, _ = self.server.accept()
            except TimeoutError:
                continue
            connection.close()

    def close(self) -> None:
        self._open = False
        self._thread.join()
        self.server.close()


@pytest.fixture(scope="module")
def served(own_lab: LabDescription, tmp_path_factory: pytest.TempPathFactory
           ) -> Iterator[tuple[ServiceAtProduction, str]]:
    """The transport tenant's image on a, whole on b and c, under a policy whose service probe
    points at a listener on a's address; the listener and the image's checksum."""
    lab = own_lab
    service = ServiceAtProduction(lab.sites["a"].address)
    try:
        with pool(lab.sites["a"], "transport") as ioctx:
            rbd.RBD().create(ioctx, SERVED_IMAGE, 4 * MiB, old_format=False)
            with rbd.Image(ioctx, SERVED_IMAGE) as image:
                image.write(random_bytes(77, 4 * MiB), 0)
        policy = tmp_path_factory.mktemp("served-policy") / "transport.yaml"
        policy.write_text(SERVED_POLICY.replace("{address}", lab.sites["a"].address)
                          .replace("{port}", str(service.port)))
        for site in "abc":
            applied = drd(lab, "policy", "apply", str(policy), site=site)
            assert applied.returncode == 0, applied.stderr

        def snapshotted() -> bool:
            try:
                with pool(lab.sites["a"], "transport") as ioctx, \
                        rbd.Image(ioctx, SERVED_IMAGE) as image:
                    image.mirror_image_create_snapshot()
                return True
            except rbd.Error:  # mirroring not enabled by drd yet
                return False
        wait_until(snapshotted, 120, "drd enabled mirroring of the transport image")
        digest = image_sha256(lab.sites["a"], SERVED_IMAGE, "transport")
        # c pulls the whole pool from a, so it holds a copy too: the takeover test counts
        # on that copy pinning c to a (a copy c has not bootstrapped yet pins nothing).
        for site in "bc":
            wait_for_checksum(lab.sites[site], SERVED_IMAGE, digest, timeout=180,
                              namespace="transport")
        wait_snapshot_copied(lab.sites["a"], lab.sites["b"], SERVED_IMAGE,
                             namespace="transport")
        yield service, digest
    finally:
        service.close()


def served_snapshots(lab: LabDescription, site: str) -> list[str]:
    """The served image's snapshots at `site`: id, and the mirror state and completeness."""
    with pool(lab.sites[site], "transport") as ioctx, \
            rbd.Image(ioctx, SERVED_IMAGE, read_only=True) as image:
        told = []
        for snap in image.list_snaps():
            if snap.get("namespace") == rbd.RBD_SNAP_NAMESPACE_TYPE_MIRROR:
                info = image.snap_get_mirror_namespace(snap["id"])
                told.append(f"{snap['id']} state {info['state']} complete {info['complete']}")
            else:
                told.append(f"{snap['id']} {snap['name']}")
        return told


def served_primary(lab: LabDescription, site: str) -> bool:
    with pool(lab.sites[site], "transport") as ioctx, \
            rbd.Image(ioctx, SERVED_IMAGE, read_only=True) as image:
        return bool(image.mirror_image_get_info()["primary"])


def holds_served(lab: LabDescription, site: str, holder: str) -> bool:
    return bool(leases(lab, site).get(SERVED_GROUP, {}).get("holder") == holder)


def probe_answers(lab: LabDescription, site: str) -> bool:
    return any(probe["probe"] == "ticketing" and probe["site_kind"] == "production"
               and probe["answering"] for probe in api(lab, site, "/v1/status")["service_probes"])


def leases(lab: LabDescription, site: str) -> dict[str, dict[str, Any]]:
    return {lease["group"]: lease for lease in api(lab, site, "/v1/status")["leases"]}


def protection(lab: LabDescription, site: str) -> dict[str, dict[str, Any]]:
    return {view["group"]: view for view in api(lab, site, "/v1/status")["protection"]}


def held_by(lab: LabDescription, site: str, holder: str, epoch: int) -> bool:
    seen = leases(lab, site)
    return all(seen.get(group, {}).get("holder") == holder
               and seen[group].get("epoch") == epoch for group in GROUPS)


def primaries(lab: LabDescription, site: str) -> list[str]:
    return [name for name in IMAGES if is_primary(lab.sites[site], name)]


def test_production_lost_is_taken_over_by_the_same_city_site_and_fenced_on_return(
        own_lab: LabDescription, replicated: dict[str, str],
        served: tuple[ServiceAtProduction, str]) -> None:
    lab = own_lab
    service, served_digest = served
    for site in "abc":
        wait_until(partial(held_by, lab, site, "a", 1), 60, f"{site} promised a epoch 1")
        wait_until(partial(holds_served, lab, site, "a"), 60,
                   f"{site} promised a the served group")
    wait_until(partial(probe_answers, lab, "b"), 30, "b's probe of the service at a answers")
    assert leases(lab, "a")[GROUPS[0]]["move"] == "renew"

    # (Only a's drd killed, with nothing moving, is the chaos smoke experiment
    # production-drd-killed: tests/integration/test_chaos_smoke.py.)

    # Every process of a dies.
    killed_at = time.monotonic()  # from the OSD's stop: an upper bound
    stop(pids(lab.dir, "a", {DaemonRole.OSD}))  # SIGTERM: memstore keeps a's data
    kill(pids(lab.dir, "a", CEPH | {DaemonRole.DRD}))
    wait_until(lambda: primaries(lab, "b") == IMAGES, 90, "b took over")
    promoted = time.monotonic() - killed_at
    wait_until(lambda: all(leases(lab, "b")[group]["takeover"].get("running") is False
                           for group in GROUPS), 300, "the takeover run ended")
    taken = leases(lab, "b")[GROUPS[0]]["takeover"]
    print(f"\nb primary {promoted:.1f} s after a was killed; takeover: "
          f"{json.dumps(taken, default=str)}")
    run = api(lab, "b", f"/v1/runs/{taken['run']}")
    print(steps_told(run))
    assert taken["run_state"] == "succeeded", taken
    assert taken["from"] == "a" and taken["epoch"] == 2 and set(taken["groups"]) == set(GROUPS)
    assert checksums(lab.sites["b"], IMAGES) == replicated  # nothing acknowledged was lost
    assert held_by(lab, "b", "b", 2) and held_by(lab, "c", "b", 2)
    # a is lost to drd, but the transport tenant's service still answers there: b stays.
    vetoed = leases(lab, "b")[SERVED_GROUP]
    assert vetoed["move"] == "stay" and "still answers at a" in vetoed["reason"], vetoed
    assert not served_primary(lab, "b")
    # c pulls the whole pool from one peer (Pacific), and holds a copy of transport's
    # image, still primary on a: the water run left c pulling from a, and said why.
    follow = next(step for step in run["steps"] if step["name"] == "remote-follows-target")
    assert follow["state"] == "failed" and "rbd/transport/" in follow["error"], follow
    assert protection(lab, "b")[GROUPS[0]]["state"] == "unprotected"

    # The service stops answering: the veto lifts after the answer window, and b takes
    # the transport tenant over too, with every byte; its run re-points c to b, since
    # now every image of the pool is primary there.
    service.close()
    silent_at = time.monotonic()
    wait_until(partial(served_primary, lab, "b"), 60, "b took the silent tenant over")
    print(f"transport taken over {time.monotonic() - silent_at:.1f} s after its service "
          f"stopped answering")
    if image_sha256(lab.sites["b"], SERVED_IMAGE, "transport") != served_digest:
        transport_run = leases(lab, "b")[SERVED_GROUP]["takeover"].get("run")
        raise AssertionError(
            f"b's copy of the served image changed in its takeover; its snapshots: "
            f"{served_snapshots(lab, 'b')}; the run:\n"
            + steps_told(api(lab, "b", f"/v1/runs/{transport_run}")))
    for name in IMAGES:  # the remote site follows the new primary
        wait_for_checksum(lab.sites["c"], name, replicated[name], timeout=180,
                          namespace=NAMESPACE)
    # b's status called the water groups unprotected from the takeover until c followed
    # b (measured from b: c's copies replay and are within target); with a lost they stay
    # degraded, and the takeover says how long the gap was.
    try:
        wait_until(lambda: all(protection(lab, "b").get(group, {}).get("state") == "degraded"
                               for group in GROUPS), 240, "b's groups protected again by c")
    except AssertionError as error:
        rows = [(r["image"], r["destination"], r["site"], r["rpo_state"], r["detail"])
                for r in api(lab, "b", "/v1/rpo")["rows"]]
        raise AssertionError(f"{error}: {protection(lab, 'b')}; b's RPO: {rows}") from None
    for group in GROUPS:
        view = protection(lab, "b")[group]
        assert "same_city (a)" in view["reason"], view
        assert view["protected_again_seconds"] > 0, view
        assert leases(lab, "b")[group]["takeover"]["protected_again_seconds"] == \
            view["protected_again_seconds"]
    print(f"unprotected after the takeover: "
          f"{ {g: v['protected_again_seconds'] for g, v in protection(lab, 'b').items()} }")

    # a returns with epoch 1 and its copies primary. b, the holder, fences them as soon
    # as a's Ceph answers; a's own drd, starting later, fences whatever is left once a
    # majority tells it of epoch 2. Either way a ends demoted and knowing epoch 2.
    restart_dead(lab)
    wait_answers(lab, "a")
    try:
        wait_until(lambda: primaries(lab, "a") == [] and held_by(lab, "a", "b", 2), 60,
                   "a's copies fenced and a told of epoch 2")
    except AssertionError as error:
        raise AssertionError(f"{error}; a's log:\n" + "\n".join(log_of(lab, "a"))) from None
    fenced = ([line for line in log_of(lab, "b") if "fenced the old primary's" in line]
              + [lease["fenced"] for lease in leases(lab, "a").values()
                 if "newer than this site's 1" in lease["fenced"]])
    assert fenced, (log_of(lab, "a"), log_of(lab, "b"))
    assert primaries(lab, "b") == IMAGES  # never two primaries
    assert all(psutil.pid_exists(pid) for pid in pids(lab.dir, "b", {DaemonRole.DRD}))

    # The operator fails back; b, its images demoted, hands the lease over and a claims
    # it at epoch 3, no longer fenced.
    started = drd(lab, "failback", "--tenant", "water", "--from", "b", "--to", "a",
                  "--json", "--no-wait", site="b")
    assert started.returncode == 0, started.stderr
    paused = wait_ended(lab, "b", json.loads(started.stdout)["id"], timeout=300)
    assert paused["state"] == "paused", steps_told(paused)
    resumed = drd(lab, "runbook", "resume", str(paused["id"]), "--confirm-winner", "b",
                  "--json", "--no-wait", site="b")
    assert resumed.returncode == 0, resumed.stderr
    view = wait_ended(lab, "b", paused["id"], timeout=600)
    assert view["state"] == "succeeded", steps_told(view)
    assert primaries(lab, "a") == IMAGES and primaries(lab, "b") == []
    try:
        for site in "abc":
            wait_until(partial(held_by, lab, site, "a", 3), 30, f"{site} promised a epoch 3")
    except AssertionError as error:
        raise AssertionError(f"{error}\n{lease_story(lab)}") from None
    assert all(leases(lab, "a")[group]["fenced"] == "" for group in GROUPS)


def lease_story(lab: LabDescription) -> str:
    """Every site's view of the water groups' leases, and its drd's log lines about them."""
    told = []
    for site in "abc":
        views = {group: {key: view.get(key) for key in ("holder", "epoch", "move", "reason",
                                                        "fenced")}
                 for group, view in leases(lab, site).items() if group in GROUPS}
        told += [f"{site}'s leases: {json.dumps(views)}", f"{site}'s log:", *log_of(lab, site)]
    return "\n".join(told)


def log_of(lab: LabDescription, site: str) -> list[str]:
    """The site drd's log lines about leases, fencing and takeovers."""
    lines = []
    for path in (lab.dir / site / "log").glob("drd*"):
        lines += [line[:400] for line in path.read_text(errors="replace").splitlines()
                  if any(word in line for word in ("lease", "fenc", "taking over"))]
    return lines[-40:]
