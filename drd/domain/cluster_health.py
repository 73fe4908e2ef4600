"""What a Ceph cluster's `status` says, reduced to what drd decides on."""

from typing import Any

from pydantic import BaseModel, ConfigDict


class ClusterHealth(BaseModel):
    model_config = ConfigDict(frozen=True)

    status: str  # HEALTH_OK, HEALTH_WARN or HEALTH_ERR
    checks: dict[str, str]  # check code -> summary message
    osds: int
    osds_up: int
    mgr_available: bool
    pgs: int
    pgs_by_state: dict[str, int]
    services: dict[str, int]  # service map: daemon type -> daemons registered

    @property
    def pgs_active_clean(self) -> int:
        return self.pgs_by_state.get("active+clean", 0)

    def settled(self) -> tuple[bool, str]:
        """Whether the cluster is fully up, and if not, the reason in one phrase."""
        if self.osds == 0 or self.osds_up < self.osds:
            return False, f"{self.osds_up} of {self.osds} OSDs up"
        if not self.mgr_available:
            return False, "no active mgr"
        if self.pgs == 0:
            return False, "no placement groups reported yet"
        if self.pgs_active_clean != self.pgs:
            states = ", ".join(f"{n} {s}" for s, n in sorted(self.pgs_by_state.items()))
            return False, f"placement groups not all active+clean: {states}"
        if self.status != "HEALTH_OK":
            detail = "; ".join(f"{code}: {msg}" for code, msg in sorted(self.checks.items()))
            return False, f"{self.status} ({detail})"
        return True, "HEALTH_OK, all placement groups active+clean"


def parse_status(status: dict[str, Any]) -> ClusterHealth:
    """Read `ceph status --format json` (Pacific layout)."""
    health = status.get("health", {})
    osdmap = status.get("osdmap", {})
    osdmap = osdmap.get("osdmap", osdmap)  # older releases nest it once more
    pgmap = status.get("pgmap", {})
    services = status.get("servicemap", {}).get("services", {})
    return ClusterHealth(
        status=health.get("status", "HEALTH_UNKNOWN"),
        checks={code: check.get("summary", {}).get("message", "")
                for code, check in health.get("checks", {}).items()},
        osds=osdmap.get("num_osds", 0),
        osds_up=osdmap.get("num_up_osds", 0),
        mgr_available=bool(status.get("mgrmap", {}).get("available", False)),
        pgs=pgmap.get("num_pgs", 0),
        pgs_by_state={s["state_name"]: s["count"] for s in pgmap.get("pgs_by_state", [])},
        services={name: len(service.get("daemons", {}).keys() - {"summary"})
                  for name, service in services.items()},
    )
