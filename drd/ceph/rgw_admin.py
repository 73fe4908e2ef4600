"""radosgw-admin, the one way drd drives RGW multisite: blocking, with a timeout, JSON out.

Secrets (a system user's S3 keys) reach radosgw-admin through CEPH_ARGS, which it
parses like its command line, so they never appear on argv, in /proc/<pid>/cmdline,
in logs or in error messages. Everything else about a call (the conf, the command,
the exit status, stderr) is in the error an operator sees.
"""

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sh

RADOSGW_ADMIN = "radosgw-admin"
DEFAULT_TIMEOUT = 60.0
# Inherited variables that would change what radosgw-admin does behind drd's back.
_SCRUBBED_ENV = ("CEPH_ARGS", "CEPH_CONF")


class RgwAdminError(Exception):
    """radosgw-admin failed, timed out, or printed something that is not JSON."""

    def __init__(self, message: str, *, exit_code: int | None = None) -> None:
        super().__init__(message)
        self.exit_code = exit_code


@dataclass(frozen=True)
class S3Keys:
    access_key: str
    secret_key: str = field(repr=False)

    def __str__(self) -> str:
        return f"S3 keys {self.access_key} (secret withheld)"

    def as_ceph_args(self) -> str:
        return f"--access-key={self.access_key} --secret={self.secret_key}"


@dataclass(frozen=True)
class RgwAdmin:
    """radosgw-admin against one site's cluster, as cephx user `client`."""

    conf: Path
    timeout: float = DEFAULT_TIMEOUT
    client: str = "admin"  # cephx id, without "client."

    def text(self, *args: str, keys: S3Keys | None = None) -> str:
        """Run one command; its stdout. Raises RgwAdminError."""
        env = {k: v for k, v in os.environ.items() if k not in _SCRUBBED_ENV}
        if keys is not None:
            env["CEPH_ARGS"] = keys.as_ceph_args()
        argv = ["-c", str(self.conf), f"--id={self.client}", *args]
        shown = " ".join([RADOSGW_ADMIN, *argv])
        try:
            result = sh.Command(RADOSGW_ADMIN)(*argv, _env=env, _timeout=self.timeout,
                                               _err_to_out=False, _tty_out=False)
        except sh.ErrorReturnCode as error:
            stderr = _last_lines(error.stderr.decode(errors="replace"))
            raise RgwAdminError(f"`{shown}` exited {error.exit_code}: {stderr}",
                                exit_code=error.exit_code) from None
        except sh.TimeoutException:
            raise RgwAdminError(f"`{shown}` did not finish within {self.timeout:.0f} s") \
                from None
        except sh.CommandNotFound:
            raise RgwAdminError(f"{RADOSGW_ADMIN} is not installed (Debian package radosgw)") \
                from None
        return str(result)

    def json(self, *args: str, keys: S3Keys | None = None) -> Any:
        """Run one command whose stdout is JSON; the parsed value."""
        out = self.text(*args, keys=keys)
        try:
            return json.loads(out) if out.strip() else None
        except json.JSONDecodeError as error:
            raise RgwAdminError(f"`{RADOSGW_ADMIN} {' '.join(args)}` printed no JSON: "
                                f"{error}: {_last_lines(out)}") from None


def _last_lines(text: str, count: int = 3) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return " | ".join(lines[-count:]) or "(nothing on stderr)"
