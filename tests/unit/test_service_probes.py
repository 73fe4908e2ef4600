"""Tenants' service probes: how a policy declares them (and is told what is wrong, at
its line), how a probe's answers are judged over time, the veto they hold over a
takeover, and real probes of real local listeners."""

from pathlib import Path
from textwrap import dedent, indent

import aiohttp
import pytest
from aiohttp import web

from drd.config import ConfigError
from drd.config.policy_loader import load_policy
from drd.daemon.service_prober import probe_once
from drd.domain.failure_detector import PeerState
from drd.domain.lease import Promise
from drd.domain.service_probes import ProbeTrack, takeover_veto
from drd.domain.site import SiteKind
from drd.domain.takeover import Move, next_move

POLICY = """\
tenant: water
protection:
  block:
    - name: databases
      pool: rbd
      namespace: water
      images: ["db-*"]
      same_city: {mode: journal, rpo_target: 5s}
      takeover: automatic
  service_probes:
{probes}
"""


def load(tmp_path: Path, probes: str) -> object:
    path = tmp_path / "water.yaml"
    path.write_text(POLICY.replace("{probes}", indent(dedent(probes), "    ")))
    return load_policy(path)


def issues(tmp_path: Path, probes: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, probes)
    return [issue.render().split(": ", 1)[1] for issue in caught.value.issues]


def test_a_policy_declares_tcp_and_http_probes(tmp_path: Path) -> None:
    policy = load(tmp_path, """\
        - {name: api, production: "http://10.20.0.5:8080/healthz",
           same_city: "http://10.30.0.5:8080/healthz", timeout: 3s}
        - {name: db, production: "tcp://10.20.0.6:5432"}
    """)
    api, db = policy.protection.service_probes  # type: ignore[attr-defined]
    assert api.endpoint(SiteKind.SAME_CITY) == "http://10.30.0.5:8080/healthz"
    assert api.timeout.total_seconds() == 3
    assert db.endpoint(SiteKind.SAME_CITY) is None and db.timeout.total_seconds() == 2


def test_every_bad_probe_is_named_with_its_field_and_line(tmp_path: Path) -> None:
    found = issues(tmp_path, """\
        - {name: a, production: "ftp://10.20.0.5/x"}
        - {name: b, production: "http://user:secret@10.20.0.5/health"}
        - {name: c, production: "tcp://10.20.0.5"}
        - {name: d, production: "http://10.20.0.5/health?token=abc"}
        - {name: e, production: "tcp://10.20.0.5:99", timeout: 1m}
    """)
    assert len(found) == 5, found
    assert found[0].startswith("protection.service_probes[0].production")
    assert "scheme must be one of tcp, http, https" in found[0]
    assert "credentials" in found[1] and "secret" not in found[1]
    assert "tcp://host:port" in found[2]
    assert "query string" in found[3]
    assert found[4].startswith("protection.service_probes[4].timeout") and "at most 30s" in found[4]


def test_two_probes_of_one_name_are_refused(tmp_path: Path) -> None:
    found = issues(tmp_path, """\
        - {name: api, production: "tcp://10.20.0.5:99"}
        - {name: api, production: "tcp://10.20.0.6:99"}
    """)
    assert found == ["protection.service_probes[1].name: probe 'api' is already defined at "
                     "protection.service_probes[0]; names must be unique within a tenant"]


def test_lines_point_at_the_bad_probe(tmp_path: Path) -> None:
    path = tmp_path / "water.yaml"
    path.write_text(POLICY.replace("{probes}", '    - {name: db, production: "udp://x:1"}'))
    with pytest.raises(ConfigError) as caught:
        load_policy(path)
    assert caught.value.issues[0].render().startswith(f"{path}:11: protection.service_probes")


def test_one_lost_answer_keeps_the_service_served_until_the_window_passes() -> None:
    track = ProbeTrack()
    assert not track.answering(100.0, 6.0)
    track.record(True, "connected in 1 ms", 100.0)
    track.record(False, "no answer within 2 s", 102.0)
    assert track.answering(104.0, 6.0) and track.failures == 1
    assert not track.answering(106.5, 6.0)
    veto = takeover_veto({"api": track}, "a", 104.0, 6.0)
    assert veto is not None and "still answers at a (probe api 4.0 s ago)" in veto
    assert takeover_veto({"api": track}, "a", 106.5, 6.0) is None
    assert takeover_veto({}, "a", 104.0, 6.0) is None


def test_a_served_tenant_is_not_taken_over_and_a_silent_one_is() -> None:
    promise = Promise(holder="a", epoch=1, until=0.0)
    served = next_move("b", SiteKind.SAME_CITY, promise, primary_here=None,
                       holder_state=PeerState.LOST, remaining=0.0,
                       service_served="the tenant's service still answers at a")
    assert served.move is Move.STAY and "a is lost to drd, but" in served.reason
    silent = next_move("b", SiteKind.SAME_CITY, promise, primary_here=None,
                       holder_state=PeerState.LOST, remaining=0.0, service_served=None)
    assert silent.move is Move.TAKE_OVER and silent.epoch == 2


async def test_real_probes_of_local_listeners() -> None:
    async def health(request: web.Request) -> web.Response:
        return web.Response(status=int(request.match_info["status"]))

    app = web.Application()
    app.router.add_get("/status/{status}", health)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        async with aiohttp.ClientSession() as session:
            ok, said = await probe_once(session, f"http://127.0.0.1:{port}/status/204", 2)
            assert ok and said.startswith("HTTP 204")
            ok, said = await probe_once(session, f"http://127.0.0.1:{port}/status/503", 2)
            assert not ok and said == "HTTP 503"
            ok, said = await probe_once(session, f"tcp://127.0.0.1:{port}", 2)
            assert ok and said.startswith("connected")
    finally:
        await runner.cleanup()
    async with aiohttp.ClientSession() as session:
        ok, said = await probe_once(session, f"tcp://127.0.0.1:{port}", 2)
        assert not ok and "ConnectionRefusedError" in said
        ok, said = await probe_once(session, f"http://127.0.0.1:{port}/status/200", 0.5)
        assert not ok and "Connect" in said, said
