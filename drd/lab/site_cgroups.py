"""One cgroup v2 group per lab site, so that chaos experiments can cut the network between
sites that all live on one loopback interface.

Every site listens on its own address, but a client's packets to another site leave from
127.0.0.1, so the address alone cannot tell which site sent them. The kernel can: an
nftables rule matches `socket cgroupv2` of the sending process. The lab therefore starts
each daemon of a site inside `<cgroup2 mount>/drd-lab-<block>/<site>`, before the daemon
opens its first socket (a socket keeps the group it was created in).

Where no cgroup v2 hierarchy is mounted the lab runs as before, without groups; only the
partition experiments need them, and they say so.
"""

import errno
import time
from dataclasses import dataclass
from pathlib import Path

MOUNTS = Path("/proc/self/mounts")
# nftables names a group by its path below this directory.
NFT_CGROUP_ROOT = Path("/sys/fs/cgroup")


@dataclass(frozen=True)
class SiteGroup:
    """A site's group: its directory, and how nftables names it and how deep it lies."""

    directory: Path
    nft_path: str
    level: int


def cgroup2_mount(mounts: str) -> Path | None:
    """The first cgroup v2 mount among the lines of /proc/self/mounts, if any."""
    for line in mounts.splitlines():
        fields = line.split()
        if len(fields) >= 3 and fields[2] == "cgroup2":
            return Path(fields[1])
    return None


def site_group(mount: Path, block: int, site: str) -> SiteGroup | None:
    """Where `site` of the lab on `block` lives below `mount`; None when nftables could
    not name it (a mount outside /sys/fs/cgroup)."""
    try:
        below_root = mount.relative_to(NFT_CGROUP_ROOT)
    except ValueError:
        return None
    relative = Path(f"drd-lab-{block}") / site
    return SiteGroup(directory=mount / relative, nft_path=str(below_root / relative),
                     level=len(relative.parts))


def create_site_groups(block: int, sites: list[str]) -> dict[str, Path]:
    """Create each site's group; their directories, or none where cgroup v2 is missing."""
    try:
        mount = cgroup2_mount(MOUNTS.read_text())
    except OSError:
        return {}
    if mount is None:
        return {}
    directories: dict[str, Path] = {}
    for site in sites:
        group = site_group(mount, block, site)
        if group is None:
            return {}
        try:
            group.directory.mkdir(parents=True, exist_ok=True)
        except OSError:
            return {}
        directories[site] = group.directory
    return directories


def group_of(directory: Path) -> SiteGroup | None:
    """The nftables view of a group directory the lab created."""
    try:
        mount = cgroup2_mount(MOUNTS.read_text())
    except OSError:
        return None
    if mount is None:
        return None
    try:
        relative = directory.relative_to(mount)
    except ValueError:
        return None
    group = site_group(mount, int(relative.parts[0].removeprefix("drd-lab-")), relative.parts[1])
    return group if group is not None and group.directory == directory else None


def members(directory: Path) -> list[int]:
    """The PIDs in a site's group: [] when it is gone or cannot be read."""
    try:
        return [int(line) for line in (directory / "cgroup.procs").read_text().split()]
    except (OSError, ValueError):
        return []


def remove_site_groups(directories: list[Path], wait_seconds: float = 3.0) -> None:
    """Remove the groups once their processes have exited; and the block's parent too.

    A process killed a moment ago can still be leaving its group (the kernel frees it
    after its parent reaps it), and rmdir then fails with EBUSY: seen as an empty group
    left behind after `lab down`. Such a group is tried again for up to `wait_seconds`;
    anything else (gone already, or a process that stays) is left as it is."""
    parents = {directory.parent for directory in directories}
    deadline = time.monotonic() + wait_seconds
    for directory in [*directories, *parents]:
        while True:
            try:
                directory.rmdir()
            except OSError as error:
                if error.errno in (errno.EBUSY, errno.ENOTEMPTY) \
                        and time.monotonic() < deadline:
                    time.sleep(0.05)
                    continue
            break


def joining_argv(directory: Path | None, argv: list[str]) -> list[str]:
    """`argv`, run so that it joins the group first: the shell writes its own PID into
    the group and then becomes the daemon by exec, so the PID stays the daemon's."""
    if directory is None:
        return argv
    procs = directory / "cgroup.procs"
    return ["/bin/sh", "-c", 'echo $$ > "$0" && exec "$@"', str(procs), *argv]
