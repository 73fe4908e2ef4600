"""The lab's object gateways: one radosgw per site, one realm, zone a as master.

The master zone is configured and its gateway started first, because a secondary
pulls the realm from that gateway and commits its own zone through it. The
secondaries then join one after the other. The multisite system user's S3 keys go to one
0600 file in the lab dir, never on a command line.
"""

import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

from drd.ceph.rgw_admin import RgwAdmin, RgwAdminError, S3Keys
from drd.ceph.rgw_multisite import Multisite, ZoneSpec, create_master_zone, join_secondary_zone
from drd.domain.site import SiteKind
from drd.lab import processes
from drd.lab.description import DaemonRole, LabDescription, ProcessRecord, SiteRecord
from drd.lab.errors import LabError
from drd.lab.site_boot import RecordProcess, check_address_free, daemon_failed, start_role
from drd.lab.topology import RGW_PORT, SiteSpec
from drd.private_files import write_private

LAB_CITY = Multisite(realm="drd-lab", zonegroup="city", system_uid="drd-sync")
SYSTEM_KEYS_FILE = "rgw-system-keys.json"
GATEWAY_TIMEOUT = 60.0

Report = Callable[[str], None]


def master_site(sites: list[SiteSpec]) -> SiteSpec:
    return next((s for s in sites if s.kind is SiteKind.PRODUCTION), sites[0])


def start_gateways(description: LabDescription, sites: list[SiteSpec],
                   record_process: RecordProcess, report: Report) -> None:
    """Configure multisite and start every site's gateway; each answers S3 on return."""
    master = master_site(sites)
    for site in sites:
        check_address_free(site, RGW_PORT)
    record = description.sites[master.name]
    try:
        keys, done = create_master_zone(RgwAdmin(record.conf), LAB_CITY, _zone(master))
    except RgwAdminError as error:
        raise LabError(f"site {master.name}: RGW master zone: {error}") from error
    keys_file = description.dir / SYSTEM_KEYS_FILE
    write_private(keys_file, json.dumps({"access_key": keys.access_key,
                                         "secret_key": keys.secret_key}) + "\n")
    description.rgw_realm, description.rgw_system_keys_file = LAB_CITY.realm, keys_file
    _start_gateway(master, record, record_process)
    report(f"site {master.name}: RGW master zone {master.name} on {master.rgw_url}"
           + (f" ({'; '.join(done)})" if done else ""))
    # Period commits go one at a time: two at once race on the period's epoch, and the
    # loser fails with error 2202.
    for site in (s for s in sites if s != master):
        site_record = description.sites[site.name]
        try:
            steps = join_secondary_zone(RgwAdmin(site_record.conf), LAB_CITY, _zone(site),
                                        master.rgw_url, keys)
        except RgwAdminError as error:
            raise LabError(f"site {site.name}: RGW secondary zone: {error}") from error
        _start_gateway(site, site_record, record_process)
        report(f"site {site.name}: RGW secondary zone {site.name} on {site.rgw_url}"
               + (f" ({'; '.join(steps)})" if steps else ""))


def lab_rgw_settings(lab_dir: Path) -> dict[str, str]:
    """The `rgw:` section of every lab site config (drd.domain.rgw_settings)."""
    return {"realm": LAB_CITY.realm, "zonegroup": LAB_CITY.zonegroup,
            "system_keys_file": str(lab_dir / SYSTEM_KEYS_FILE), "lab_dir": str(lab_dir)}


def read_system_keys(path: Path) -> S3Keys:
    data = json.loads(path.read_text())
    return S3Keys(data["access_key"], data["secret_key"])


def _zone(site: SiteSpec) -> ZoneSpec:
    return ZoneSpec(name=site.name, endpoint=site.rgw_url)


def _start_gateway(site: SiteSpec, record: SiteRecord, record_process: RecordProcess) -> None:
    started = start_role(site, record, DaemonRole.RGW, record_process)
    record.rgw_zone, record.rgw_url = site.name, site.rgw_url
    wait_gateway(site.name, site.rgw_url, started.record)


def wait_gateway(site_name: str, url: str, process: ProcessRecord,
                 timeout: float = GATEWAY_TIMEOUT) -> None:
    """Wait until the gateway answers an anonymous S3 request (any HTTP status)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2):  # noqa: S310 (a lab http URL)
                return
        except urllib.error.HTTPError:
            return  # it answered, if only to refuse
        except OSError:
            pass
        if not processes.is_running(process):
            raise daemon_failed(site_name, process, "exited")
        if time.monotonic() > deadline:
            raise LabError(f"site {site_name}: radosgw did not answer on {url} within "
                           f"{timeout:.0f} s", hint=f"see {process.log}")
        time.sleep(0.2)
