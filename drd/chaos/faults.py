"""Inject each kind of fault into a lab, hold it, and take it away again.

`inject` starts the fault and returns; `hold` keeps it for as long as the experiment says
(a flapping link flaps meanwhile); `heal` ends it: the killed are restarted, the frozen
resumed, the cut links mended. Each step notes what it did, with the time, for the result.
"""

import signal
import time
from collections.abc import Callable, Sequence

import rados
import rbd

from drd.ceph.cluster import CephError, connect, mon_command
from drd.chaos.experiment import (
    Flap,
    Freeze,
    KillDrd,
    KillSite,
    KillTakeover,
    Partition,
    hold_seconds,
)
from drd.chaos.lab_access import LabAccess
from drd.chaos.partition import Partitioner
from drd.lab.ceph_conf import OSD_ID
from drd.lab.daemon_restart import restart_role
from drd.lab.description import DaemonRole

AnyFault = KillSite | KillDrd | Partition | Freeze | KillTakeover | Flap
Note = Callable[[str], None]
TAKEOVER_BEGIN_TIMEOUT = 120.0
SERVE_TIMEOUT = 120.0


class FaultInjector:
    def __init__(self, fault: AnyFault, access: LabAccess, note: Note) -> None:
        self.fault = fault
        self._access = access
        self._note = note
        self._partitioner = Partitioner(access.lab) if isinstance(fault, Partition | Flap) \
            else None

    def inject(self) -> None:
        fault = self.fault
        if isinstance(fault, KillSite | KillTakeover):
            self._kill_site(fault.site)
        elif isinstance(fault, KillDrd):
            self._access.kill(self._access.pids(fault.site, {DaemonRole.DRD}))
            self._note(f"killed {fault.site}'s drd")
        elif isinstance(fault, Partition):
            assert self._partitioner is not None
            self._partitioner.cut(fault.cut)
            self._note(f"cut {_links(fault.cut)}")
        elif isinstance(fault, Freeze):
            self._access.signal(self._access.pids(fault.site), signal.SIGSTOP)
            self._note(f"froze every process of {fault.site}")
        else:
            self._flap_once(fault)

    def hold(self) -> None:
        fault = self.fault
        if isinstance(fault, KillTakeover):
            self._kill_taker(fault)
        elif isinstance(fault, Flap):
            deadline = time.monotonic() + hold_seconds(fault)
            flaps = 1
            while time.monotonic() < deadline:
                self._flap_once(fault)
                flaps += 1
            self._note(f"the links went down {flaps} times")
        else:
            time.sleep(hold_seconds(fault))

    def heal(self) -> None:
        fault = self.fault
        if self._partitioner is not None:
            self._partitioner.mend()
            self._note("mended every link")
        if isinstance(fault, Freeze):
            self._access.signal(self._access.pids(fault.site), signal.SIGCONT)
            self._note(f"resumed {fault.site}")
            self._repeer(fault.site)
        if isinstance(fault, KillSite | KillDrd | KillTakeover):
            self._access.revive()
            self._note("restarted every dead process")

    def _repeer(self, site: str) -> None:
        """Mark the site's OSD down once, so that it re-asserts itself and re-peers.

        A lab site has one OSD, and a PG without replicas stays `laggy` after the OSD was
        stopped past its read lease: nothing renews the lease, and client ops wait for
        ever (ceph/ceph-container#1682, seen here on 16.2.15). Real sites have replicas,
        which renew it.
        """
        time.sleep(2.0)
        try:
            with connect(self._access.lab.sites[site].conf) as cluster:
                mon_command(cluster, "osd down", ids=[str(OSD_ID)])
        except CephError as error:
            self._note(f"could not mark {site}'s OSD down to re-peer it: {error}")
        else:
            self._note(f"marked {site}'s OSD down once, so its laggy PGs re-peer")
            waited = self._wait_serving(site)
            self._note(f"{site}'s Ceph serves again after {waited:.1f} s" if waited >= 0
                       else f"{site}'s Ceph still does not serve {SERVE_TIMEOUT:.0f} s later")

    def _wait_serving(self, site: str) -> float:
        """Seconds until a pool listing on `site` answers again; -1 if it never did."""
        started = time.monotonic()
        record = self._access.lab.sites[site]
        while time.monotonic() - started < SERVE_TIMEOUT:
            try:
                with connect(record.conf, timeout=3) as cluster, \
                        cluster.open_ioctx(record.rbd_pool) as ioctx:
                    rbd.RBD().list(ioctx)
                return time.monotonic() - started
            except (CephError, rados.Error, rbd.Error):
                time.sleep(1.0)
        return -1.0

    def _kill_site(self, site: str) -> None:
        # SIGTERM the OSD first: the lab's memstore keeps its data only through a clean stop.
        self._access.stop(self._access.pids(site, {DaemonRole.OSD}))
        self._access.kill(self._access.pids(site))
        self._note(f"killed every process of {site}")

    def _kill_taker(self, fault: KillTakeover) -> None:
        deadline = time.monotonic() + TAKEOVER_BEGIN_TIMEOUT
        while not any(lease.get("takeover", {}).get("running")
                      for lease in self._access.leases(fault.taker).values()):
            if time.monotonic() > deadline:
                self._note(f"{fault.taker} began no takeover in {TAKEOVER_BEGIN_TIMEOUT:.0f} s")
                return
            time.sleep(0.1)
        self._access.kill(self._access.pids(fault.taker, {DaemonRole.DRD}))
        self._note(f"killed {fault.taker}'s drd during its takeover")
        time.sleep(1.0)
        restart_role(self._access.dir, fault.taker, DaemonRole.DRD)
        self._note(f"restarted {fault.taker}'s drd")

    def _flap_once(self, fault: Flap) -> None:
        assert self._partitioner is not None
        self._partitioner.cut(fault.cut)
        time.sleep(fault.down.total_seconds())
        self._partitioner.mend()
        time.sleep(fault.up.total_seconds())


def _links(cut: Sequence[tuple[str, str]]) -> str:
    return ", ".join(f"{x}-{y}" for x, y in cut)
