"""A dependency-free sd_notify(3) client: READY, STOPPING, RELOADING, STATUS, WATCHDOG.

systemd passes the notification socket and the watchdog settings in the environment
(`NOTIFY_SOCKET`, `WATCHDOG_USEC`, `WATCHDOG_PID`). When the daemon is not started by
systemd every call is a no-op that returns False, so the daemon never has to ask.
Sending never raises: a lost notification must not take the daemon down with it, and
systemd's watchdog is what notices a daemon that can no longer reach it.
"""

import os
import socket
import time
from collections.abc import Mapping
from dataclasses import dataclass

# sd_watchdog_enabled(3) rejects a timeout at or above USEC_INFINITY.
_USEC_INFINITY = 2**64 - 1

# Child processes (restic, rbd export) must not inherit these: a child that pinged the
# watchdog or sent READY=1 would speak for the daemon. NotifyAccess=main in the unit makes
# systemd ignore them anyway; drop these names when building a child's environment.
NOTIFY_ENVIRONMENT = ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID")


def _socket_address(value: str | None) -> bytes | None:
    """The sendto() address for NOTIFY_SOCKET, or None when it is unset or unsupported."""
    if not value:
        return None
    if value.startswith("/"):
        return os.fsencode(value)
    if value.startswith("@") and len(value) > 1:
        # An abstract socket: Linux names it by a leading NUL instead of '@'.
        return b"\0" + os.fsencode(value[1:])
    return None  # relative paths and vsock: addresses are not ours to guess at


def _positive_int(value: str | None) -> int | None:
    if value is None or not value.isascii() or not value.isdigit():
        return None
    number = int(value)
    return number if number > 0 else None


def _watchdog_usec(environ: Mapping[str, str], pid: int) -> int | None:
    """WATCHDOG_USEC when the watchdog is armed for `pid`, as sd_watchdog_enabled(3) decides."""
    usec = _positive_int(environ.get("WATCHDOG_USEC"))
    if usec is None or usec >= _USEC_INFINITY:
        return None
    if "WATCHDOG_PID" in environ and _positive_int(environ["WATCHDOG_PID"]) != pid:
        return None  # armed for another process, e.g. the parent that exec'd us
    return usec


def _one_line(text: str) -> str:
    return " ".join(line.strip() for line in text.splitlines() if line.strip())


@dataclass(frozen=True, slots=True)
class SystemdNotifier:
    """Tells systemd about the daemon's lifecycle over the NOTIFY_SOCKET datagram socket."""

    address: bytes | None = None
    """sendto() address; an abstract socket's starts with NUL. None: not run by systemd."""
    watchdog_usec: int | None = None
    """The watchdog timeout armed for this process, or None when there is none."""

    @classmethod
    def from_environ(cls, environ: Mapping[str, str], pid: int | None = None) -> "SystemdNotifier":
        """Read NOTIFY_SOCKET and the watchdog settings, as systemd passed them to `pid`."""
        own_pid = os.getpid() if pid is None else pid
        return cls(address=_socket_address(environ.get("NOTIFY_SOCKET")),
                   watchdog_usec=_watchdog_usec(environ, own_pid))

    @property
    def enabled(self) -> bool:
        """True when there is a socket to notify, i.e. systemd started us as Type=notify."""
        return self.address is not None

    def watchdog_interval(self) -> float | None:
        """Seconds between watchdog pings (half the timeout), or None when nobody watches."""
        if self.address is None or self.watchdog_usec is None:
            return None
        return self.watchdog_usec / 2 / 1_000_000

    def ready(self) -> bool:
        """Startup is complete; also ends a reload begun by `reloading()`."""
        return self.send("READY=1")

    def stopping(self) -> bool:
        """The daemon has begun its graceful drain."""
        return self.send("STOPPING=1")

    def reloading(self) -> bool:
        """A reload has begun; call `ready()` when it is done."""
        # systemd >= 253 (Type=notify-reload) matches the reload by this timestamp and
        # requires it; older systemd ignores the extra field.
        monotonic_usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        return self.send("RELOADING=1", f"MONOTONIC_USEC={monotonic_usec}")

    def status(self, text: str) -> bool:
        """Set the one-line status `systemctl status` shows; newlines become spaces."""
        return self.send(f"STATUS={_one_line(text)}")

    def watchdog(self) -> bool:
        """Ping the watchdog: the loop is still ticking."""
        return self.send("WATCHDOG=1")

    def send(self, *assignments: str) -> bool:
        """Send `KEY=VALUE` lines as one datagram; False when not sent, never an exception."""
        if self.address is None:
            return False
        # A lone surrogate in a status text must not turn into an exception here.
        message = "\n".join(assignments).encode(errors="backslashreplace")
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
                # A full receive queue must not stall the daemon's loop: drop and report.
                sock.setblocking(False)
                return sock.sendto(message, self.address) == len(message)
        except OSError:
            return False
