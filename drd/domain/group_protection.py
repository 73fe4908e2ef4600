"""Whether a protection group's images, primary on this site, are protected now, and
when a group the site took over was protected again.

A group is protected when every one of its images has a copy within its RPO target at
each destination its policy names; degraded when each image still has such a copy at
one destination at least (the lost site's is the usual gap after a takeover); and
unprotected when some image has none anywhere: a site lost now loses that image's
writes since the takeover. A copy counts only when rbd-mirror on the destination says
it replays: right after a takeover the remote site's copy still dates from the old
primary's snapshots and may measure "within target" while it follows no one.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from drd.domain.rpo import RpoState

# rbd-mirror replay states of a copy that follows its primary.
FOLLOWING = ("replaying", "syncing", "starting_replay")


class Protection(StrEnum):
    PROTECTED = "protected"
    DEGRADED = "degraded"
    UNPROTECTED = "unprotected"
    NOT_PRIMARY_HERE = "not primary here"


@dataclass(frozen=True)
class CopyReading:
    """One image's copy at one destination, as the replication service measured it."""

    image: str
    destination: str  # same_city or remote
    site: str | None  # None when no peer plays that destination from here
    rpo_state: RpoState
    peer_state: str  # rbd-mirror's replay state of the copy
    peer_description: str = ""


@dataclass(frozen=True)
class GroupProtection:
    state: Protection
    reason: str


def _safe(copy: CopyReading) -> bool:
    return (copy.site is not None and copy.rpo_state is RpoState.OK
            and copy.peer_state in FOLLOWING and "split-brain" not in copy.peer_description)


def _gap(copy: CopyReading) -> str:
    where = f"{copy.destination} ({copy.site or 'no site'})"
    if copy.site is None:
        return f"{where}: no peer plays it"
    if copy.peer_state not in FOLLOWING or "split-brain" in copy.peer_description:
        said = f": {copy.peer_description}" if copy.peer_description else ""
        return f"{where}: {copy.peer_state}{said}"
    return f"{where}: RPO {copy.rpo_state.value}"


def judge_group(copies: Sequence[CopyReading]) -> GroupProtection:
    """The group's protection from every copy of its images primary here."""
    if not copies:
        return GroupProtection(Protection.NOT_PRIMARY_HERE,
                               "no image of the group is primary on this site")
    by_image: dict[str, list[CopyReading]] = {}
    for copy in copies:
        by_image.setdefault(copy.image, []).append(copy)
    bare = sorted(image for image, held in by_image.items() if not any(map(_safe, held)))
    gaps = sorted({_gap(copy) for copy in copies if not _safe(copy)})
    if bare:
        return GroupProtection(Protection.UNPROTECTED, _told(
            f"{len(bare)} of {len(by_image)} image(s) have no copy within target anywhere "
            f"(e.g. {bare[0]})", gaps))
    if gaps:
        return GroupProtection(Protection.DEGRADED, _told(
            "every image has a copy within target, not at every destination", gaps))
    return GroupProtection(Protection.PROTECTED,
                           f"all {len(by_image)} image(s) within target at every destination")


def _told(summary: str, gaps: list[str]) -> str:
    shown = "; ".join(gaps[:3]) + (f"; and {len(gaps) - 3} more" if len(gaps) > 3 else "")
    return f"{summary}: {shown}"


@dataclass
class ProtectionClock:
    """Follows one group's protection over time: since when it is unprotected, and how
    long a takeover's new primary took to be protected again."""

    state: Protection = Protection.NOT_PRIMARY_HERE
    unprotected_since: datetime | None = None
    protected_again_at: datetime | None = None
    protected_again_seconds: float | None = None

    def observe(self, judged: GroupProtection, now: datetime) -> None:
        if judged.state is Protection.UNPROTECTED:
            if self.state is not Protection.UNPROTECTED:
                self.unprotected_since = now
                self.protected_again_at = self.protected_again_seconds = None
        elif self.state is Protection.UNPROTECTED and self.unprotected_since is not None \
                and judged.state is not Protection.NOT_PRIMARY_HERE:
            self.protected_again_at = now
            self.protected_again_seconds = round(
                (now - self.unprotected_since).total_seconds(), 3)
        self.state = judged.state
