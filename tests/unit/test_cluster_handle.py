"""The shared librados handle: rebuilt when the connection broke, and never shut down
under a call still running on it (that crashes the process inside librbd)."""

import threading
from pathlib import Path
from typing import Any

import pytest
import rados

from drd.ceph import cluster as cluster_module
from drd.ceph.cluster import CephError, ClusterHandle


class FakeCluster:
    """Stands in for rados.Rados at the adapter's boundary; counts shutdowns."""

    def __init__(self) -> None:
        self.shutdowns = 0

    def shutdown(self) -> None:
        self.shutdowns += 1


@pytest.fixture
def connections(monkeypatch: pytest.MonkeyPatch) -> list[FakeCluster]:
    made: list[FakeCluster] = []

    def connect(conf: Path, client: str, timeout: float) -> FakeCluster:
        made.append(FakeCluster())
        return made[-1]

    monkeypatch.setattr(cluster_module, "_connected", connect)
    return made


def broken(_: Any) -> None:
    raise CephError("blocklisted") from rados.ConnectionShutdown("gone", 108)


def test_a_broken_connection_is_replaced_only_after_its_running_calls_return(
        connections: list[FakeCluster]) -> None:
    handle = ClusterHandle(Path("/etc/ceph/ceph.conf"), "admin", 5)
    inside, release = threading.Event(), threading.Event()

    def slow(cluster: Any) -> str:
        inside.set()
        release.wait(5)
        return "done"

    results: list[str] = []
    worker = threading.Thread(target=lambda: results.append(handle.run(slow)))
    worker.start()
    inside.wait(5)
    with pytest.raises(CephError):
        handle.run(broken)
    first = connections[0]
    assert first.shutdowns == 0, "shut down under a running call"
    release.set()
    worker.join(5)
    assert results == ["done"]
    assert first.shutdowns == 1
    assert handle.run(lambda c: c) is connections[1], "the next call reconnects"


def test_an_ordinary_ceph_error_keeps_the_connection(connections: list[FakeCluster]) -> None:
    handle = ClusterHandle(Path("/etc/ceph/ceph.conf"), "admin", 5)

    def missing(_: Any) -> None:
        raise CephError("no such image") from rados.ObjectNotFound("nope", 2)

    with pytest.raises(CephError):
        handle.run(missing)
    assert handle.run(lambda c: c) is connections[0]
    assert len(connections) == 1 and connections[0].shutdowns == 0
    handle.close()
    assert connections[0].shutdowns == 1
