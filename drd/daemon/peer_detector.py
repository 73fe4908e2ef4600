"""The failure detector's signals of every peer, and the loop that probes each peer's Ceph.

The heartbeat loop records the API signal (a heartbeat answered, or one received from
the peer: proof of life either way); `peer_ceph_loop` records the Ceph signal of every
peer whose ceph.conf this site has. A peer without one is never judged lost here: one
signal alone is not enough (drd.domain.failure_detector).
"""

import asyncio
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

import structlog

from drd.ceph.cluster import CephError, ClusterHandle
from drd.ceph.site_probe import SiteProbe, probe_site
from drd.daemon.single_flight import SingleFlight, StillWaiting
from drd.domain.failure_detector import (
    DetectorSettings,
    PeerState,
    PeerVerdict,
    Signal,
    SignalTrack,
    judge,
)
from drd.domain.site_config import SiteConfig

log = structlog.get_logger()


class ConfigSource(Protocol):
    """Whatever holds the current config; SiteRuntime does, swapped on reload."""

    @property
    def config(self) -> SiteConfig: ...


class PeerSignals:
    """Every peer's signal tracks; verdicts judged on demand, changes logged."""

    def __init__(self, settings: DetectorSettings, peers: list[str]) -> None:
        self.settings = settings
        self._tracks: dict[str, dict[Signal, SignalTrack]] = {p: {} for p in peers}
        self._states: dict[str, PeerState] = dict.fromkeys(peers, PeerState.ALIVE)

    def reconfigure(self, settings: DetectorSettings, peers: list[str]) -> None:
        self.settings = settings
        self._tracks = {p: self._tracks.get(p, {}) for p in peers}
        self._states = {p: self._states.get(p, PeerState.ALIVE) for p in peers}

    def record(self, peer: str, signal: Signal, ok: bool, at: datetime,
               detail: str) -> None:
        tracks = self._tracks.get(peer)
        if tracks is None:  # the peer left the config meanwhile
            return
        track = tracks.get(signal, SignalTrack())
        tracks[signal] = track.ok(at, detail) if ok else track.failed(at, detail)
        verdict = self.verdict(peer)
        if verdict.state is not self._states[peer]:
            log.warning("peer detector state changed", peer=peer, state=str(verdict.state),
                        was=str(self._states[peer]), reason=verdict.reason)
            self._states[peer] = verdict.state

    def verdict(self, peer: str) -> PeerVerdict:
        return judge(self._tracks.get(peer, {}), self.settings)

    def track(self, peer: str, signal: Signal) -> SignalTrack | None:
        return self._tracks.get(peer, {}).get(signal)


class PeerCephProbes:
    """One handle and one call in flight per peer whose Ceph this site can reach."""

    def __init__(self) -> None:
        self._probes: dict[str, tuple[str, ClusterHandle, SingleFlight[SiteProbe]]] = {}

    def probe_targets(self, config: SiteConfig) -> list[str]:
        """Open handles for the configured peers (again when a ceph_conf changed)."""
        wanted = {peer.name: str(peer.ceph_conf) for peer in config.peers
                  if peer.ceph_conf is not None}
        deadline = config.takeover.probe_deadline_seconds
        for name in list(self._probes):
            conf, handle, flight = self._probes[name]
            if wanted.get(name) != conf or flight.deadline != deadline:
                handle.close()
                flight.close()
                del self._probes[name]
        for name, conf in wanted.items():
            if name not in self._probes:
                self._probes[name] = (conf, ClusterHandle(
                    Path(conf), config.ceph.client, deadline),
                    SingleFlight(f"probe-{name}", deadline))
        return sorted(wanted)

    async def probe(self, peer: str, pool: str, prober: str) -> tuple[bool, str]:
        _, handle, flight = self._probes[peer]
        try:
            found = await flight.call(lambda: handle.run(
                lambda cluster: probe_site(cluster, pool, prober)))
        except TimeoutError:
            return False, f"no answer within {flight.deadline:g} s"
        except (StillWaiting, CephError) as error:
            return False, str(error)
        return True, found.describe()

    def close(self) -> None:
        for _, handle, flight in self._probes.values():
            flight.close()
            handle.close()
        self._probes.clear()


async def peer_ceph_loop(config_source: ConfigSource, signals: PeerSignals,
                         probes: PeerCephProbes) -> None:
    """Forever: probe every peer's Ceph at once, then sleep out the heartbeat interval."""
    while True:
        started = time.monotonic()
        config = config_source.config
        peers = probes.probe_targets(config)
        pool, prober = config.takeover.probe_pool, config.site.name
        results = await asyncio.gather(*(probes.probe(peer, pool, prober) for peer in peers))
        now = datetime.now(UTC)
        for peer, (ok, detail) in zip(peers, results, strict=True):
            signals.record(peer, Signal.CEPH, ok, now, detail)
        interval = config.heartbeat.interval_seconds
        await asyncio.sleep(max(0.0, interval - (time.monotonic() - started)))
