"""The failure detector's Ceph signal on the real lab: every site's monitors answer with a
quorum and a RADOS object round-trips; a site frozen with SIGSTOP fails the probe within
the handle's deadline, and answers again once it resumes."""

import contextlib
import os
import signal
import time
from collections.abc import Iterator

import pytest

from drd.ceph.cluster import CephError, ClusterHandle
from drd.ceph.site_probe import probe_site
from drd.lab.description import DaemonRole, LabDescription
from tests.integration.rbd_images import pool
from tests.integration.runbook_helpers import pids

pytestmark = pytest.mark.integration
DEADLINE = 2.0


@contextlib.contextmanager
def frozen(process_ids: list[int]) -> Iterator[None]:
    """SIGSTOP the processes; SIGCONT them whatever happens."""
    try:
        for pid in process_ids:
            os.kill(pid, signal.SIGSTOP)
        yield
    finally:
        for pid in process_ids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)


@pytest.mark.parametrize("site", ["a", "b", "c"])
def test_each_sites_quorum_answers_and_an_object_round_trips(lab: LabDescription,
                                                             site: str) -> None:
    record = lab.sites[site]
    handle = ClusterHandle(record.conf, "admin", DEADLINE)
    try:
        probe = handle.run(lambda cluster: probe_site(cluster, "rbd", "tester"))
    finally:
        handle.close()
    assert probe.quorum == [site] and probe.mons == 1
    assert probe.round_trip_ms < 1000 * DEADLINE
    with pool(record) as ioctx:
        written = ioctx.read("drd.probe.tester").decode()
    assert written.startswith("tester ")
    assert abs(int(written.split()[1]) - time.time_ns()) < 60 * 10**9


def test_a_frozen_site_fails_the_probe_within_the_deadline_and_answers_after(
        lab: LabDescription) -> None:
    record = lab.sites["c"]
    handle = ClusterHandle(record.conf, "admin", DEADLINE)
    try:
        handle.run(lambda cluster: probe_site(cluster, "rbd", "tester"))  # connected
        with frozen(pids(lab.dir, "c", {DaemonRole.MON, DaemonRole.OSD})):
            started = time.monotonic()
            with pytest.raises(CephError):
                handle.run(lambda cluster: probe_site(cluster, "rbd", "tester"))
            took = time.monotonic() - started
        assert took < 3 * DEADLINE, f"the probe took {took:.1f} s to fail"
        deadline = time.monotonic() + 60
        while True:  # the broken handle is rebuilt on the next call
            try:
                probe = handle.run(lambda cluster: probe_site(cluster, "rbd", "tester"))
                break
            except CephError:
                assert time.monotonic() < deadline, "c never answered again"
                time.sleep(0.5)
        assert probe.quorum == ["c"]
    finally:
        handle.close()
