"""`drd daemon` as systemd and operators meet it, on the real lab.

The lab runs one daemon per site already. For lifecycle tests the suite starts a
second daemon of site a on port 8471 with its own state and tokens, under a notify
socket the test itself listens on, so it sees exactly what systemd would.
"""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from drd.api.client import ApiTarget, DaemonRefused, get_json
from drd.api.tokens import add_token, read_secret_file
from drd.lab.description import LabDescription
from drd.state.store import StateStore
from tests.integration.conftest import run_drd

TEST_PORT = 8471


def operator(lab: LabDescription) -> str:
    assert lab.operator_token_file is not None
    return read_secret_file(lab.operator_token_file)


def test_three_daemons_see_each_other(lab: LabDescription) -> None:
    env_token = operator(lab)
    for site in lab.sites.values():
        assert site.drd_config is not None
        result = subprocess.run(
            [sys.executable, "-m", "drd", "status", "--json", "--config", str(site.drd_config)],
            capture_output=True, text=True, timeout=30, check=False,
            env={**os.environ, "DRD_TOKEN": env_token})
        assert result.returncode == 0, result.stderr
        status = json.loads(result.stdout)
        assert status["site"] == site.name
        assert status["ceph"]["health"] == "HEALTH_OK"
        peers = {peer["name"]: peer for peer in status["peers"]}
        assert set(peers) == set(lab.sites) - {site.name}
        for peer in peers.values():
            assert peer["reachable"], peer
            assert peer["last_heartbeat_received"] is not None, "the peer must be calling us"
            assert peer["last_heartbeat_answered"] is not None, "the peer must answer us"


def test_requests_without_a_valid_token_are_refused(lab: LabDescription) -> None:
    url = lab.sites["a"].api_url
    assert url is not None
    for token in ("", "drd_not-a-real-token"):
        with pytest.raises(DaemonRefused) as refused:
            get_json(ApiTarget(url=url, token=token), "/v1/status")
        assert refused.value.status == 401
    assert get_json(ApiTarget(url=url, token=""), "/healthz") == {"ok": True, "reasons": []}


@dataclass
class NotifySocket:
    path: Path
    sock: socket.socket

    def messages(self, wait: float) -> list[str]:
        """Every datagram that arrives within `wait` seconds."""
        received: list[str] = []
        deadline = time.monotonic() + wait
        while (left := deadline - time.monotonic()) > 0:
            self.sock.settimeout(left)
            try:
                received.append(self.sock.recv(4096).decode())
            except TimeoutError:
                break
        return received

    def wait_for(self, wanted: str, timeout: float) -> list[str]:
        seen: list[str] = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            seen += self.messages(0.2)
            if any(wanted in message for message in seen):
                return seen
        raise AssertionError(f"no {wanted!r} within {timeout} s; got {seen}")


@dataclass
class SecondDaemon:
    process: subprocess.Popen[str]
    config: Path
    tokens: Path
    url: str
    operator: str
    notify: NotifySocket


@pytest.fixture
def test_daemon(lab: LabDescription, tmp_path: Path) -> Iterator[SecondDaemon]:
    site = lab.sites["a"]
    assert site.drd_config is not None
    config = yaml.safe_load(site.drd_config.read_text())
    host = site.address
    config["api"]["listen"] = f"{host}:{TEST_PORT}"
    config["api"]["tokens_file"] = str(tmp_path / "tokens.yaml")
    config["paths"]["state_dir"] = str(tmp_path / "state")
    config_path = tmp_path / "drd.yaml"
    config_path.write_text(yaml.safe_dump(config))
    token = add_token(tmp_path / "tokens.yaml", "ops-test", "operator")
    (tmp_path / "state").mkdir(mode=0o700)
    StateStore.initialise(tmp_path / "state", "a").close()

    notify_path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(notify_path))
    env = {**os.environ, "NOTIFY_SOCKET": str(notify_path), "WATCHDOG_USEC": "1000000"}
    env.pop("WATCHDOG_PID", None)
    process = subprocess.Popen(
        [sys.executable, "-m", "drd", "daemon", "--config", str(config_path),
         "--drain-seconds", "3"],
        stdout=(tmp_path / "daemon.log").open("w"), stderr=subprocess.STDOUT, text=True,
        env=env, start_new_session=True)
    daemon = SecondDaemon(process, config_path, tmp_path / "tokens.yaml",
                        f"http://{host}:{TEST_PORT}", token, NotifySocket(notify_path, sock))
    try:
        yield daemon
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        sock.close()


def test_systemd_sees_ready_watchdog_status_reload_and_a_clean_stop(
        test_daemon: SecondDaemon) -> None:
    started = time.monotonic()
    seen = test_daemon.notify.wait_for("READY=1", timeout=20)
    print(f"READY=1 after {time.monotonic() - started:.2f} s")
    seen += test_daemon.notify.messages(2.5)
    assert sum(message == "WATCHDOG=1" for message in seen) >= 3, seen
    assert any(message.startswith("STATUS=site a (production)") for message in seen), seen

    # A broken config on SIGHUP: the daemon keeps serving with the old one.
    good = test_daemon.config.read_text()
    test_daemon.config.write_text(good + "surprise: key\n")
    test_daemon.process.send_signal(signal.SIGHUP)
    reload_messages = test_daemon.notify.wait_for("READY=1", timeout=10)
    assert any(m.startswith("RELOADING=1") for m in reload_messages), reload_messages
    target = ApiTarget(url=test_daemon.url, token=test_daemon.operator)
    assert get_json(target, "/v1/status")["site"] == "a"
    metrics = get_metrics(test_daemon.url)
    assert 'drd_config_reloads_total{result="refused"} 1.0' in metrics
    audit = get_json(target, "/v1/audit")["entries"]
    assert audit[0]["action"] == "SIGHUP reload" and audit[0]["result"] == "refused"

    # SIGTERM: drain, say STOPPING=1, exit 0.
    test_daemon.process.send_signal(signal.SIGTERM)
    assert test_daemon.process.wait(timeout=15) == 0
    assert "STOPPING=1" in test_daemon.notify.messages(0.5)


def test_sighup_picks_up_a_new_tenant_token_which_stays_inside_its_tenant(
        test_daemon: SecondDaemon) -> None:
    test_daemon.notify.wait_for("READY=1", timeout=20)
    water = add_token(test_daemon.tokens, "water-ci", "tenant:water")
    tenant = ApiTarget(url=test_daemon.url, token=water)
    with pytest.raises(DaemonRefused) as before:
        get_json(tenant, "/v1/tenants/water/runs")
    assert before.value.status == 401, "the token is unknown until the reload"

    test_daemon.process.send_signal(signal.SIGHUP)
    test_daemon.notify.wait_for("READY=1", timeout=10)
    assert get_json(tenant, "/v1/tenants/water/runs") == {"runs": []}
    for path in ("/v1/tenants/transport/runs", "/v1/status", "/v1/audit"):
        with pytest.raises(DaemonRefused) as refused:
            get_json(tenant, path)
        assert refused.value.status == 403, path
    entries = get_json(ApiTarget(url=test_daemon.url, token=test_daemon.operator),
                       "/v1/audit")["entries"]
    refusals = [(e["actor"], e["target"]) for e in entries if e["result"] == "refused"]
    assert ("water-ci", "/v1/tenants/transport/runs") in refusals


def get_metrics(url: str) -> str:
    with urllib.request.urlopen(url + "/metrics", timeout=5) as response:  # noqa: S310
        return str(response.read().decode())


def test_a_missing_or_corrupt_state_database_stops_the_start_with_a_clear_error(
        lab: LabDescription, tmp_path: Path) -> None:
    site = lab.sites["a"]
    assert site.drd_config is not None
    config = yaml.safe_load(site.drd_config.read_text())
    config["api"]["listen"] = f"{site.address}:{TEST_PORT}"
    config["paths"]["state_dir"] = str(tmp_path / "state")
    config_path = tmp_path / "drd.yaml"
    config_path.write_text(yaml.safe_dump(config))
    (tmp_path / "state").mkdir()

    missing = run_drd("daemon", "--config", str(config_path), timeout=30)
    assert missing.returncode == 1
    assert "drd state init" in missing.stderr
    assert not (tmp_path / "state" / "state.db").exists(), "it must not be created silently"

    garbage = b"this is not a database" * 100
    (tmp_path / "state" / "state.db").write_bytes(garbage)
    corrupt = run_drd("daemon", "--config", str(config_path), timeout=30)
    assert corrupt.returncode == 1
    assert "state.db" in corrupt.stderr
    assert (tmp_path / "state" / "state.db").read_bytes() == garbage, "never touched"


def test_config_check_reports_every_problem_with_its_line(tmp_path: Path,
                                                           lab: LabDescription) -> None:
    site = lab.sites["b"]
    assert site.drd_config is not None
    broken = tmp_path / "drd.yaml"
    shutil.copy(site.drd_config, broken)
    text = broken.read_text().replace("kind: same-city", "kind: moon", 1)
    broken.write_text(text + "extra: 1\n")
    result = run_drd("config", "check", str(broken))
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert any(line.startswith(f"{broken}:3: site.kind:") for line in lines), lines
    assert any(": extra:" in line for line in lines), lines
