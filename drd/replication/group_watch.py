"""Each protection group's protection on this site, followed over time (see
drd.domain.group_protection), from what the replication service measures."""

from datetime import datetime

from drd.domain.group_protection import (
    CopyReading,
    GroupProtection,
    Protection,
    ProtectionClock,
    judge_group,
)
from drd.domain.rpo import RpoState
from drd.replication.reporting import image_views
from drd.replication.service import ReplicationService


class GroupWatch:
    """Judged once a tick; read by `drd status`."""

    def __init__(self) -> None:
        self.clocks: dict[str, ProtectionClock] = {}
        self.judged: dict[str, GroupProtection] = {}

    def observe(self, service: ReplicationService, now: datetime) -> None:
        copies: dict[str, list[CopyReading]] = {}
        for image in image_views(service):
            group = f"{image.tenant}/{image.selection}"
            copies.setdefault(group, []).extend(
                CopyReading(image=image.image, destination=d.destination, site=d.site,
                            rpo_state=RpoState(d.rpo_state), peer_state=d.peer_state,
                            peer_description=d.peer_description)
                for d in image.destinations)
        # A group none of whose images is primary here any more is judged so once, so
        # that a clock running for it stops; then it is forgotten.
        for group in sorted(copies.keys() | self.clocks.keys()):
            judged = judge_group(copies.get(group, []))
            clock = self.clocks.setdefault(group, ProtectionClock())
            clock.observe(judged, now)
            self.judged[group] = judged
            if judged.state is Protection.NOT_PRIMARY_HERE and group not in copies:
                del self.clocks[group]
                del self.judged[group]
