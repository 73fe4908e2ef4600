"""What Ceph says during the RGW sync benchmark: sync status on b, and the gateways' RSS.

`radosgw-admin sync status` and `bucket sync status --bucket X` run against zone b's
cluster every few seconds from a thread of their own, so that their verdicts can be
set beside the lag the watchers measured at the same moment. The gateways' resident
memory comes from the PIDs the lab recorded in lab.json.
"""

import threading
import time
from dataclasses import dataclass, field

from drd.ceph.rgw_admin import RgwAdmin, RgwAdminError
from drd.ceph.rgw_bucket_sync import parse_rgw_time
from drd.domain.rgw_sync_status import SyncSource, parse_bucket_sync_status, parse_sync_status
from drd.lab.description import DaemonRole, LabDescription
from drd.lab.processes import resident_bytes


@dataclass(frozen=True)
class StatusSample:
    """One reading of both commands on a zone; times are time.monotonic()."""

    at: float  # when `sync status` was sent
    wall: float  # the same moment by time.time(), to age Ceph's timestamps
    took_s: float  # both commands together
    sync: list[SyncSource]
    bucket: list[SyncSource]
    error: str = ""

    def source(self, zone: str) -> SyncSource | None:
        return next((s for s in self.sync if s.source == zone), None)

    def bucket_source(self, zone: str) -> SyncSource | None:
        return next((s for s in self.bucket if s.source == zone), None)

    def oldest_change_age(self, zone: str) -> float | None:
        """How old, when the reading began, the oldest change `sync status` said was not
        applied from `zone` was; None when it named none."""
        source = self.source(zone)
        if source is None or not source.oldest_change:
            return None
        when = parse_rgw_time(source.oldest_change)
        return None if when is None else self.wall - when.timestamp()


def read_status(admin: RgwAdmin, zone: str, bucket: str) -> StatusSample:
    started, wall = time.monotonic(), time.time()
    try:
        sync = parse_sync_status(admin.text("sync", "status", "--rgw-zone", zone))
        per_bucket = parse_bucket_sync_status(
            admin.text("bucket", "sync", "status", "--bucket", bucket, "--rgw-zone", zone))
    except RgwAdminError as error:
        return StatusSample(started, wall, time.monotonic() - started, [], [],
                            error=str(error))
    return StatusSample(started, wall, time.monotonic() - started, sync, per_bucket)


@dataclass
class StatusSampler:
    """Reads sync status on one zone every `every` s until stopped."""

    admin: RgwAdmin
    zone: str
    bucket: str
    every: float
    samples: list[StatusSample] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=f"status-{self.zone}",
                                        daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def _run(self) -> None:
        while True:
            sample = read_status(self.admin, self.zone, self.bucket)
            self.samples.append(sample)
            if self._stop.wait(max(0.0, self.every - (time.monotonic() - sample.at))):
                return


def gateway_rss(description: LabDescription) -> dict[str, int]:
    """Resident bytes of each site's radosgw, by the PID the lab recorded."""
    rss: dict[str, int] = {}
    for name, site in sorted(description.sites.items()):
        record = site.process(DaemonRole.RGW)
        rss[name] = resident_bytes([record]) if record is not None else 0
    return rss


@dataclass
class MemorySampler:
    """The gateways' RSS once a second, for the peak under load."""

    description: LabDescription
    peak: dict[str, int] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="rss", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def _run(self) -> None:
        while True:
            for name, value in gateway_rss(self.description).items():
                self.peak[name] = max(self.peak.get(name, 0), value)
            if self._stop.wait(1.0):
                return
