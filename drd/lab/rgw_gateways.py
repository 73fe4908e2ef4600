"""The lab's gateways as failover sees them: zones by name, and restart or kill by PID.

`LabGateways` is the lab's GatewayControl for drd.ceph.rgw_failover. It restarts only
the radosgw process lab.json records for the zone (drd.lab.daemon_restart: SIGTERM,
SIGKILL after a grace, since radosgw can take rgw_exit_timeout_secs, 120 s, to leave)
and waits until the new one answers S3.
"""

import time
from dataclasses import dataclass
from pathlib import Path

from drd.ceph.rgw_admin import RgwAdmin
from drd.ceph.rgw_failover import RgwZone
from drd.lab import processes
from drd.lab.daemon_restart import restart_role
from drd.lab.description import DaemonRole, LabDescription, ProcessRecord, SiteRecord
from drd.lab.errors import LabError
from drd.lab.lab_store import load_description
from drd.lab.rgw_lab import wait_gateway

KILL_WAIT_S = 10.0


def lab_zones(description: LabDescription) -> dict[str, RgwZone]:
    """Every zone of the lab, by name, with radosgw-admin on its site's cluster."""
    return {site.rgw_zone: RgwZone(site.rgw_zone, RgwAdmin(site.conf))
            for site in description.sites.values() if site.rgw_zone is not None}


@dataclass(frozen=True)
class LabGateways:
    """Start, restart and kill the lab's radosgw processes; lab.json is re-read each time."""

    lab_dir: Path

    def restart(self, zone: str) -> None:
        _, site = self._site(zone)
        started = restart_role(self.lab_dir, site.name, DaemonRole.RGW)
        assert site.rgw_url is not None  # _site only returns gateway sites
        wait_gateway(site.name, site.rgw_url, started.record)

    def kill(self, zone: str) -> ProcessRecord:
        """SIGKILL the zone's gateway, and nothing else, as a crash would; its record."""
        _, site = self._site(zone)
        record = site.process(DaemonRole.RGW)
        process = processes.find_process(record) if record is not None else None
        if record is None or process is None:
            raise LabError(f"zone {zone}: its gateway is not running")
        process.kill()
        deadline = time.monotonic() + KILL_WAIT_S
        while processes.is_running(record):  # a zombie counts as gone
            if time.monotonic() > deadline:
                raise LabError(f"zone {zone}: gateway pid {record.pid} survived SIGKILL")
            time.sleep(0.05)
        return record

    def running(self, zone: str) -> bool:
        _, site = self._site(zone)
        record = site.process(DaemonRole.RGW)
        return record is not None and processes.is_running(record)

    def _site(self, zone: str) -> tuple[LabDescription, SiteRecord]:
        description = load_description(self.lab_dir)
        if description is None:
            raise LabError(f"no lab at {self.lab_dir}")
        site = next((s for s in description.sites.values() if s.rgw_zone == zone), None)
        if site is None or site.rgw_url is None:
            raise LabError(f"the lab at {self.lab_dir} has no gateway for zone {zone}")
        return description, site
