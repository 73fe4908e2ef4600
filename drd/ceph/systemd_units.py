"""systemd units of this host: `systemctl restart` and `is-active`, for the Ceph daemons
that runbooks restart (this site's gateways, this site's rbd-mirror).

drd runs unprivileged, so its user needs leave to manage exactly those units (a polkit
rule for org.freedesktop.systemd1.manage-units limited to them; see the README).
"""

import sh

SYSTEMCTL = "systemctl"
# A gateway can take rgw_exit_timeout_secs (120 s) to stop; systemd kills any unit after
# its own TimeoutStopSec, so a restart stays below this.
RESTART_TIMEOUT = 200.0


class UnitError(Exception):
    """A unit could not be (re)started or asked, or is not this host's to manage."""


def systemctl_argv(action: str, unit: str) -> list[str]:
    """argv of `systemctl` for `restart` or `is-active` of one unit (or glob)."""
    if action == "is-active":
        return ["is-active", "--quiet", unit]
    if action == "restart":
        return ["restart", unit]
    raise ValueError(f"no systemctl action {action!r} here")


def systemctl(argv: list[str], timeout: float) -> None:
    """Run `systemctl ARGV`; UnitError naming the command and systemd's last word."""
    shown = " ".join([SYSTEMCTL, *argv])
    try:
        sh.Command(SYSTEMCTL)(*argv, _timeout=timeout, _tty_out=False)
    except sh.ErrorReturnCode as error:
        stderr = error.stderr.decode(errors="replace").strip().splitlines()
        raise UnitError(f"`{shown}` exited {error.exit_code}: "
                        f"{stderr[-1] if stderr else 'no reason given'}") from None
    except sh.TimeoutException:
        raise UnitError(f"`{shown}` did not finish within {timeout:.0f} s") from None
    except sh.CommandNotFound:
        raise UnitError(f"{SYSTEMCTL} is not installed on this host") from None
