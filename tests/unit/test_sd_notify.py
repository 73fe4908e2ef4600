"""sd_notify over a real AF_UNIX datagram socket, as systemd would listen on it."""

import os
import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from drd.daemon.sd_notify import SystemdNotifier

MY_PID = os.getpid()


class Listener:
    """The receiving end systemd would hold: a bound datagram socket."""

    def __init__(self, sock: socket.socket, notify_socket: str) -> None:
        self.sock = sock
        self.notify_socket = notify_socket  # the NOTIFY_SOCKET value that reaches it

    def receive(self) -> bytes:
        return self.sock.recv(4096)

    def notifier(self, **environ: str) -> SystemdNotifier:
        return SystemdNotifier.from_environ({"NOTIFY_SOCKET": self.notify_socket, **environ})


def bound_datagram_socket(address: str) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(address)
    sock.settimeout(5)
    return sock


@pytest.fixture
def listener(tmp_path: Path) -> Iterator[Listener]:
    path = tmp_path / "notify"
    with bound_datagram_socket(str(path)) as sock:
        yield Listener(sock, str(path))


@pytest.fixture
def abstract_listener() -> Iterator[Listener]:
    name = f"drd-test-notify-{uuid.uuid4().hex}"
    with bound_datagram_socket("\0" + name) as sock:
        yield Listener(sock, "@" + name)


def test_ready_sends_exactly_ready(listener: Listener) -> None:
    assert listener.notifier().ready() is True
    assert listener.receive() == b"READY=1"


def test_stopping_and_watchdog_datagrams(listener: Listener) -> None:
    notifier = listener.notifier()
    assert notifier.stopping() is True
    assert notifier.watchdog() is True
    assert listener.receive() == b"STOPPING=1"
    assert listener.receive() == b"WATCHDOG=1"


def test_status_is_one_line(listener: Listener) -> None:
    notifier = listener.notifier()
    assert notifier.status("site a: primary for 3 groups\n  2 backups running\n") is True
    assert listener.receive() == b"STATUS=site a: primary for 3 groups 2 backups running"


def test_status_keeps_non_ascii_text(listener: Listener) -> None:
    assert listener.notifier().status("同城双活: ok") is True
    assert listener.receive() == "STATUS=同城双活: ok".encode()


def test_reloading_carries_the_monotonic_clock(listener: Listener) -> None:
    before = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    assert listener.notifier().reloading() is True
    after = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000

    first, second = listener.receive().split(b"\n")
    assert first == b"RELOADING=1"
    key, _, value = second.partition(b"=")
    assert key == b"MONOTONIC_USEC"
    assert before <= int(value) <= after


def test_abstract_socket(abstract_listener: Listener) -> None:
    notifier = abstract_listener.notifier()
    assert notifier.enabled
    assert notifier.ready() is True
    assert notifier.watchdog() is True
    assert abstract_listener.receive() == b"READY=1"
    assert abstract_listener.receive() == b"WATCHDOG=1"


def test_without_notify_socket_every_call_is_a_no_op() -> None:
    notifier = SystemdNotifier.from_environ({"WATCHDOG_USEC": "20000000"})
    assert not notifier.enabled
    assert notifier.watchdog_interval() is None
    assert [notifier.ready(), notifier.stopping(), notifier.reloading(),
            notifier.status("x"), notifier.watchdog()] == [False] * 5


@pytest.mark.parametrize("value", ["", "relative/notify", "@", "vsock:2:1234"])
def test_unsupported_notify_socket_disables(value: str) -> None:
    notifier = SystemdNotifier.from_environ({"NOTIFY_SOCKET": value})
    assert not notifier.enabled
    assert notifier.ready() is False


def test_nobody_listening_returns_false(tmp_path: Path) -> None:
    notifier = SystemdNotifier.from_environ({"NOTIFY_SOCKET": str(tmp_path / "gone")})
    assert notifier.enabled
    assert notifier.ready() is False


def test_a_path_too_long_for_sun_path_returns_false() -> None:
    notifier = SystemdNotifier.from_environ({"NOTIFY_SOCKET": "/" + "x" * 200})
    assert notifier.watchdog() is False


def test_full_receive_queue_returns_false_instead_of_blocking(listener: Listener) -> None:
    # Nobody reads: a blocking send would hang once net.unix.max_dgram_qlen fills.
    notifier = listener.notifier()
    results = [notifier.watchdog() for _ in range(5000)]
    assert results[0] is True
    assert False in results


@pytest.mark.parametrize(
    ("environ", "interval"),
    [
        ({"WATCHDOG_USEC": "20000000"}, 10.0),
        ({"WATCHDOG_USEC": "3000000", "WATCHDOG_PID": str(MY_PID)}, 1.5),
        ({"WATCHDOG_USEC": "1"}, 0.0000005),
    ],
)
def test_watchdog_interval_is_half_the_timeout(
    listener: Listener, environ: dict[str, str], interval: float,
) -> None:
    assert listener.notifier(**environ).watchdog_interval() == interval


@pytest.mark.parametrize(
    "environ",
    [
        {},
        {"WATCHDOG_USEC": "20000000", "WATCHDOG_PID": str(MY_PID + 1)},
        {"WATCHDOG_USEC": "20000000", "WATCHDOG_PID": "not-a-pid"},
        {"WATCHDOG_USEC": "20000000", "WATCHDOG_PID": ""},
        {"WATCHDOG_USEC": "0"},
        {"WATCHDOG_USEC": "-20000000"},
        {"WATCHDOG_USEC": "20s"},
        {"WATCHDOG_USEC": ""},
        {"WATCHDOG_USEC": str(2**64 - 1)},
    ],
    ids=["unset", "other-pid", "bad-pid", "empty-pid", "zero", "negative", "unit-suffix",
         "empty", "infinity"],
)
def test_watchdog_off(listener: Listener, environ: dict[str, str]) -> None:
    assert listener.notifier(**environ).watchdog_interval() is None


def test_watchdog_pid_is_compared_with_the_given_pid(listener: Listener) -> None:
    environ = {"NOTIFY_SOCKET": listener.notify_socket,
               "WATCHDOG_USEC": "20000000", "WATCHDOG_PID": "4242"}
    assert SystemdNotifier.from_environ(environ, pid=4242).watchdog_interval() == 10.0
    assert SystemdNotifier.from_environ(environ, pid=4243).watchdog_interval() is None
