"""`drd lab up`: boot every site in parallel, peer them, start rbd-mirror, record it all.

Run twice, it finds the lab up and changes nothing. After a lab that died halfway
through booting, it stops what is left and starts over; after daemons of a ready
lab died, it restarts them.
"""

import shutil
import signal
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

from drd.api.client import ApiClientError, ApiTarget, get_json
from drd.api.schemas import SiteStatus
from drd.ceph.cluster import CephError, cluster_health, connect
from drd.ceph.rbd_mirror_setup import add_peer, peer_credentials
from drd.lab import processes
from drd.lab.ceph_conf import DEFAULT_MEMSTORE_BYTES, SiteLayout
from drd.lab.daemon_commands import REQUIRED_BINARIES
from drd.lab.description import (
    START_ORDER,
    DaemonRole,
    LabDescription,
    MirrorPeerRecord,
    Phase,
    ProcessRecord,
    SiteRecord,
)
from drd.lab.drd_files import (
    OPERATOR_TOKEN_FILE,
    add_missing_sections,
    lab_sections,
    mint_secrets,
    repositories_dir,
    write_drd_files,
    write_restic_files,
)
from drd.lab.errors import LabError
from drd.lab.lab_down import stop_lab_processes
from drd.lab.lab_store import load_description, save_description
from drd.lab.rgw_lab import lab_rgw_settings, start_gateways
from drd.lab.site_boot import (
    boot_site,
    check_address_free,
    daemon_failed,
    start_role,
    wait_settled,
)
from drd.lab.site_cgroups import create_site_groups
from drd.lab.topology import DRD_API_PORT, SiteSpec, mirror_links, plan_sites
from drd.private_files import write_private
from drd.state.store import StateStore

DAEMONS_MEET_TIMEOUT = 30.0
SETUP_HINT = "run `bash scripts/setup` as root to install Ceph and restic"
MIRROR_REGISTER_TIMEOUT = 60.0

Report = Callable[[str], None]


def check_packages() -> None:
    """Name the missing Debian package before anything is started."""
    for binary, package in REQUIRED_BINARIES.items():
        if shutil.which(binary) is None:
            raise LabError(f"Ceph package {package} is missing: no `{binary}` on PATH",
                           hint=SETUP_HINT)


def lab_up(lab_dir: Path, names: list[str], block: int, report: Report,
           memstore_bytes: int = DEFAULT_MEMSTORE_BYTES) -> LabDescription:
    """Bring the lab at `lab_dir` up, or confirm it already is; return its description."""
    check_packages()
    sites = plan_sites(names, block)
    existing = load_description(lab_dir)
    if existing is None and lab_dir.exists() and any(lab_dir.iterdir()):
        raise LabError(f"{lab_dir} exists, is not empty, and holds no lab.json",
                       hint="it is not a drd lab: choose another --dir, or remove it")
    if existing is not None:
        if existing.phase is Phase.READY:
            _refuse_other_shape(existing, names, block)
            _add_missing_files(existing, sites, report)
            return _revive(existing, sites, report)
        report(f"a previous `lab up` on {lab_dir} stopped halfway; cleaning up and starting over")
        stop_lab_processes(existing, report)
        shutil.rmtree(lab_dir)
    return _boot(lab_dir, sites, block, memstore_bytes, report)


def _refuse_other_shape(existing: LabDescription, names: list[str], block: int) -> None:
    if sorted(existing.sites) != names or existing.block != block:
        raise LabError(
            f"the lab at {existing.dir} has sites {','.join(sorted(existing.sites))} on "
            f"block {existing.block}; you asked for {','.join(names)} on block {block}",
            hint=f"run `drd lab down --dir {existing.dir}` first, or choose another --dir",
        )


def _boot(lab_dir: Path, sites: list[SiteSpec], block: int, memstore_bytes: int,
          report: Report) -> LabDescription:
    lab_dir.mkdir(parents=True, exist_ok=True)
    description = LabDescription(dir=lab_dir, block=block, phase=Phase.BOOTING,
                                 created_at=datetime.now(UTC), sites={})
    save_description(description)

    def record_process(site: SiteRecord, process: ProcessRecord) -> None:
        site.replace_process(process)
        description.sites[site.name] = site
        save_description(description)

    started = time.monotonic()
    groups = create_site_groups(block, [site.name for site in sites])
    try:
        with ThreadPoolExecutor(max_workers=len(sites)) as pool:
            futures = [pool.submit(boot_site, site, SiteLayout(lab_dir / site.name),
                                   memstore_bytes, record_process, groups.get(site.name))
                       for site in sites]
            for future in futures:
                record = future.result()
                description.sites[record.name] = record
                report(f"site {record.name} ({record.kind.value}) on {record.address}: "
                       f"HEALTH_OK after {time.monotonic() - started:.1f} s")
        _peer_sites(description, sites, report)
        for site in sites:
            start_role(site, description.sites[site.name], DaemonRole.RBD_MIRROR,
                       record_process)
        _wait_mirror_daemons(description, sites)
        start_gateways(description, sites, record_process, report)
        _start_drd_daemons(description, sites, record_process)
        report(f"drd daemons up on port {DRD_API_PORT}; operator token in "
               f"{description.operator_token_file}")
    except BaseException:
        # Leave nothing running; the logs stay in the lab dir for the post-mortem.
        report("lab up failed; stopping the daemons it started")
        stop_lab_processes(description, report)
        raise
    description.phase = Phase.READY
    save_description(description)
    report(f"lab ready in {time.monotonic() - started:.1f} s; description: {lab_dir}/lab.json")
    return description


def _rgw_settings(description: LabDescription) -> dict[str, str] | None:
    return None if description.rgw_system_keys_file is None \
        else lab_rgw_settings(description.dir)


def _add_missing_files(description: LabDescription, sites: list[SiteSpec],
                       report: Report) -> None:
    """A lab booted by an older drd lacks the backup files and the site configs' newer
    sections (backup, rgw): add them, keeping whatever exists, and have each running
    daemon reload its config."""
    for path in write_restic_files(description.dir, sites, mint_secrets(sites)):
        report(f"wrote the restic password file {path}")
    sections = lab_sections(repositories_dir(description.dir, sites),
                            _rgw_settings(description))
    for site in sites:
        record = description.sites[site.name]
        added = [] if record.drd_config is None else add_missing_sections(
            record.drd_config, sections)
        if not added:
            continue
        report(f"site {site.name}: its drd config now has the section(s) "
               f"{', '.join(added)}")
        drd = record.process(DaemonRole.DRD)
        running = processes.find_process(drd) if drd is not None else None
        if running is not None:
            running.send_signal(signal.SIGHUP)  # the daemon reloads its config on SIGHUP


def _peer_sites(description: LabDescription, sites: list[SiteSpec], report: Report) -> None:
    for link in mirror_links(sites):
        local, remote = description.sites[link.site.name], description.sites[link.peer.name]
        try:
            with connect(local.conf) as local_cluster, connect(remote.conf) as remote_cluster:
                credentials = peer_credentials(remote_cluster, remote.rbd_pool)
                added = add_peer(local_cluster, local.rbd_pool, remote.name, credentials,
                                 link.direction.value)
        except CephError as error:
            raise LabError(f"mirror peering {local.name}->{remote.name}: {error}") from error
        peer = MirrorPeerRecord(site=local.name, peer=remote.name, direction=link.direction)
        if peer not in description.mirror_peers:
            description.mirror_peers.append(peer)
        if added:
            report(f"site {local.name}: mirroring peer {remote.name} ({link.direction.value}) "
                   f"on pool {local.rbd_pool}")


def _start_drd_daemons(description: LabDescription, sites: list[SiteSpec],
                       record_process: Callable[[SiteRecord, ProcessRecord], None]) -> None:
    """Give every site a drd daemon that trusts the others, and wait until they meet."""
    secrets = mint_secrets(sites)
    operator_file = description.dir / OPERATOR_TOKEN_FILE
    write_private(operator_file, secrets.operator + "\n")
    description.operator_token_file = operator_file
    write_restic_files(description.dir, sites, secrets)
    repositories = repositories_dir(description.dir, sites)
    for site in sites:
        record = description.sites[site.name]
        check_address_free(site, DRD_API_PORT)
        peers = [s for s in sites if s != site]
        layout = write_drd_files(
            site, record.root, record.conf, peers=peers,
            peer_confs={p.name: description.sites[p.name].conf for p in peers},
            secrets=secrets, repositories=repositories, rgw=_rgw_settings(description),
            lab_dir=description.dir)
        StateStore.initialise(layout.state_dir, site.name).close()
        record.drd_config, record.api_url = layout.config, site.api_url
        start_role(site, record, DaemonRole.DRD, record_process)
    wait_daemons_meet(description, secrets.operator)


def wait_daemons_meet(description: LabDescription, operator_token: str,
                      timeout: float = DAEMONS_MEET_TIMEOUT) -> None:
    """Wait until every site's daemon has exchanged heartbeats with all its peers."""
    deadline = time.monotonic() + timeout
    for record in description.sites.values():
        drd = record.process(DaemonRole.DRD)
        assert drd is not None and record.api_url is not None
        target = ApiTarget(url=record.api_url, token=operator_token)
        reason = "no answer yet"
        while True:
            if not processes.is_running(drd):
                raise daemon_failed(record.name, drd, "exited")
            try:
                status = SiteStatus.model_validate(get_json(target, "/v1/status", timeout=2))
                # Met means both ways: the peer answered our heartbeat and sent its own.
                unmet = [p.name for p in status.peers
                         if not (p.reachable and p.last_heartbeat_received
                                 and p.last_heartbeat_answered)]
                if not unmet:
                    break
                reason = f"no heartbeats both ways yet with: {', '.join(unmet)}"
            except ApiClientError as error:
                reason = str(error)
            if time.monotonic() > deadline:
                raise LabError(f"site {record.name}: drd daemon not ready after "
                               f"{timeout:.0f} s: {reason}", hint=f"see {drd.log}")
            time.sleep(0.2)


def _wait_mirror_daemons(description: LabDescription, sites: list[SiteSpec]) -> None:
    """Wait until each site's rbd-mirror has registered with its cluster's service map."""
    if len(sites) < 2:
        return
    deadline = time.monotonic() + MIRROR_REGISTER_TIMEOUT
    for site in sites:
        record = description.sites[site.name]
        mirror = record.process(DaemonRole.RBD_MIRROR)
        assert mirror is not None
        with connect(record.conf) as cluster:
            while cluster_health(cluster).services.get("rbd-mirror", 0) < 1:
                if not processes.is_running(mirror):
                    raise daemon_failed(site.name, mirror, "exited")
                if time.monotonic() > deadline:
                    raise LabError(f"site {site.name}: rbd-mirror did not register within "
                                   f"{MIRROR_REGISTER_TIMEOUT:.0f} s",
                                   hint=f"see {mirror.log}")
                time.sleep(0.25)


def _revive(description: LabDescription, sites: list[SiteSpec], report: Report) -> LabDescription:
    """Restart any daemon of a ready lab that has died, in dependency order."""
    dead = [(site, proc) for site, proc in description.all_processes()
            if not processes.is_running(proc)]
    if not dead:
        report(f"lab at {description.dir} is already up; nothing to do")
        return description
    by_name = {site.name: site for site in sites}

    def record_process(site: SiteRecord, process: ProcessRecord) -> None:
        site.replace_process(process)
        save_description(description)

    for role in START_ORDER:
        for site, proc in dead:
            if proc.role is role:
                report(f"site {site.name}: {proc.entity} is not running; restarting it")
                start_role(by_name[site.name], site, role, record_process)
    hint = (f"if an OSD lost its in-memory data, rebuild the lab: "
            f"`drd lab down --dir {description.dir}` then `drd lab up`")
    for record in description.sites.values():
        try:
            with connect(record.conf) as cluster:
                wait_settled(record.name, cluster, record.processes, hint=hint)
        except CephError as error:
            raise LabError(f"site {record.name}: {error}", hint=hint) from error
    report(f"lab at {description.dir} is up again")
    return description

