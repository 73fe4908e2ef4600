"""Probe a site's Ceph as the failure detector's Ceph signal: its monitors answer with a
quorum, and a small RADOS object can be written and read back. Blocking: run it in a
worker thread, under a deadline.

A mon that answers proves the monitors have quorum (a mon outside quorum answers no
command), but not that the OSDs serve data: production is lost to its tenants when
either fails, so the probe also writes and reads one object, `drd.probe.<prober>` in
the given pool, a few bytes rewritten on every probe.
"""

import time
from dataclasses import dataclass
from typing import Any

import rados

from drd.ceph.cluster import CephError, mon_command


@dataclass(frozen=True)
class SiteProbe:
    quorum: list[str]
    mons: int
    round_trip_ms: float  # the RADOS write and read

    def describe(self) -> str:
        return (f"quorum {len(self.quorum)}/{self.mons} ({', '.join(self.quorum)}); "
                f"RADOS write and read in {self.round_trip_ms:.1f} ms")


def probe_site(cluster: Any, pool: str, prober: str) -> SiteProbe:
    """CephError when the monitors or the pool's OSDs do not answer (within the
    handle's own operation timeouts)."""
    status = mon_command(cluster, "quorum_status")
    quorum = [str(name) for name in status.get("quorum_names", [])]
    mons = len(status.get("monmap", {}).get("mons", [])) or len(quorum)
    started = time.monotonic()
    payload = f"{prober} {time.time_ns()}".encode()
    name = f"drd.probe.{prober}"
    try:
        with cluster.open_ioctx(pool) as ioctx:
            ioctx.write_full(name, payload)
            read = ioctx.read(name, len(payload) + 1)
    except rados.Error as error:
        raise CephError(f"RADOS write and read of {pool}/{name}: {error}") from error
    if read != payload:
        raise CephError(f"RADOS read of {pool}/{name} returned other bytes than written")
    return SiteProbe(quorum, mons, (time.monotonic() - started) * 1000)
