"""Restart one Ceph daemon of a lab site by PID, as runbooks do through the site config's
lab settings (a gateway for the RGW steps, rbd-mirror for a forced promote).

Only the process lab.json records for that site and role is stopped (SIGTERM, SIGKILL
after a grace); a new one starts exactly as `lab up` starts it and is recorded in
lab.json, which is read afresh each time since the lab and its daemons share it.
"""

from pathlib import Path

from drd.lab import processes
from drd.lab.description import DaemonRole, ProcessRecord, SiteRecord
from drd.lab.errors import LabError
from drd.lab.lab_store import load_description, save_description
from drd.lab.site_boot import start_role
from drd.lab.topology import plan_sites

STOP_GRACE_S = 5.0


def restart_role(lab_dir: Path, site_name: str, role: DaemonRole,
                 grace: float = STOP_GRACE_S) -> processes.Started:
    """Stop the site's recorded `role` daemon, if any, and start a new one; it, started."""
    description = load_description(lab_dir)
    if description is None:
        raise LabError(f"no lab at {lab_dir}")
    site = description.sites.get(site_name)
    if site is None:
        raise LabError(f"the lab at {lab_dir} has no site {site_name}")
    old = site.process(role)
    if old is not None:
        processes.stop_processes([old], grace)
    spec = next(s for s in plan_sites(sorted(description.sites), description.block)
                if s.name == site_name)

    def record(site_record: SiteRecord, process: ProcessRecord) -> None:
        site_record.replace_process(process)
        save_description(description)

    return start_role(spec, site, role, record)
