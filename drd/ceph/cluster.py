"""A librados connection to one cluster, with timeouts, and typed errors for mon commands."""

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import rados

from drd.domain.cluster_health import ClusterHealth, parse_status


class CephError(Exception):
    """A Ceph call failed; the message names the call and Ceph's reason."""


@contextmanager
def connect(conf: Path, client: str = "admin", timeout: float = 10.0) -> Iterator[Any]:
    """Open a librados handle whose mon and OSD operations give up after `timeout` s.

    Without these timeouts a call to a cluster whose mon is gone blocks forever.
    """
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
    try:
        yield cluster
    finally:
        cluster.shutdown()


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
