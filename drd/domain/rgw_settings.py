"""The site config's `rgw:` section: what a daemon needs to move the RGW master zone in
a runbook (`rgw_zone_promote`, `rgw_zone_failback`). Pure: the keys file's status comes
from a `stat` function the caller passes in, and its content is read only by the steps.

    rgw:
      realm: city-realm
      zonegroup: city
      system_keys_file: /etc/drd/rgw-system-keys.json   # 0600: {"access_key", "secret_key"}
      gateway_unit: ceph-radosgw@rgw.{zone}.service    # or, in the lab, lab_dir: <lab dir>
"""

import re
from pathlib import Path
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from drd.domain.rules import RuleViolation, StatFile, is_systemd_unit, private_file_issues

RGW_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
ZONE_PLACEHOLDER = "{zone}"


def _rgw_name(value: str) -> str:
    if not re.fullmatch(RGW_NAME_PATTERN, value):
        raise ValueError(f"{value!r} is not an RGW realm or zonegroup name: use up to 64 "
                         f"letters, digits, '_', '.' or '-', starting with a letter or digit")
    return value


RgwName = Annotated[str, AfterValidator(_rgw_name),
                    Field(json_schema_extra={"pattern": RGW_NAME_PATTERN})]


def _keys_file(value: Path) -> Path:
    # Never echo the value: someone may have pasted the keys themselves here.
    if not value.is_absolute():
        raise ValueError("must be the absolute path of the 0600 JSON file that holds the "
                         "system user's keys, never the keys themselves")
    return value


def _lab_dir(value: Path) -> Path:
    if not value.is_absolute():
        raise ValueError(f"must be an absolute path (starting with /), got '{value}'")
    return value


def _gateway_unit(value: str) -> str:
    concrete = value.replace(ZONE_PLACEHOLDER, "zone")
    if "{" in concrete or "}" in concrete:
        raise ValueError(f"{value!r}: the only placeholder is {ZONE_PLACEHOLDER}")
    if not is_systemd_unit(concrete):
        raise ValueError(f"{value!r} is not a systemd unit name such as "
                         f"ceph-radosgw@rgw.{ZONE_PLACEHOLDER}.service (a glob such as "
                         f"ceph-radosgw@*.service names every gateway of this host)")
    return value


class RgwSettings(BaseModel):
    """How this site's drd moves the RGW master zone in a runbook."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    realm: RgwName = Field(description="The RGW multisite realm of the zones.",
                           examples=["city-realm"])
    zonegroup: RgwName = Field(description="The zonegroup whose master zone runbooks move.",
                               examples=["city"])
    system_keys_file: Annotated[Path, AfterValidator(_keys_file)] = Field(
        description="JSON file {\"access_key\": ..., \"secret_key\": ...} of the multisite "
                    "system user, mode 0600, owned by drd; a failback pulls the realm with "
                    "them. A path, never the keys themselves.",
        examples=["/etc/drd/rgw-system-keys.json"])
    gateway_unit: Annotated[str, AfterValidator(_gateway_unit)] | None = Field(
        default=None,
        description="systemd unit of this site's gateways, {zone} replaced by the zone's "
                    "name; drd restarts it when no gateway reloads a new period by itself, "
                    "and starts it in a failback. It acts on this host's units only.",
        examples=["ceph-radosgw@rgw.{zone}.service"])
    lab_dir: Annotated[Path, AfterValidator(_lab_dir)] | None = Field(
        default=None,
        description="The lab only, instead of gateway_unit: the lab whose lab.json records "
                    "every zone's radosgw process, which drd restarts by PID.",
        examples=["/var/lib/drd-lab"])

    @model_validator(mode="after")
    def _one_way_to_restart(self) -> "RgwSettings":
        if (self.gateway_unit is None) == (self.lab_dir is None):
            raise ValueError("give exactly one of gateway_unit (the systemd unit of this "
                             "site's gateways) and lab_dir (the lab's gateways)")
        return self


def system_keys_file_issues(rgw: RgwSettings | None, stat: StatFile) -> list[RuleViolation]:
    """The keys file must be a regular file only its owner may read or write (0600, or
    stricter): the system user may change every zone of the realm."""
    if rgw is None:
        return []
    issues, _mode = private_file_issues(
        rgw.system_keys_file, ("rgw", "system_keys_file"), stat,
        missing="put the multisite system user's keys there as JSON, mode 0600, owned by "
                "drd", guards="the multisite system user's keys")
    return issues
