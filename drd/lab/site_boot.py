"""Bring up one lab site: files, monitor, OSD, mgr and an rbd pool with mirroring enabled."""

import errno
import secrets
import socket
import subprocess
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import rbd

from drd.ceph.cluster import CephError, cluster_health, connect, mon_command
from drd.ceph.rbd_mirror_setup import enable_image_mode, ensure_namespace
from drd.lab import processes
from drd.lab.ceph_conf import (
    CEPH_SECRET_BYTES,
    OSD_ID,
    SiteLayout,
    mon_entity,
    new_ceph_key,
    render_ceph_conf,
    render_keyring,
    site_entities,
)
from drd.lab.daemon_commands import (
    daemon_command,
    mon_mkfs_command,
    monmap_command,
    osd_mkfs_command,
)
from drd.lab.description import DaemonRole, ProcessRecord, SiteRecord
from drd.lab.errors import LabError
from drd.lab.topology import LAB_TENANTS, MON_PORT, SiteSpec
from drd.private_files import write_private

# A daemon that dies this soon after spawning failed to start; show its log.
EARLY_EXIT_SECONDS = 0.3
SETTLE_TIMEOUT = 90.0
COMMAND_TIMEOUT = 60.0

RecordProcess = Callable[[SiteRecord, ProcessRecord], None]


def check_address_free(site: SiteSpec, port: int = MON_PORT) -> None:
    """Fail with the address named if something already listens where a daemon must."""
    probe = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    # As Ceph's messenger does: connections of a lab just stopped linger in TIME_WAIT
    # and must not count as "in use"; only a live listener does.
    probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        probe.bind((site.address, port))
    except OSError as error:
        if error.errno == errno.EADDRINUSE:
            raise LabError(
                f"site {site.name}: address {site.address}:{port} is already in use",
                hint="another lab or daemon listens there; stop it, or give this lab "
                     "another address block with --block",
            ) from error
        raise LabError(f"site {site.name}: cannot bind {site.address}:{port}: {error}") \
            from error
    finally:
        probe.close()


def write_site_files(site: SiteSpec, layout: SiteLayout, memstore_bytes: int) -> SiteRecord:
    """Write ceph.conf and one 0600 keyring per entity, with fresh keys."""
    for directory in layout.directories():
        directory.mkdir(parents=True, exist_ok=True)
    fsid = str(uuid.uuid4())
    layout.conf.write_text(render_ceph_conf(site, fsid, layout, memstore_bytes))
    now = datetime.now(UTC)
    entities = [mon_entity(), *site_entities(site)]
    keys = {e.name: new_ceph_key(secrets.token_bytes(CEPH_SECRET_BYTES), now) for e in entities}
    write_private(_seed_keyring(layout), render_keyring([(e, keys[e.name]) for e in entities]))
    keyrings = {}
    for entity in site_entities(site):
        path = layout.keyring(entity.name)
        write_private(path, render_keyring([(entity, keys[entity.name])]))
        keyrings[entity.name] = path
    return SiteRecord(
        name=site.name, kind=site.kind, address=site.address, mon_addr=site.mon_addr,
        fsid=fsid, root=layout.root, conf=layout.conf,
        admin_keyring=layout.keyring("client.admin"), keyrings=keyrings,
    )


def _seed_keyring(layout: SiteLayout) -> Path:
    return layout.root / "mon-seed.keyring"


def run_tool(argv: list[str], what: str) -> None:
    """Run a one-shot Ceph tool; on failure raise with its own words."""
    try:
        result = subprocess.run(argv, capture_output=True, text=True, timeout=COMMAND_TIMEOUT,
                                check=False)
    except subprocess.TimeoutExpired as error:
        raise LabError(f"{what}: `{argv[0]}` did not finish in {COMMAND_TIMEOUT:.0f} s") \
            from error
    if result.returncode != 0:
        raise LabError(f"{what}: `{' '.join(argv[:3])} ...` exited {result.returncode}",
                       log_tail="\n".join((result.stderr or result.stdout).splitlines()[-20:]))


def start_role(site: SiteSpec, record: SiteRecord, role: DaemonRole,
               on_started: RecordProcess) -> processes.Started:
    """Start one daemon of a site and record it; raise with its log if it dies at once."""
    layout = SiteLayout(record.root)
    command = daemon_command(role, site, record.conf)
    console = layout.log_dir / f"{command.entity}.console"
    # drd logs JSON lines to stdout, so its console is its log.
    log = console if role is DaemonRole.DRD else layout.log(command.entity)
    started = processes.start_daemon(role, command.entity, command.argv, env=command.env,
                                     log=log, console=console, cgroup=record.cgroup)
    on_started(record, started.record)
    code = processes.wait_for_exit_or(started.handle, EARLY_EXIT_SECONDS)
    if code is not None:
        raise daemon_failed(site.name, started.record, f"exited with code {code}")
    return started


def daemon_failed(site_name: str, record: ProcessRecord, how: str) -> LabError:
    """An error carrying the end of the daemon's console and log.

    A daemon that dies early (no mon store, bad conf) says why on stderr, which the
    console file holds; later failures are in Ceph's own log.
    """
    tails = [f"== {path}\n{processes.tail(path, lines=15)}"
             for path in (record.console, record.log)
             if path.exists() and path.stat().st_size]
    return LabError(
        f"site {site_name}: {record.entity} {how}",
        hint=f"logs: {record.console} and {record.log}",
        log_tail="\n".join(tails) or "(the daemon wrote nothing)",
    )


WRITER_JOURNAL_COMMIT_AGE = "0.2"


def boot_site(site: SiteSpec, layout: SiteLayout, memstore_bytes: int,
              on_started: RecordProcess, cgroup: Path | None = None) -> SiteRecord:
    """From an empty directory to a settled single-OSD cluster with a mirrored rbd pool,
    its daemons inside `cgroup` when given."""
    check_address_free(site)
    record = write_site_files(site, layout, memstore_bytes)
    record.cgroup = cgroup
    monmap = layout.root / "monmap"
    run_tool(monmap_command(site, record.fsid, monmap), f"site {site.name}: monmaptool")
    layout.data_dir("mon", site.name).mkdir(parents=True, exist_ok=True)
    run_tool(mon_mkfs_command(site, layout.conf, monmap, _seed_keyring(layout)),
             f"site {site.name}: monitor mkfs")
    started = [start_role(site, record, DaemonRole.MON, on_started)]
    try:
        with connect(layout.conf, timeout=30) as cluster:
            # devicehealth would create a pool of its own whose PG appears a second
            # after the mgr: a site could look settled too early, then wait 6-8 s.
            # Only the mon's config database reaches it (ceph.conf does not), and
            # only with force, as the option belongs to a module.
            mon_command(cluster, "config set", who="mgr",
                        name="mgr/devicehealth/enable_monitoring", value="false", force=True)
            # Writers commit their journal position every rbd_journal_commit_age (5 s by
            # default), and drd cannot see appends newer than that commit: a real site
            # sets this for its hypervisors the same way, in the config database.
            mon_command(cluster, "config set", who="client",
                        name="rbd_journal_commit_age", value=WRITER_JOURNAL_COMMIT_AGE)
            # The mgr is the slowest to become active, so it starts first.
            layout.data_dir("mgr", site.name).mkdir(parents=True, exist_ok=True)
            started.append(start_role(site, record, DaemonRole.MGR, on_started))
            osd_uuid = str(uuid.uuid4())
            mon_command(cluster, "osd new", uuid=osd_uuid, id=OSD_ID)
            layout.data_dir("osd", str(OSD_ID)).mkdir(parents=True, exist_ok=True)
            run_tool(osd_mkfs_command(layout.conf, osd_uuid), f"site {site.name}: OSD mkfs")
            started.append(start_role(site, record, DaemonRole.OSD, on_started))
            create_rbd_pool(cluster, record.rbd_pool)
            enable_image_mode(cluster, record.rbd_pool, site.name)
            for tenant in LAB_TENANTS:
                ensure_namespace(cluster, record.rbd_pool, tenant)
            wait_settled(site.name, cluster, [d.record for d in started])
    except CephError as error:
        raise LabError(f"site {site.name}: {error}",
                       hint=f"daemon logs are in {layout.log_dir}") from error
    return record


def create_rbd_pool(cluster: Any, pool: str) -> None:
    """Create and initialise an RBD pool, unless it already exists."""
    if not cluster.pool_exists(pool):
        mon_command(cluster, "osd pool create", pool=pool, pg_num=8)
    mon_command(cluster, "osd pool application enable", pool=pool, app="rbd")
    with cluster.open_ioctx(pool) as ioctx:
        try:
            rbd.RBD().pool_init(ioctx, False)
        except rbd.Error as error:
            raise CephError(f"rbd pool init {pool}: {error}") from error


def wait_settled(site_name: str, cluster: Any, daemons: list[ProcessRecord],
                 timeout: float = SETTLE_TIMEOUT, hint: str = "") -> None:
    """Poll until HEALTH_OK with every PG active+clean; fail early if a daemon dies."""
    deadline = time.monotonic() + timeout
    reason = "not asked yet"
    while time.monotonic() < deadline:
        for daemon in daemons:
            if not processes.is_running(daemon):
                raise daemon_failed(site_name, daemon, "exited")
        settled, reason = cluster_health(cluster).settled()
        if settled:
            return
        time.sleep(0.25)
    raise LabError(f"site {site_name}: not healthy after {timeout:.0f} s: {reason}",
                   hint=hint or f"daemon logs are in {daemons[0].log.parent}")
