"""Which radosgw processes of a zone are up, and whether they have reloaded, seen in RADOS.

Every gateway watches the notify objects of its zone's control pool (`notify.0` to
`notify.7`) through its own RADOS client. When the realm reloader applies a new period
it closes its store and opens a new one, RADOS client included, so each gateway's
watcher on `notify.0` comes back under a new client id (seen here: client.4226 became
client.4259 a second after a period commit). A watcher set with none of the ids it had
before a commit therefore proves every gateway has reloaded since; an empty set means no
gateway of the zone runs. radosgw-admin also watches while it runs, briefly, which can
only add ids that then vanish.

python3-rados cannot list watchers, so this runs `rados listwatchers` via `sh`.
"""

import os
import re
from pathlib import Path

import sh

RADOS = "rados"
WATCHED_OBJECT = "notify.0"
DEFAULT_TIMEOUT = 30.0
_WATCHER = re.compile(r"^watcher=\S+ (?P<client>client\.\d+) cookie=\d+", re.MULTILINE)


class GatewayWatchError(Exception):
    """`rados listwatchers` failed or timed out."""


def parse_watchers(text: str) -> frozenset[str]:
    """The client ids in `rados listwatchers` output."""
    return frozenset(match["client"] for match in _WATCHER.finditer(text))


def gateway_watchers(conf: Path, control_pool: str,
                     timeout: float = DEFAULT_TIMEOUT) -> frozenset[str]:
    """Client ids of the processes (gateways) watching the zone's control pool now."""
    argv = ["-c", str(conf), "-p", control_pool, "listwatchers", WATCHED_OBJECT]
    env = {k: v for k, v in os.environ.items() if k not in ("CEPH_ARGS", "CEPH_CONF")}
    try:
        out = sh.Command(RADOS)(*argv, _env=env, _timeout=timeout, _tty_out=False)
    except sh.ErrorReturnCode as error:
        stderr = error.stderr.decode(errors="replace").strip().splitlines()
        raise GatewayWatchError(f"`{RADOS} {' '.join(argv)}` exited {error.exit_code}: "
                                f"{stderr[-1] if stderr else 'no reason given'}") from None
    except sh.TimeoutException:
        raise GatewayWatchError(f"`{RADOS} {' '.join(argv)}` did not finish within "
                                f"{timeout:.0f} s") from None
    return parse_watchers(str(out))


def reloaded_since(before: frozenset[str], now: frozenset[str]) -> bool:
    """Every gateway watching `before` has reopened its store (or gone), and one runs."""
    return bool(now) and not (before & now)
