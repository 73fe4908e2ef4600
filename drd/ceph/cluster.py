"""A librados connection to one cluster, with timeouts, and typed errors for mon commands."""

import json
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
        raise CephError(f"`{prefix}` failed ({code}): {reason.strip() or 'no reason given'}")
    return json.loads(out) if out.strip() else None


def cluster_health(cluster: Any) -> ClusterHealth:
    return parse_status(mon_command(cluster, "status"))


class ClusterHandle:
    """A long-lived librados handle that reconnects after any failure.

    Connecting costs a mon round trip and auth; a daemon asks every few seconds, so
    it keeps one handle and rebuilds it only when a call failed (for example after
    this client was blocklisted, as Ceph's rbd_support does).
    """

    def __init__(self, conf: Path, client: str, timeout: float) -> None:
        self._conf = conf
        self._client = client
        self._timeout = timeout
        self._cluster: Any = None

    def health(self) -> ClusterHealth:
        """Blocking: run it in a worker thread."""
        return self.run(cluster_health)

    def run(self, call: Callable[[Any], T]) -> T:
        """Call `call(cluster)`; after a Ceph error, the next call reconnects."""
        if self._cluster is None:
            self._cluster = self._connect()
        try:
            return call(self._cluster)
        except CephError:
            self.close()
            raise

    def _connect(self) -> Any:
        return _connected(self._conf, self._client, self._timeout)

    def close(self) -> None:
        if self._cluster is not None:
            cluster, self._cluster = self._cluster, None
            cluster.shutdown()
