"""Each lab site's drd daemon: its site config, tokens and state dir; and the lab
tenants' restic password files and repositories directory.

The YAML is rendered by a pure function; `write_drd_files` writes it with the
secrets, each file 0600. Every site's tokens file accepts the lab's operator token
and the peer token of each other site, so the three daemons can call each other.

Backups go to the remote site: each tenant's default repository is a directory under
`<lab>/<remote site>/restic/`. Its password file is `<lab>/restic/<tenant>.password`,
one path that every site's daemon reads, as a real platform puts the file at the same
path on each site; `policies/water.yaml` names the default lab's.

Runbooks move the RGW master zone with the config's `rgw:` section: the lab's realm,
its system user's keys file (`<lab>/rgw-system-keys.json`, 0600) and `lab_dir`, so a
daemon restarts the lab's gateways by the PIDs lab.json records.
"""

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from secrets import token_urlsafe
from typing import Any

import yaml

from drd.api.tokens import TokenEntry, hash_token, new_token, write_tokens
from drd.domain.site import SiteKind
from drd.lab.daemon_commands import DRD_DIR
from drd.lab.topology import DRD_API_PORT, LAB_TENANTS, SiteSpec
from drd.private_files import write_private

OPERATOR_TOKEN_FILE = "operator.token"  # noqa: S105  (a file name, not a token)
RESTIC_DIR = "restic"


def restic_password_file(lab_dir: Path, tenant: str) -> Path:
    """Where the lab keeps `tenant`'s repository password, for every site's daemon."""
    return lab_dir / RESTIC_DIR / f"{tenant}.password"


def repositories_dir(lab_dir: Path, sites: list[SiteSpec]) -> Path | None:
    """The remote site's directory of tenant repositories; None in a lab without one."""
    remote = next((site for site in sites if site.kind is SiteKind.REMOTE), None)
    return None if remote is None else lab_dir / remote.name / RESTIC_DIR


@dataclass(frozen=True)
class DrdLayout:
    root: Path  # <site root>/drd

    @property
    def config(self) -> Path:
        return self.root / "drd.yaml"

    @property
    def tokens(self) -> Path:
        return self.root / "tokens.yaml"

    @property
    def peer_token(self) -> Path:
        return self.root / "peer.token"

    @property
    def state_dir(self) -> Path:
        return self.root / "state"

    @property
    def policies_dir(self) -> Path:
        return self.root / "policies"

    @property
    def runbooks_dir(self) -> Path:
        return self.root / "runbooks"


def drd_layout(site_root: Path) -> DrdLayout:
    return DrdLayout(site_root / DRD_DIR)


def render_drd_config(site: SiteSpec, ceph_conf: Path, layout: DrdLayout,
                      peers: list[SiteSpec], peer_confs: dict[str, Path], *,
                      repositories: Path | None = None,
                      rgw: Mapping[str, str] | None = None,
                      lab_dir: Path | None = None) -> dict[str, Any]:
    """The site config of `site`'s daemon, as the dict its YAML holds.

    It names each peer's ceph.conf too: drd reads the peers' copies to measure RPO,
    and each site's RGW zone, which the lab names after the site; when the lab has a
    remote site, the directory of tenants' default repositories there; and with `rgw`
    (drd.lab.rgw_lab.lab_rgw_settings), how runbooks move the RGW master zone; with
    `lab_dir`, the lab whose rbd-mirror a forced promote may restart.
    """
    return {
        "site": {"name": site.name, "kind": site.kind.value},
        "ceph": {"conf": str(ceph_conf), "client": "admin", "rgw_zone": site.name,
                 **({"lab_dir": str(lab_dir)} if lab_dir is not None else {})},
        "api": {"listen": f"{site.address}:{DRD_API_PORT}",
                "tokens_file": str(layout.tokens)},
        "paths": {"state_dir": str(layout.state_dir),
                  "policies_dir": str(layout.policies_dir),
                  "runbooks_dir": str(layout.runbooks_dir)},
        "peers": [{"name": peer.name, "kind": peer.kind.value, "url": peer.api_url,
                   "token_file": str(layout.peer_token),
                   "ceph_conf": str(peer_confs[peer.name]), "rgw_zone": peer.name}
                  for peer in peers],
        "tenants": {tenant: {"grants": [{"pool": "rbd", "namespace": tenant}]}
                    for tenant in LAB_TENANTS},
        # A lab shows bucket sync at demo pace; sites keep the 15 s and 5 min defaults.
        "object_sync": {"interval": "5s", "stuck_after": "30s"},
        "heartbeat": {"interval_seconds": 1.0, "timeout_seconds": 0.8,
                      "lost_after_missed": 3},
        "log": {"level": "info"},
        **lab_sections(repositories, rgw),
    }


@dataclass(frozen=True)
class LabSecrets:
    """Secrets minted for one lab: the operator's token, each site's peer token, and each
    lab tenant's restic repository password."""

    operator: str = field(repr=False)
    peers: dict[str, str] = field(repr=False)
    restic: dict[str, str] = field(repr=False, default_factory=dict)


def mint_secrets(sites: list[SiteSpec]) -> LabSecrets:
    return LabSecrets(operator=new_token(), peers={s.name: new_token() for s in sites},
                      restic={tenant: token_urlsafe(32) for tenant in LAB_TENANTS})


def write_restic_files(lab_dir: Path, sites: list[SiteSpec],
                       lab_secrets: LabSecrets) -> list[Path]:
    """Write each lab tenant's password file (0600) that does not exist yet, and make the
    repositories directory; return the files written.

    An existing password file is kept: a repository may already be encrypted with it.
    """
    (lab_dir / RESTIC_DIR).mkdir(exist_ok=True, mode=0o700)
    written = []
    for tenant, password in lab_secrets.restic.items():
        path = restic_password_file(lab_dir, tenant)
        if not path.exists():
            write_private(path, password + "\n")
            written.append(path)
    repositories = repositories_dir(lab_dir, sites)
    if repositories is not None:
        repositories.mkdir(parents=True, exist_ok=True, mode=0o700)
    return written


def add_missing_sections(config: Path, sections: Mapping[str, Any]) -> list[str]:
    """Give a site config written by an older drd the sections it lacks (`backup`,
    `rgw`); the names of those added. Everything else in it stays as it was."""
    data = yaml.safe_load(config.read_text())
    if not isinstance(data, dict):
        return []
    added = [name for name in sections if data.get(name) is None]
    if added:
        data.update({name: sections[name] for name in added})
        config.write_text(yaml.safe_dump(data, sort_keys=False))
    return added


def lab_sections(repositories: Path | None,
                 rgw: Mapping[str, str] | None) -> dict[str, Any]:
    """The optional sections every lab site config holds, as `render_drd_config` writes
    them."""
    sections: dict[str, Any] = {}
    if repositories is not None:
        sections["backup"] = {"repositories": str(repositories)}
    if rgw is not None:
        sections["rgw"] = dict(rgw)
    return sections


def write_drd_files(site: SiteSpec, site_root: Path, ceph_conf: Path, *,
                    peers: list[SiteSpec], peer_confs: dict[str, Path],
                    secrets: LabSecrets, repositories: Path | None = None,
                    rgw: Mapping[str, str] | None = None,
                    lab_dir: Path | None = None) -> DrdLayout:
    """Write the site config, its tokens file and its peer token; return where."""
    layout = drd_layout(site_root)
    for directory in (layout.root, layout.state_dir, layout.policies_dir,
                      layout.runbooks_dir):
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    config = render_drd_config(site, ceph_conf, layout, peers, peer_confs,
                               repositories=repositories, rgw=rgw, lab_dir=lab_dir)
    layout.config.write_text(yaml.safe_dump(config, sort_keys=False))
    entries = [TokenEntry(name="lab-operator", role="operator",
                          sha256=hash_token(secrets.operator))]
    entries += [TokenEntry(name=f"site-{peer.name}", role="peer",
                           sha256=hash_token(secrets.peers[peer.name])) for peer in peers]
    write_tokens(layout.tokens, entries)
    write_private(layout.peer_token, secrets.peers[site.name] + "\n")
    return layout
