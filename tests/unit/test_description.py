"""lab.json: what the lab records about itself, and how it reads back."""

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from drd.domain.site import SiteKind
from drd.lab.description import (
    START_ORDER,
    STOP_ORDER,
    DaemonRole,
    LabDescription,
    MirrorPeerRecord,
    Phase,
    ProcessRecord,
    SiteRecord,
)
from drd.lab.topology import PeerDirection

LAB = Path("/srv/lab-2")


def process(role: DaemonRole, entity: str, pid: int, site: str = "a") -> ProcessRecord:
    return ProcessRecord(
        role=role, entity=entity, pid=pid, create_time=1_763_767_415.37,
        argv=[f"ceph-{role.value}", "-f"],
        log=LAB / site / "log" / f"ceph-{entity}.log",
        console=LAB / site / "log" / f"{entity}.console",
    )


def site(name: str, kind: SiteKind, octet: int) -> SiteRecord:
    root = LAB / name
    return SiteRecord(
        name=name, kind=kind, address=f"127.2.{octet}.1", mon_addr=f"v2:127.2.{octet}.1:3300",
        fsid=f"00000000-0000-4000-8000-00000000000{octet}", root=root, conf=root / "ceph.conf",
        admin_keyring=root / "ceph.client.admin.keyring",
        keyrings={"client.admin": root / "ceph.client.admin.keyring",
                  f"mgr.{name}": root / f"ceph.mgr.{name}.keyring"},
    )


def ready_lab() -> LabDescription:
    a = site("a", SiteKind.PRODUCTION, 1)
    a.processes = [
        process(DaemonRole.MON, "mon.a", 4101),
        process(DaemonRole.OSD, "osd.0", 4102),
        process(DaemonRole.MGR, "mgr.a", 4103),
        process(DaemonRole.RBD_MIRROR, "client.rbd-mirror.a", 4104).model_copy(
            update={"env": {"CEPH_CONF": str(LAB / "a" / "ceph.conf")}}),
    ]
    b = site("b", SiteKind.SAME_CITY, 2)
    b.processes = [process(DaemonRole.MON, "mon.b", 4201, site="b")]
    return LabDescription(
        dir=LAB, block=2, phase=Phase.READY,
        created_at=datetime(2026, 11, 21, 23, 23, 35, 123456, tzinfo=UTC),
        sites={"a": a, "b": b},
        mirror_peers=[MirrorPeerRecord(site="a", peer="b", direction=PeerDirection.RX_TX),
                      MirrorPeerRecord(site="b", peer="a", direction=PeerDirection.RX_TX)],
    )


def test_a_description_reads_back_exactly_as_it_was_written() -> None:
    lab = ready_lab()

    assert LabDescription.model_validate_json(lab.model_dump_json()) == lab


def test_a_description_read_back_has_typed_fields_again() -> None:
    lab = LabDescription.model_validate_json(ready_lab().model_dump_json())

    a = lab.sites["a"]
    assert lab.phase is Phase.READY
    assert lab.created_at == datetime(2026, 11, 21, 23, 23, 35, 123456, tzinfo=UTC)
    assert a.kind is SiteKind.PRODUCTION
    assert a.conf == Path("/srv/lab-2/a/ceph.conf")
    assert lab.mirror_peers[0].direction is PeerDirection.RX_TX
    mirror = a.process(DaemonRole.RBD_MIRROR)
    assert mirror is not None
    assert mirror.pid == 4104
    assert mirror.env == {"CEPH_CONF": "/srv/lab-2/a/ceph.conf"}


def test_all_processes_lists_every_daemon_with_its_site() -> None:
    pairs = [(s.name, p.entity) for s, p in ready_lab().all_processes()]

    assert pairs == [("a", "mon.a"), ("a", "osd.0"), ("a", "mgr.a"),
                     ("a", "client.rbd-mirror.a"), ("b", "mon.b")]


@pytest.mark.parametrize(
    "path",
    [
        (),
        ("sites", "a"),
        ("sites", "a", "processes", 0),
        ("mirror_peers", 1),
    ],
    ids=["lab", "site", "process", "mirror-peer"],
)
def test_an_unknown_key_anywhere_is_rejected_with_its_path(path: tuple[str | int, ...]) -> None:
    document: Any = json.loads(ready_lab().model_dump_json())
    target = document
    for step in path:
        target = target[step]
    target["colour"] = "blue"

    with pytest.raises(ValidationError) as raised:
        LabDescription.model_validate_json(json.dumps(document))

    assert [(e["type"], e["loc"]) for e in raised.value.errors()] == [
        ("extra_forbidden", (*path, "colour")),
    ]


def test_replace_process_swaps_the_record_of_the_same_role_only() -> None:
    a = ready_lab().sites["a"]
    restarted = process(DaemonRole.MGR, "mgr.a", 5103)

    a.replace_process(restarted)

    assert sorted((p.role.value, p.pid) for p in a.processes) == [
        ("mgr", 5103), ("mon", 4101), ("osd", 4102), ("rbd-mirror", 4104),
    ]
    assert a.process(DaemonRole.MGR) == restarted


def test_replace_process_adds_a_role_not_yet_recorded() -> None:
    b = ready_lab().sites["b"]
    osd = process(DaemonRole.OSD, "osd.0", 4202, site="b")

    b.replace_process(osd)

    assert [(p.role, p.pid) for p in b.processes] == [(DaemonRole.MON, 4201),
                                                      (DaemonRole.OSD, 4202)]


def test_process_of_a_role_not_started_is_none() -> None:
    assert ready_lab().sites["b"].process(DaemonRole.RBD_MIRROR) is None


def test_lab_down_stops_drd_then_rbd_mirror_and_monitors_last() -> None:
    assert STOP_ORDER[0] == (DaemonRole.DRD,)
    # both hang on SIGTERM once their peers are gone, so they go before the cluster
    assert STOP_ORDER[1] == (DaemonRole.RBD_MIRROR, DaemonRole.RGW)
    assert STOP_ORDER[-1] == (DaemonRole.MON,)


@pytest.mark.parametrize("order", [[r for group in STOP_ORDER for r in group], START_ORDER],
                         ids=["stop", "start"])
def test_start_and_stop_orders_name_every_role_once(order: Sequence[DaemonRole]) -> None:
    assert sorted(order) == sorted(DaemonRole)
