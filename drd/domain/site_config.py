"""One site's drd configuration: who this site is, where its Ceph and API are, its peers,
and the tenants it serves with the pools each may protect and the platform's limits.

Field rules live on the fields; rules that span fields are in `cross_field_issues`, which
runs only after every field is valid. Pure: no file is opened and no name is resolved.
"""

import ipaddress
import re
from collections.abc import Callable, Iterator
from enum import StrEnum
from functools import partial
from pathlib import Path
from typing import Annotated
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from drd.domain import site_rules
from drd.domain.durations import PositiveDuration
from drd.domain.policy_names import TenantName
from drd.domain.restic_values import RepositoryUrl
from drd.domain.rgw_settings import RgwSettings
from drd.domain.rules import RuleViolation, is_systemd_unit
from drd.domain.site import SiteKind
from drd.domain.takeover_settings import TakeoverSettings
from drd.domain.tenant_grants import PlatformLimits, TenantGrants
from drd.domain.tenant_policy import TenantPolicy

SITE_NAME_PATTERN = r"^[a-z][a-z0-9-]{0,30}$"
CEPHX_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"
_HOST_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_HOSTNAME = re.compile(rf"^{_HOST_LABEL}(?:\.{_HOST_LABEL})*$")
_DOTTED_NUMBERS = re.compile(r"^[0-9.]+$")
_MAX_PORT = 65535
_MAX_PEERS = site_rules.MAX_PEERS


RgwZoneName = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")]


def _site_name(value: str) -> str:
    if not re.fullmatch(SITE_NAME_PATTERN, value):
        raise ValueError(f"{value!r} is not a site name: use a lowercase letter followed by "
                         f"up to 30 lowercase letters, digits or '-'")
    return value


def _absolute_path(value: Path) -> Path:
    if not value.is_absolute():
        raise ValueError(f"must be an absolute path (starting with /), got '{value}'")
    return value


def _token_file(value: Path) -> Path:
    # Never echo the value: someone may have pasted the token itself here.
    if not value.is_absolute():
        raise ValueError("must be the absolute path of a file that holds the token, "
                         "never the token itself")
    return value


def _cephx_id(value: str) -> str:
    if value.startswith("client."):
        raise ValueError(f"give the cephx id without the 'client.' prefix, "
                         f"e.g. {value.removeprefix('client.')!r}")
    if not re.fullmatch(CEPHX_ID_PATTERN, value):
        raise ValueError(f"{value!r} is not a cephx id: use letters, digits, '_', '.' or '-'")
    return value


def _check_host(host: str) -> None:
    if _DOTTED_NUMBERS.match(host):
        try:
            ipaddress.IPv4Address(host)
        except ValueError:
            raise ValueError(f"{host!r} is not a valid IPv4 address") from None
    elif not (len(host) <= 253 and _HOSTNAME.match(host)):
        raise ValueError(f"host {host!r} must be an IPv4 address or a host name")


def split_host_port(value: str) -> tuple[str, int]:
    """Split `host:port`; raise ValueError with a message for people if it is not one."""
    host, colon, port = value.rpartition(":")
    if not colon or not host:
        raise ValueError(f"{value!r} must be host:port, e.g. 127.0.1.1:8470")
    if not port.isdigit() or not 1 <= int(port) <= _MAX_PORT:
        raise ValueError(f"port {port!r} must be a number from 1 to {_MAX_PORT}")
    _check_host(host)
    return host, int(port)


def _listen_address(value: str) -> str:
    split_host_port(value)
    return value


def _base_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError("must be an http:// or https:// base URL, "
                         "e.g. http://127.0.2.1:8470")
    if parts.username is not None or parts.password is not None:
        raise ValueError("must not carry credentials; the token belongs in token_file")
    if parts.query or parts.fragment:
        raise ValueError("must be a base URL, without '?' query or '#' fragment")
    try:
        port = parts.port
    except ValueError:
        raise ValueError(f"port in {value!r} must be a number from 1 to {_MAX_PORT}"
                         ) from None
    if port == 0:
        raise ValueError(f"port in {value!r} must be a number from 1 to {_MAX_PORT}")
    _check_host(parts.hostname or "")
    return value


SiteName = Annotated[str, AfterValidator(_site_name),
                     Field(json_schema_extra={"pattern": SITE_NAME_PATTERN})]
AbsolutePath = Annotated[Path, AfterValidator(_absolute_path)]
TokenFile = Annotated[Path, AfterValidator(_token_file)]
CephxId = Annotated[str, AfterValidator(_cephx_id),
                    Field(json_schema_extra={"pattern": CEPHX_ID_PATTERN})]
ListenAddress = Annotated[str, AfterValidator(_listen_address)]


def _unit_name(value: str) -> str:
    if not is_systemd_unit(value):
        raise ValueError(f"{value!r} is not a systemd unit name such as "
                         f"ceph-rbd-mirror@admin.service")
    return value


SystemdUnit = Annotated[str, AfterValidator(_unit_name)]
BaseUrl = Annotated[str, AfterValidator(_base_url)]


class LogLevel(StrEnum):
    DEBUG = "debug"
    INFO = "info"
    WARNING = "warning"
    ERROR = "error"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SiteIdentity(_Section):
    """Who this site is."""

    name: SiteName = Field(description="Short name of this site, unique among the three "
                                        "sites.", examples=["a"])
    kind: SiteKind = Field(description="Fixed role of this data centre: production, "
                                       "same-city or remote.", examples=["production"])


class CephSettings(_Section):
    """How drd reaches this site's Ceph cluster."""

    conf: AbsolutePath = Field(description="ceph.conf of this site's cluster.",
                               examples=["/etc/ceph/ceph.conf"])
    client: CephxId = Field(description="cephx id drd authenticates as, without 'client.'.",
                            examples=["admin"])
    rgw_zone: RgwZoneName | None = Field(
        default=None, description="RGW multisite zone of this site's object gateways; "
                                  "omit if the site runs none. drd watches bucket sync "
                                  "only between sites that name their zone.",
        examples=["a"])
    rbd_mirror_unit: SystemdUnit | None = Field(
        default=None,
        description="systemd unit of this site's rbd-mirror daemon, on drd's host. A "
                    "forced promote here whose journal replay from the lost site is stuck "
                    "fences that replayer and then restarts this unit, so that this site "
                    "replicates again; without it drd asks an operator to restart it.",
        examples=["ceph-rbd-mirror@admin.service"])
    lab_dir: AbsolutePath | None = Field(
        default=None,
        description="The lab only, instead of rbd_mirror_unit: the lab whose lab.json "
                    "records this site's rbd-mirror process, which drd restarts by PID.",
        examples=["/var/lib/drd-lab"])

    @model_validator(mode="after")
    def _one_way_to_restart(self) -> "CephSettings":
        if self.rbd_mirror_unit is not None and self.lab_dir is not None:
            raise ValueError("give at most one of rbd_mirror_unit (the systemd unit of "
                             "this site's rbd-mirror) and lab_dir (the lab's)")
        return self


class ApiSettings(_Section):
    """This site's drd API."""

    listen: ListenAddress = Field(
        description="host:port the API listens on; host is an IPv4 address or a host name, "
                    "port 1-65535.", examples=["127.0.1.1:8470"])
    tokens_file: AbsolutePath = Field(
        description="File of the tokens that operators and peers present to this API.",
        examples=["/etc/drd/tokens.yaml"])

    @property
    def listen_host(self) -> str:
        return split_host_port(self.listen)[0]

    @property
    def listen_port(self) -> int:
        return split_host_port(self.listen)[1]


class PathSettings(_Section):
    """Where drd keeps state and reads policies and runbooks."""

    state_dir: AbsolutePath = Field(description="drd's state: SQLite store, journal, locks.",
                                    examples=["/var/lib/drd"])
    policies_dir: AbsolutePath = Field(description="Directory of tenant policy YAML files.",
                                       examples=["/etc/drd/policies"])
    runbooks_dir: AbsolutePath = Field(description="Directory of runbook YAML files.",
                                       examples=["/etc/drd/runbooks"])


class PeerConfig(_Section):
    """Another site this drd talks to."""

    name: SiteName = Field(description="The peer site's name (its site.name).",
                           examples=["b"])
    kind: SiteKind = Field(description="The peer site's fixed role.", examples=["same-city"])
    url: BaseUrl = Field(description="Base URL of the peer's drd API, http or https.",
                         examples=["http://127.0.2.1:8470"])
    token_file: TokenFile = Field(
        description="File holding the token this site presents when calling the peer; "
                    "a path, never the token itself.", examples=["/etc/drd/peer-token"])
    ceph_conf: AbsolutePath | None = Field(
        default=None, description="ceph.conf for reaching the peer's cluster from here; "
                                  "omit if this site never talks to it directly.",
        examples=["/etc/ceph/b.conf"])
    rgw_zone: RgwZoneName | None = Field(
        default=None, description="The peer's RGW zone, as in its own ceph.rgw_zone; "
                                  "needs ceph_conf, to read that zone's sync state.",
        examples=["b"])


class HeartbeatSettings(_Section):
    """How often peers are probed and when one counts as lost."""

    interval_seconds: float = Field(
        default=2.0, gt=0, le=60, strict=True,
        description="Seconds between heartbeats to each peer; > 0 and <= 60. Default 2.0.",
        examples=[2.0])
    timeout_seconds: float = Field(
        default=1.5, gt=0, strict=True,
        description="Seconds one heartbeat may take; > 0 and less than interval_seconds. "
                    "Default 1.5.", examples=[1.5])
    lost_after_missed: int = Field(
        default=3, ge=1, strict=True,
        description="Consecutive missed heartbeats after which a peer is lost; >= 1. "
                    "Default 3.", examples=[3])


class LogSettings(_Section):
    """Logging."""

    level: LogLevel = Field(default=LogLevel.INFO,
                            description="Lowest level logged: debug, info, warning or error. "
                                        "Default info.", examples=["info"])


class ObjectSyncSettings(_Section):
    """How often bucket sync is measured, and when a shard counts as stuck."""

    interval: PositiveDuration = Field(
        default="15s", validate_default=True,
        description="Time between rounds of bucket sync measurement; each round runs a "
                    "few radosgw-admin calls per bucket. Default 15s.", examples=["15s"])
    stuck_after: PositiveDuration = Field(
        default="5m", validate_default=True,
        description="A bucket shard behind at the same position this long is stuck: "
                    "reported with its repair command, and repaired if the policy says "
                    "repair: auto. Default 5m.", examples=["5m"])


class BackupSettings(_Section):
    """Where tenants' restic repositories are, unless a policy names its own."""

    repositories: RepositoryUrl | None = Field(
        default=None,
        description="restic repository URL under which each tenant's default repository "
                    "lives, as <repositories>/<tenant>: at the remote site, a directory in "
                    "the lab, an S3 bucket on its RGW on real sites. The same on every "
                    "site. Without it, a policy must name its own repository.",
        examples=["s3:http://10.0.3.10:8480/drd-backups"])


class SiteConfig(_Section):
    """The whole configuration of one site's drd (`/etc/drd/site.yaml`)."""

    site: SiteIdentity = Field(description="This site's name and kind.")
    ceph: CephSettings = Field(description="This site's Ceph cluster.")
    api: ApiSettings = Field(description="Where this site's drd API listens.")
    paths: PathSettings = Field(description="Directories drd uses.")
    peers: tuple[PeerConfig, ...] = Field(
        default=(), max_length=_MAX_PEERS,
        description="The other sites, at most two; empty for a single-site deployment.")
    heartbeat: HeartbeatSettings = Field(default_factory=HeartbeatSettings,
                                         description="Peer heartbeats; optional.")
    log: LogSettings = Field(default_factory=LogSettings, description="Logging; optional.")
    takeover: TakeoverSettings = Field(
        default_factory=TakeoverSettings,
        description="How peers are judged lost, and the takeover lease; optional.")
    tenants: dict[TenantName, TenantGrants] = Field(
        default_factory=dict,
        description="Tenants of this platform, by name, with the pools each may protect; "
                    "a policy of a tenant not listed here is refused. Optional.",
        examples=[{"water": {"grants": [{"pool": "rbd", "namespace": "water"}]}}])
    object_sync: ObjectSyncSettings = Field(default_factory=ObjectSyncSettings,
                                            description="Bucket sync measurement; optional.")
    limits: PlatformLimits = Field(default_factory=PlatformLimits,
                                   description="Platform limits on tenant policies; optional.")
    backup: BackupSettings = Field(default_factory=BackupSettings,
                                   description="Tenants' backup repositories; optional.")
    rgw: RgwSettings | None = Field(
        default=None, description="How runbooks move the RGW master zone (rgw_zone_promote, "
                                  "rgw_zone_failback); optional, needs ceph.rgw_zone.")

    def rgw_user(self, tenant: str) -> str:
        """The RGW user that owns `tenant`'s buckets: as configured, else its name."""
        grants = self.tenants.get(tenant)
        return grants.rgw_user if grants is not None and grants.rgw_user else tenant

    def default_repository(self, tenant: str) -> str | None:
        """`tenant`'s repository when its policy names none: <backup.repositories>/<tenant>,
        or None if this config names no place for repositories."""
        base = self.backup.repositories
        return None if base is None else f"{base.rstrip('/')}/{tenant}"

    def backup_repository(self, policy: TenantPolicy) -> str | None:
        """Where `policy`'s backups go: its own repository, else its tenant's default one."""
        if policy.backup is None:
            return None
        return policy.backup.repository or self.default_repository(policy.tenant)

    def peer(self, name: str) -> PeerConfig:
        """The peer called `name`; KeyError naming the known peers if there is none."""
        for peer in self.peers:
            if peer.name == name:
                return peer
        known = ", ".join(peer.name for peer in self.peers) or "none"
        raise KeyError(f"no peer named {name!r} (peers: {known})")

    def cross_field_issues(self, valid_sections: frozenset[str] | None = None
                           ) -> list[RuleViolation]:
        """Every broken rule that spans fields, each at the path to report it on.

        Only rules whose sections are all in `valid_sections` (default: all) run, so a
        config with invalid fields still gets the rules over its valid parts checked.
        """
        valid = frozenset(type(self).model_fields) if valid_sections is None else valid_sections
        rules: tuple[tuple[frozenset[str], Callable[[], Iterator[RuleViolation]]], ...] = (
            (frozenset({"peers"}), partial(site_rules.unique_peer_rules, self)),
            (frozenset({"site", "peers"}), partial(site_rules.own_name_rules, self)),
            (frozenset({"site", "peers"}), partial(site_rules.kind_rules, self)),
            (frozenset({"api", "peers"}), partial(site_rules.url_rules, self)),
            (frozenset({"heartbeat"}), partial(site_rules.heartbeat_rules, self)),
            (frozenset({"rgw", "ceph", "peers"}), partial(site_rules.rgw_rules, self)),
        )
        return [violation for reads, rule in rules if reads <= valid
                for violation in rule()]
