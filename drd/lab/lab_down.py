"""`drd lab down`: stop every process the lab started, by PID, then remove its dir."""

import shutil
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from drd.lab import processes
from drd.lab.description import STOP_ORDER, DaemonRole, LabDescription
from drd.lab.errors import LabError
from drd.lab.lab_store import load_description
from drd.lab.site_cgroups import members, remove_site_groups

# rbd-mirror can hang on SIGTERM once its peers are gone; do not wait long for it.
GRACE_SECONDS: dict[DaemonRole, float] = {
    DaemonRole.DRD: 8.0,  # it drains for up to 5 s (--drain-seconds in the lab)
    DaemonRole.RBD_MIRROR: 3.0,
    DaemonRole.RGW: 5.0,
    DaemonRole.MGR: 5.0,
    DaemonRole.OSD: 8.0,
    DaemonRole.MON: 5.0,
}

Report = Callable[[str], None]


def stop_lab_processes(description: LabDescription, report: Report) -> int:
    """Stop the lab's daemons wave by wave (see STOP_ORDER); return how many were running."""
    stopped = 0
    for wave in STOP_ORDER:
        batches = [([p for _, p in description.all_processes() if p.role is role],
                    GRACE_SECONDS[role]) for role in wave]
        # Each role gets its own grace; roles within a wave stop side by side.
        with ThreadPoolExecutor(max_workers=len(batches)) as pool:
            outcomes = pool.map(lambda batch: processes.stop_processes(*batch), batches)
            for outcome in (o for batch in outcomes for o in batch):
                stopped += 1
                if outcome.killed:
                    report(f"{outcome.record.entity} (pid {outcome.record.pid}) ignored "
                           f"SIGTERM; killed it")
    survivors = [proc for _, proc in description.all_processes() if processes.is_running(proc)]
    if survivors:
        names = ", ".join(f"{p.entity} (pid {p.pid})" for p in survivors)
        raise LabError(f"still running after stop: {names}")
    return stopped


def lab_down(lab_dir: Path, keep: bool, report: Report) -> None:
    """Stop the lab at `lab_dir`; remove the dir unless `keep`. No lab there is not an error."""
    description = load_description(lab_dir)
    if description is None:
        if lab_dir.exists() and any(lab_dir.iterdir()):
            raise LabError(f"{lab_dir} holds no lab.json, so drd did not make it",
                           hint="remove it by hand if it is yours")
        report(f"no lab at {lab_dir}; nothing to stop")
        return
    started = time.monotonic()
    count = stop_lab_processes(description, report)
    report(f"stopped {count} lab processes in {time.monotonic() - started:.1f} s")
    groups = [site.cgroup for site in description.sites.values() if site.cgroup is not None]
    _stop_stragglers(groups, report)
    remove_site_groups(groups)
    if keep:
        report(f"kept {lab_dir}")
    else:
        shutil.rmtree(lab_dir)
        report(f"removed {lab_dir}")


def _stop_stragglers(groups: list[Path], report: Report) -> None:
    """Stop what is still in the sites' groups: a daemon lab.json lost track of (seen: an
    rbd-mirror restarted by a bench while a drd restarted it too, each recording its own
    start, outlived its lab). A group holds only what the lab started there."""
    left = sorted({pid for group in groups for pid in members(group)})
    if not left:
        return
    stopped = processes.stop_pids(left, GRACE_SECONDS[DaemonRole.OSD])
    report(f"stopped {len(stopped)} process(es) lab.json did not list, by PID from the "
           f"sites' groups: " + ", ".join(stopped))
