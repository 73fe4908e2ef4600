"""SiteAccess from a site config: this site's cluster and each peer's that the config
gives a ceph.conf for, peer reachability from the heartbeats, and the RGW realm."""

from collections.abc import Callable
from pathlib import Path

from drd.api.client import ApiClientError, ApiTarget, post_json
from drd.api.tokens import TokenFileError, read_secret_file
from drd.ceph.cluster import ClusterHandle
from drd.ceph.systemd_units import RESTART_TIMEOUT, UnitError, systemctl, systemctl_argv
from drd.domain.site import SiteKind
from drd.domain.site_config import SiteConfig
from drd.lab.errors import LabError
from drd.runbooks.rgw_access import RgwRealm, configured_realm
from drd.runbooks.step_api import StepFailed

# A runbook step may wait on a cluster that is going away; it must not hang on it.
CEPH_DEADLINE_SECONDS = 10.0
# For a site whose drd the heartbeats say is lost: its Ceph is most likely gone too, and
# a forced promotion must not spend 10 s finding that out (the failover's RTO did, in the
# lab); a live cluster on the same network still answers well within it.
LOST_SITE_DEADLINE_SECONDS = 1.5


class ConfiguredSites:
    """Implements step_api.SiteAccess. Handles are opened on first use, closed by `close`."""

    def __init__(self, config: SiteConfig,
                 reachable: Callable[[str], bool] = lambda _site: True) -> None:
        self._config = config
        self._reachable = reachable
        self._handles: dict[tuple[str, float], ClusterHandle] = {}

    def ceph_conf(self, site: str) -> str:
        return str(self._conf(site))

    def cluster(self, site: str) -> ClusterHandle:
        deadline = (CEPH_DEADLINE_SECONDS if self.peer_reachable(site)
                    else LOST_SITE_DEADLINE_SECONDS)
        key = (site, deadline)
        if key not in self._handles:
            self._handles[key] = ClusterHandle(self._conf(site), self._config.ceph.client,
                                               deadline)
        return self._handles[key]

    def kind(self, site: str) -> SiteKind:
        """The site's fixed kind (production, same-city, remote), from the config."""
        if site == self._config.site.name:
            return self._config.site.kind
        peer = next((p for p in self._config.peers if p.name == site), None)
        if peer is None:
            raise StepFailed(f"site {site!r} is not known here")
        return peer.kind

    def sites_of_kind(self, kind: SiteKind) -> list[str]:
        named = [(self._config.site.name, self._config.site.kind)]
        named += [(peer.name, peer.kind) for peer in self._config.peers]
        return sorted(name for name, site_kind in named if site_kind is kind)

    def rgw(self) -> RgwRealm:
        """The RGW realm as the config's `rgw:` section says; StepFailed without one."""
        return configured_realm(self._config)

    def peer_reachable(self, site: str) -> bool:
        return site == self._config.site.name or self._reachable(site)

    def restart_rbd_mirror(self, site: str) -> str:
        ceph = self._config.ceph
        if site != self._config.site.name:
            return self._ask_peer_to_restart(site)
        try:
            if ceph.lab_dir is not None:
                from drd.lab.daemon_restart import restart_role  # the lab only
                from drd.lab.description import DaemonRole
                started = restart_role(ceph.lab_dir, site, DaemonRole.RBD_MIRROR)
                return f"restarted the lab's rbd-mirror of site {site} (pid {started.record.pid})"
            if ceph.rbd_mirror_unit is None:
                raise StepFailed(f"site {site}'s config names no ceph.rbd_mirror_unit, so "
                                 f"restart its rbd-mirror by hand")
            systemctl(systemctl_argv("restart", ceph.rbd_mirror_unit), RESTART_TIMEOUT)
        except (UnitError, LabError) as error:
            raise StepFailed(f"restarting site {site}'s rbd-mirror failed: {error}") from error
        return f"restarted {ceph.rbd_mirror_unit}"

    def _ask_peer_to_restart(self, site: str) -> str:
        """Have `site`'s drd restart its own rbd-mirror (POST /v1/peers/rbd-mirror/restart)."""
        peer = next((p for p in self._config.peers if p.name == site), None)
        if peer is None:
            raise StepFailed(f"site {site!r} is not known here")
        try:
            answer = post_json(ApiTarget(peer.url, read_secret_file(peer.token_file)),
                               "/v1/peers/rbd-mirror/restart", {}, RESTART_TIMEOUT + 30.0)
        except (ApiClientError, TokenFileError) as error:
            raise StepFailed(f"asking site {site}'s drd to restart its rbd-mirror failed: "
                             f"{error}") from error
        return f"site {site}'s drd {answer.get('done', 'restarted its rbd-mirror')}"

    def close(self) -> None:
        for handle in self._handles.values():
            handle.close()
        self._handles.clear()

    def _conf(self, site: str) -> Path:
        if site == self._config.site.name:
            return self._config.ceph.conf
        peer = next((p for p in self._config.peers if p.name == site), None)
        if peer is None:
            known = ", ".join([self._config.site.name, *(p.name for p in self._config.peers)])
            raise StepFailed(f"site {site!r} is not known here (known: {known})")
        if peer.ceph_conf is None:
            raise StepFailed(f"site {self._config.site.name} cannot reach site {site}'s Ceph: "
                             f"its config gives no peers[].ceph_conf for {site}; run the "
                             f"runbook on a site that can")
        return peer.ceph_conf
