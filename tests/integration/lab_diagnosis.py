"""What the shared lab looked like when a run failed, in few enough lines to survive
into CI's excerpt of the output.

A CI run once lost site b for its last three modules: RADOS reads and writes timed out,
radosgw-admin hung, and nothing said whether an OSD had died, filled up, or gone down.
The lab is torn down at the end of the session, so its state is read just before.
"""

import contextlib
import re
import time
from pathlib import Path

import psutil

from drd.ceph.cluster import CephError, connect, mon_command
from drd.lab.description import LabDescription, ProcessRecord, SiteRecord
from drd.lab.processes import is_running

# What a Ceph daemon logs when it dies on purpose (assert, abort) or is made to.
_DEATH = re.compile(r"ceph_assert|FAILED assert|Caught signal|\bAborted\b|ENOSPC|"
                    r"No space left", re.IGNORECASE)
# Not drd.lab.processes.tail (64 KiB): a Ceph daemon's crash dump of recent events runs
# past that, and the assert line comes before it.
_READ_BYTES = 512 * 1024


def last_words(record: ProcessRecord, lines: int = 4) -> list[str]:
    """The last lines of a daemon's log that say why it died, if any do."""
    found: list[str] = []
    for path in (record.log, record.console):
        try:
            with path.open("rb") as handle:
                handle.seek(0, 2)
                handle.seek(max(0, handle.tell() - _READ_BYTES))
                text = handle.read().decode("utf-8", errors="replace")
        except OSError:
            continue
        found += [line.strip()[:200] for line in text.splitlines()
                  if _DEATH.search(line) and "__ceph_assert_fail" not in line]  # not frames
    return found[-lines:]


def site_lines(site: SiteRecord) -> list[str]:
    """Health, PG states and OSD fill of one site, and which of its daemons are dead."""
    lines = []
    dead = [p for p in site.processes if not is_running(p)]
    for record in dead:
        lines.append(f"site {site.name}: {record.entity} (pid {record.pid}) is not running")
        lines += [f"  {line}" for line in last_words(record)]
    try:
        with connect(site.conf, timeout=5) as cluster:
            status = mon_command(cluster, "status")
            fill = mon_command(cluster, "osd df")
    except CephError as error:
        return [*lines, f"site {site.name}: cluster unreachable: {error}"]
    checks = ", ".join(f"{name}: {check['summary']['message']}"
                       for name, check in status["health"]["checks"].items())
    pgs = ", ".join(f"{state['count']} {state['state_name']}"
                    for state in status["pgmap"].get("pgs_by_state", []))
    osds = ", ".join(f"osd.{node['id']} {node['utilization']:.0f}% of "
                     f"{node['kb'] // 1024} MiB" for node in fill["nodes"])
    lines.append(f"site {site.name}: {status['health']['status']} ({checks or 'no checks'}); "
                 f"pgs {pgs}; {osds}")
    return lines


def machine_line() -> str:
    """Memory left, and how many processes the kernel's OOM killer has killed since boot
    (a SIGKILLed daemon logs nothing of its own)."""
    def field(path: str, name: str) -> str:
        try:
            with Path(path).open() as handle:
                return next((line.split()[1] for line in handle if line.startswith(name)), "?")
        except OSError:
            return "?"
    available = field("/proc/meminfo", "MemAvailable:")
    shown = f"{int(available) // 1024} MiB" if available.isdigit() else available
    return f"machine: {shown} available; OOM kills since boot: {field('/proc/vmstat', 'oom_kill ')}"


def busiest_line(sample_seconds: float = 1.0, shown: int = 5) -> str:
    """The processes using the most CPU over a moment: a spinning leftover of an earlier
    test starves a lab's OSD on two cores."""
    processes = list(psutil.process_iter(["pid", "name"]))
    for process in processes:
        with contextlib.suppress(psutil.Error):
            process.cpu_percent(None)
    time.sleep(sample_seconds)
    used = []
    for process in processes:
        with contextlib.suppress(psutil.Error):
            used.append((process.cpu_percent(None), process.info["pid"], process.info["name"]))
    top = sorted(used, reverse=True)[:shown]
    return "busiest: " + ", ".join(f"{name} {pid} {percent:.0f}%" for percent, pid, name in top)


def diagnose(lab: LabDescription) -> list[str]:
    lines = [machine_line(), busiest_line()]
    for site in lab.sites.values():
        lines += site_lines(site)
    return lines
