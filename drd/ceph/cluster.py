"""A librados connection to one cluster, with timeouts, and typed errors for mon commands."""

import errno
import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import rados

from drd.domain.cluster_health import ClusterHealth, parse_status

T = TypeVar("T")


class CephError(Exception):
    """A Ceph call failed; the message names the call and Ceph's reason."""


@contextmanager
def connect(conf: Path, client: str = "admin", timeout: float = 10.0) -> Iterator[Any]:
    """Open a librados handle whose mon and OSD operations give up after `timeout` s.

    Without these timeouts a call to a cluster whose mon is gone blocks forever.
    """
    cluster = _connected(conf, client, timeout)
    try:
        yield cluster
    finally:
        cluster.shutdown()


def _connected(conf: Path, client: str, timeout: float) -> Any:
    seconds = str(max(1, int(timeout)))
    cluster = rados.Rados(conffile=str(conf), rados_id=client, conf={
        "rados_mon_op_timeout": seconds,
        "rados_osd_op_timeout": seconds,
        "client_mount_timeout": seconds,
    })
    try:
        cluster.connect(timeout=max(1, int(timeout)))
    except rados.Error as error:
        cluster.shutdown()
        raise CephError(f"cannot reach the cluster of {conf}: {error}") from error
    return cluster


def mon_command(cluster: Any, prefix: str, inbuf: bytes = b"", **args: Any) -> Any:
    """Run a mon command; parsed JSON output, or None when it printed nothing."""
    command = {"prefix": prefix, "format": "json", **args}
    try:
        code, out, reason = cluster.mon_command(json.dumps(command), inbuf)
    except rados.Error as error:
        raise CephError(f"`{prefix}` failed: {error}") from error
    if code != 0:
        message = f"`{prefix}` failed ({code}): {reason.strip() or 'no reason given'}"
        if -code in (errno.ETIMEDOUT, errno.ESHUTDOWN):
            # The mon did not answer in time, or this client was blocklisted.
            raise CephError(message) from rados.TimedOut(message, -code)
        raise CephError(message)
    return json.loads(out) if out.strip() else None


def cluster_health(cluster: Any) -> ClusterHealth:
    return parse_status(mon_command(cluster, "status"))


# Errors after which the connection itself is suspect: the client was blocklisted
# (ESHUTDOWN) or the cluster stopped answering. Others (a missing object, a busy
# image) say nothing about the connection and must not tear it down.
_BROKEN_CONNECTION = (rados.ConnectionShutdown, rados.TimedOut)


class ClusterHandle:
    """A long-lived librados handle, shared by worker threads, rebuilt when broken.

    Connecting costs a mon round trip and auth; a daemon asks every second, so it
    keeps one handle and rebuilds it only after the connection broke (for example
    after this client was blocklisted, as Ceph's rbd_support does). A replaced handle
    is shut down only once no thread uses it any more: shutting a librados handle
    down under a running call crashes the process inside librbd.
    """

    def __init__(self, conf: Path, client: str, timeout: float) -> None:
        self._conf = conf
        self._client = client
        self._timeout = timeout
        self._lock = threading.Lock()
        self._cluster: Any = None
        self._users: dict[int, int] = {}  # id(cluster) -> calls running on it
        self._retired: dict[int, Any] = {}  # replaced, waiting for their last call

    def health(self) -> ClusterHealth:
        """Blocking: run it in a worker thread."""
        return self.run(cluster_health)

    def run(self, call: Callable[[Any], T]) -> T:
        """Call `call(cluster)` on the shared handle; rebuild it if the connection broke."""
        with self._lock:
            if self._cluster is None:
                self._cluster = _connected(self._conf, self._client, self._timeout)
            cluster = self._cluster
            self._users[id(cluster)] = self._users.get(id(cluster), 0) + 1
        try:
            return call(cluster)
        except CephError as error:
            if isinstance(error.__cause__, _BROKEN_CONNECTION):
                with self._lock:
                    if self._cluster is cluster:
                        self._cluster = None
                        self._retired[id(cluster)] = cluster
            raise
        finally:
            self._release(cluster)

    def _release(self, cluster: Any) -> None:
        with self._lock:
            key = id(cluster)
            self._users[key] -= 1
            if self._users[key] == 0:
                del self._users[key]
                retired = self._retired.pop(key, None)
                if retired is not None:
                    retired.shutdown()

    def close(self) -> None:
        """Shut the handle down once the calls running on it have returned."""
        with self._lock:
            cluster, self._cluster = self._cluster, None
            if cluster is None:
                return
            if id(cluster) in self._users:
                self._retired[id(cluster)] = cluster
                return
        cluster.shutdown()
