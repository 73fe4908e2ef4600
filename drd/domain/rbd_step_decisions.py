"""What a runbook's RBD steps do to each image, decided from the image's state. Pure.

Each decision carries the reason an operator reads in the run's output, so that a
step repeated after a crash says why it left an image alone ("already non-primary:
left as it is") instead of acting twice.
"""

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from drd.domain.replay_progress import Progress
from drd.domain.replication_plan import MirrorState, ObservedImage
from drd.domain.rpo import MirrorSnapshot

# rbd-mirror's status of a copy that replays, or copies the whole image first.
_REPLAYING = ("replaying", "syncing")
_SETTLING = ("starting_replay", "stopping_replay", "unknown")
NO_STATUS = "status not found"  # what librbd reports for a copy with no status yet


class Act(StrEnum):
    ACT = "act"  # do the step's action to this image
    SKIP = "skip"  # already as the step wants it
    WAIT = "wait"  # not decidable yet: look again
    REFUSE = "refuse"  # the step must not act on this image; it fails before acting


@dataclass(frozen=True)
class Decision:
    act: Act
    reason: str


@dataclass(frozen=True)
class MirrorStatus:
    """What a site's rbd-mirror last reported about that site's copy of an image."""

    state: str  # replaying, syncing, starting_replay, stopped, error, unknown, ...
    description: str
    up: bool  # whether the reporting rbd-mirror is running
    reported_at: datetime | None


def _settled(image: ObservedImage) -> Decision | None:
    """A refusal when mirroring is not enabled and settled, None when it is."""
    if image.state is MirrorState.DISABLED:
        return None
    if image.state is not MirrorState.ENABLED:
        return Decision(Act.REFUSE, f"mirroring is {image.state.value}: wait until Ceph "
                                    f"finishes, then run the step again")
    return None


def demote_decision(image: ObservedImage) -> Decision:
    """Demote a primary; a copy that is already non-primary is left as it is."""
    if image.state is MirrorState.DISABLED:
        return Decision(Act.REFUSE, "not mirrored, so it would stay behind, writable, on "
                                    "this site: mirror it first or take it out of the policy")
    refused = _settled(image)
    if refused is not None:
        return refused
    if image.primary:
        return Decision(Act.ACT, f"primary ({_mode(image)}): demote")
    return Decision(Act.SKIP, "already non-primary: left as it is")


def promote_decision(image: ObservedImage, force: bool = False) -> Decision:
    """Promote a non-primary copy; a primary is left as it is."""
    if image.state is MirrorState.DISABLED:
        return Decision(Act.SKIP, "not mirrored: writable here already, left as it is")
    refused = _settled(image)
    if refused is not None:
        return refused
    if image.primary:
        return Decision(Act.SKIP, "already primary: left as it is")
    how = "force-promote" if force else "promote"
    return Decision(Act.ACT, f"non-primary ({_mode(image)}): {how}")


def fence_decision(entity: str | None) -> Decision:
    """Whether a client holding a primary image on the lost site is fenced. A peer's
    rbd-mirror only reads a primary, to replicate it, and is left alone; a client
    whose user no monitor names is fenced, as any writer would be."""
    if entity is not None and "rbd-mirror" in entity:
        return Decision(Act.SKIP, f"{entity} replicates from it and never writes it")
    return Decision(Act.ACT, f"{entity or 'a client no monitor names'} may write to it")


def stuck_lock_decision(entity: str | None) -> Decision:
    """Whether the client keeping a just force-promoted copy's lock at the promoting site
    is fenced: only an rbd-mirror daemon, whose replay from the lost site is stuck; any
    other holder is for an operator to look at."""
    if entity is not None and "rbd-mirror" in entity:
        return Decision(Act.ACT, f"{entity} keeps it locked for replay from the lost site")
    return Decision(Act.REFUSE, f"{entity or 'a client no monitor names'} holds its lock and "
                                f"is no rbd-mirror daemon")


def follow_decision(primary_here: bool, status: MirrorStatus | None,
                    since: datetime | None) -> Decision:
    """Whether a remote site's copy, its pool just re-pointed to pull from a new primary,
    is resynced from there. Measured on Ceph 16.2.15: re-pointed, a journal copy reports
    "split-brain detected" and a snapshot copy "local image linked to unknown peer"
    within about 10 s, and only a resync (a full copy) links them to the new primary.
    Reports older than `since` (the re-pointing) are stale and not acted on; without a
    re-pointing (`since` None) the newest report stands, however old: rbd-mirror does
    not report again on a copy whose state does not change (a full run waited on one
    for ten minutes)."""
    if primary_here:
        return Decision(Act.REFUSE, "primary on the remote site itself: a failover went "
                                    "there, so it follows no one")
    if status is None or (since is not None and (status.reported_at is None
                                                 or status.reported_at < since)):
        return Decision(Act.WAIT, "no report of the remote rbd-mirror since the re-pointing")
    if "split-brain" in status.description or "linked to unknown peer" in status.description:
        return Decision(Act.ACT, f"{status.description}: resync from the new primary")
    if status.state in _REPLAYING:
        return Decision(Act.SKIP, f"{status.state}: it follows the new primary")
    return Decision(Act.WAIT, f"{status.state}: {status.description or 'no description'}")


def registration_stale(registered_copy: str | None, copy: str | None) -> bool:
    """Whether the primary's journal registers the remote's rbd-mirror against a copy
    other than the one the remote holds. Ceph 16.2.15 then reports "split-brain
    detected" whatever is done at the remote, resync included: the registration names
    a copy that an earlier resync, at another primary's bidding, deleted. Nothing
    registered, or no copy (a resync already at work), is not stale."""
    return registered_copy is not None and copy is not None and registered_copy != copy


class Health(StrEnum):
    HEALTHY = "healthy"
    SPLIT_BRAIN = "split-brain"
    UNHEALTHY = "unhealthy"
    UNSETTLED = "unsettled"  # rbd-mirror has not reported on the current state yet


@dataclass(frozen=True)
class CopyHealth:
    health: Health
    reason: str


def judge_copy(image: ObservedImage, status: MirrorStatus | None,
               replaying: Progress | None = None) -> CopyHealth:
    """Whether the image is primary or a copy that replays, from rbd-mirror's status
    and, where it lags, from what the copy's data shows (`replaying`)."""
    if image.state is MirrorState.DISABLED:
        return CopyHealth(Health.UNHEALTHY, "not mirrored")
    if image.state is not MirrorState.ENABLED:
        return CopyHealth(Health.UNSETTLED, f"mirroring is {image.state.value}")
    if image.primary:
        return CopyHealth(Health.HEALTHY, f"primary ({_mode(image)})")
    if status is not None and "split-brain" in status.description:
        return CopyHealth(Health.SPLIT_BRAIN, f"rbd-mirror reports {status.description!r}"
                                              f"{_at(status)}")
    if replaying is not None and replaying.done:
        return CopyHealth(Health.HEALTHY, f"replaying: the copy {replaying.detail}")
    if status is None or status.description == NO_STATUS:
        return CopyHealth(Health.UNSETTLED, "rbd-mirror has not reported on this copy yet")
    if status.description == "local image is primary":
        return CopyHealth(Health.UNSETTLED, f"rbd-mirror's last report{_at(status)} dates "
                                            f"from when this copy was primary")
    if not status.up:
        return CopyHealth(Health.UNHEALTHY, f"rbd-mirror is not running here (last report"
                                            f"{_at(status)}: {status.state})")
    if status.state in _REPLAYING:
        return CopyHealth(Health.HEALTHY, f"rbd-mirror reports {status.state}{_at(status)}")
    if status.state in _SETTLING:
        return CopyHealth(Health.UNSETTLED, f"rbd-mirror reports {status.state}{_at(status)}")
    return CopyHealth(Health.UNHEALTHY, f"rbd-mirror reports {status.state}: "
                                        f"{status.description!r}{_at(status)}")


def resync_decision(loser: ObservedImage | None, winner: ObservedImage | None,
                    health: CopyHealth | None, loser_site: str, winner_site: str, *,
                    settling: bool = False) -> Decision:
    """Resync the losing side's copy when it is split-brained against the winner's primary.

    `health` is `judge_copy` of the losing copy, None when it is not there. While
    `settling`, a copy without mirroring is waited for rather than refused: rbd-mirror
    creates a copy first and enables its mirroring after (seen once in a failback, just
    after a's rbd-mirror re-created a copy)."""
    if winner is None:
        return Decision(Act.REFUSE, f"not on {winner_site}: nothing to resync from")
    if winner.state is not MirrorState.ENABLED or not winner.primary:
        return Decision(Act.REFUSE, f"not primary on {winner_site}: a resync would copy "
                                    f"from no primary; promote it there first")
    if loser is None or health is None:
        # rbd-mirror deletes a copy it resyncs and creates it again.
        return Decision(Act.WAIT, f"no copy on {loser_site} yet: rbd-mirror is (re)creating it")
    if loser.state is MirrorState.DISABLED:
        if settling:
            return Decision(Act.WAIT, f"not mirrored on {loser_site} yet: rbd-mirror may be "
                                      f"(re)creating it")
        return Decision(Act.REFUSE, f"not mirrored on {loser_site}")
    if loser.state is not MirrorState.ENABLED:
        return Decision(Act.WAIT, f"mirroring on {loser_site} is {loser.state.value}")
    if loser.primary:
        return Decision(Act.REFUSE, f"primary on {loser_site} as well as on {winner_site}: "
                                    f"demote it on {loser_site} first (rbd_demote), then resync")
    if health.health is Health.SPLIT_BRAIN:
        return Decision(Act.ACT, f"{health.reason}: resync from {winner_site}")
    if health.health is Health.HEALTHY:
        return Decision(Act.SKIP, f"{health.reason}: left as it is")
    return Decision(Act.WAIT, health.reason)


def resync_refusal(proven_clean: bool, confirmed_winner: str | None,
                   winner: str) -> str | None:
    """Why resyncs may not run now, or None. A resync discards the losing copy: it runs
    unasked only when this run demoted the losing side and then proved it replayed in
    full elsewhere (`proven_clean`), so that it provably holds nothing newer; otherwise
    an operator confirms the winner."""
    if proven_clean or confirmed_winner == winner:
        return None
    if confirmed_winner is None:
        return (f"a resync discards the losing side's data, and this run did not demote "
                f"it and prove it replayed in full: confirm that {winner} holds the data "
                f"to keep by resuming the run with --confirm-winner {winner}")
    return (f"the operator confirmed {confirmed_winner} as the winner, but this step keeps "
            f"{winner}'s data: check which side holds the newer data, then resume with "
            f"--confirm-winner {winner}, or run a runbook that keeps {confirmed_winner}")


def split_brain_evidence(loser_snaps: list[MirrorSnapshot], winner_snaps: list[MirrorSnapshot],
                         loser: str, winner: str) -> str:
    """What the snapshots say about which side holds the newer data: when each side
    last took a mirror snapshot while primary, and when it was demoted. A demotion
    snapshot dates the end of a side's writes, not its last write, so the comparison
    uses the snapshots taken while primary, as split_brain_verdict does."""
    def side(snaps: list[MirrorSnapshot], site: str) -> tuple[datetime | None, str]:
        taken = [snap.created for snap in snaps if snap.primary and not snap.demoted]
        demoted = [snap.created for snap in snaps if snap.primary and snap.demoted]
        last = max(taken, default=None)
        text = f"{site}: last snapshot as primary {'none' if last is None else f'{last:%F %T}'}"
        if demoted:
            text += f", demoted {max(demoted):%F %T}"
        return last, text
    lost_at, lost_text = side(loser_snaps, loser)
    won_at, won_text = side(winner_snaps, winner)
    verdict = ""
    if lost_at is not None and won_at is not None:
        verdict = f"; of those, {winner if won_at >= lost_at else loser}'s is the newer"
    return f"{lost_text}; {won_text}{verdict}"


def _mode(image: ObservedImage) -> str:
    return f"{image.mode.value} mode" if image.mode is not None else "mode unknown"


def _at(status: MirrorStatus) -> str:
    return f" at {status.reported_at:%H:%M:%S}" if status.reported_at is not None else ""
