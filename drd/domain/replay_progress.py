"""How far a site's copy of an image has replayed its primary, judged from data rather
than from rbd-mirror's status reports. Pure.

rbd-mirror rewrites an image's status on a change of state and otherwise every 30 s,
so a status can be half a minute old (measured on Ceph 16.2.15: a copy replaying 1 s
after a switchover still showed "local image is primary" for 30 s). The snapshots and
journal positions the copy leaves behind are current:

- snapshot mode: the copy holds a complete non-primary snapshot whose primary_snap_id
  is a primary snapshot on the primary side;
- journal mode: the copy's rbd-mirror commits how far it has replayed as its client's
  position in the primary's journal (client id: the copy's site's mirror UUID).

Two questions are asked of them. *In sync*: does the copy hold everything the primary
had at its newest snapshot, or at its journal's committed position (after a demotion,
everything it ever wrote)? *Replaying*: has the copy replayed anything the primary
wrote as primary, that is past the primary's promotion? A split-brained copy never
does: its replay stops at the promotion.
"""

from dataclasses import dataclass

from drd.domain.journal_position import MASTER_CLIENT, JournalClient, Position
from drd.domain.rpo import MirrorSnapshot

# A copy that has not begun replaying what it waits for (the step may nudge its replayer).
NOT_STARTED = "has not started copying"


@dataclass(frozen=True)
class Progress:
    done: bool
    detail: str  # what the data shows, for the operator


def snapshot_in_sync(primary: list[MirrorSnapshot], copy: list[MirrorSnapshot]) -> Progress:
    """The copy holds a complete copy of the primary side's newest primary snapshot."""
    own = [snap for snap in primary if snap.primary]
    if not own:
        return Progress(False, "the primary side has no mirror snapshot yet")
    newest = max(own, key=lambda snap: snap.snap_id)
    what = f"{'demotion ' if newest.demoted else ''}snapshot {newest.snap_id}"
    copies = [snap for snap in copy if not snap.primary and snap.primary_snap_id == newest.snap_id]
    if any(snap.complete for snap in copies):
        return Progress(True, f"holds a complete copy of {what}")
    if copies:
        return Progress(False, f"is copying {what}")
    return Progress(False, f"{NOT_STARTED} {what}{_newest_copy(copy)}")


def snapshot_replaying(primary: list[MirrorSnapshot], copy: list[MirrorSnapshot]) -> Progress:
    """The copy holds a complete copy of a snapshot the primary took as primary (its
    promotion snapshot or a later one)."""
    taken_as_primary = {snap.snap_id for snap in primary if snap.primary and not snap.demoted}
    copied = [snap for snap in copy if not snap.primary and snap.complete
              and snap.primary_snap_id in taken_as_primary]
    if copied:
        newest = max(copied, key=lambda snap: snap.primary_snap_id or 0)
        return Progress(True, f"holds a complete copy of primary snapshot "
                              f"{newest.primary_snap_id}")
    return Progress(False, f"holds no copy of a snapshot taken since the promotion"
                           f"{_newest_copy(copy)}")


def journal_in_sync(clients: list[JournalClient], peer_client: str) -> Progress:
    """The copy's commit position in the primary's journal reached the primary's own."""
    master, peer, missing = _positions(clients, peer_client)
    if missing:
        return Progress(False, missing)
    if master is None:
        return Progress(True, "the journal holds no entries")
    if peer is not None and peer >= master:
        return Progress(True, f"replayed to the primary's position {_shown(master)}")
    return Progress(False, f"replayed to {_shown(peer)}, the primary is at {_shown(master)}")


def journal_replaying(clients: list[JournalClient], peer_client: str) -> Progress:
    """The copy's position is in the primary's newest tag: it replays past the promotion,
    which opened that tag."""
    master, peer, missing = _positions(clients, peer_client)
    if missing:
        return Progress(False, missing)
    if master is None:
        return Progress(False, "the primary's journal has no committed position yet")
    if peer is not None and peer.tag_tid >= master.tag_tid:
        return Progress(True, f"replays the primary's journal (at {_shown(peer)}, "
                              f"primary at {_shown(master)})")
    return Progress(False, f"has not replayed past the promotion (at {_shown(peer)}, "
                           f"primary at {_shown(master)})")


def _positions(clients: list[JournalClient], peer_client: str
               ) -> tuple[Position | None, Position | None, str]:
    """The primary's own position, the copy's, and why they cannot be compared."""
    by_id = {client.client_id: client.position for client in clients}
    if peer_client not in by_id:
        return None, None, "is not registered with the primary's journal"
    return by_id.get(MASTER_CLIENT), by_id[peer_client], ""


def _shown(position: Position | None) -> str:
    return "nothing yet" if position is None else f"{position.tag_tid}/{position.entry_tid}"


def _newest_copy(copy: list[MirrorSnapshot]) -> str:
    copies = [snap for snap in copy if not snap.primary]
    if not copies:
        return ""
    newest = max(copies, key=lambda snap: snap.snap_id)
    state = "complete" if newest.complete else "incomplete"
    return f" (newest copy: of primary snapshot {newest.primary_snap_id}, {state})"
