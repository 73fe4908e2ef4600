"""What the runbook's RBD steps decide for each image state, with the reasons the
operator reads."""

from datetime import UTC, datetime, timedelta

import pytest

from drd.domain.rbd_step_decisions import (
    Act,
    CopyHealth,
    Health,
    MirrorStatus,
    demote_decision,
    fence_decision,
    follow_decision,
    judge_copy,
    promote_decision,
    registration_stale,
    resync_decision,
    resync_refusal,
    split_brain_evidence,
    stuck_lock_decision,
)
from drd.domain.replay_progress import Progress
from drd.domain.replication_plan import ImageRef, MirrorMode, MirrorState, ObservedImage
from drd.domain.rpo import MirrorSnapshot
from drd.domain.rpo_bounds import destination_bounds, judge_reading
from drd.domain.site import SiteKind
from drd.domain.tenant_policy import BlockSelection

AT = datetime(2026, 11, 22, 9, 36, 10, tzinfo=UTC)
REF = ImageRef("rbd", "water", "db-1")


def image(primary: bool | None, mode: MirrorMode | None = MirrorMode.JOURNAL,
          state: MirrorState = MirrorState.ENABLED) -> ObservedImage:
    if state is MirrorState.DISABLED:
        mode, primary = None, None
    return ObservedImage(REF, "10ab", state, mode, primary, None)


def status(state: str, description: str, up: bool = True) -> MirrorStatus:
    return MirrorStatus(state, description, up, AT)


def test_demote_acts_on_a_primary_and_leaves_a_non_primary_alone() -> None:
    assert demote_decision(image(primary=True)).reason == "primary (journal mode): demote"
    again = demote_decision(image(primary=False, mode=MirrorMode.SNAPSHOT))
    assert (again.act, again.reason) == (Act.SKIP, "already non-primary: left as it is")


@pytest.mark.parametrize(("state", "words"), [
    (MirrorState.DISABLED, "not mirrored, so it would stay behind"),
    (MirrorState.ENABLING, "mirroring is enabling: wait until Ceph finishes")])
def test_demote_refuses_an_image_a_switchover_would_not_move(state: MirrorState,
                                                             words: str) -> None:
    decision = demote_decision(image(primary=True, state=state))
    assert decision.act is Act.REFUSE and words in decision.reason


def test_promote_acts_on_a_copy_and_leaves_a_primary_or_unmirrored_image_alone() -> None:
    assert promote_decision(image(primary=False)).reason == "non-primary (journal mode): promote"
    assert promote_decision(image(primary=False), force=True).reason == \
        "non-primary (journal mode): force-promote"
    assert promote_decision(image(primary=True)).act is Act.SKIP
    unmirrored = promote_decision(image(primary=None, state=MirrorState.DISABLED))
    assert (unmirrored.act, unmirrored.reason) == \
        (Act.SKIP, "not mirrored: writable here already, left as it is")


def test_a_copy_split_brained_by_rbd_mirror_is_split_brain_whatever_else_it_shows() -> None:
    judged = judge_copy(image(primary=False), status("error", "split-brain detected"),
                        Progress(True, "replays the primary's journal"))
    assert judged == CopyHealth(Health.SPLIT_BRAIN,
                                "rbd-mirror reports 'split-brain detected' at 09:36:10")


def test_a_copy_replaying_by_its_data_is_healthy_though_its_status_dates_from_before() -> None:
    stale = status("stopped", "local image is primary")
    assert judge_copy(image(primary=False), stale).health is Health.UNSETTLED
    judged = judge_copy(image(primary=False), stale,
                        Progress(True, "holds a complete copy of primary snapshot 15"))
    assert judged == CopyHealth(Health.HEALTHY, "replaying: the copy holds a complete copy "
                                                "of primary snapshot 15")


@pytest.mark.parametrize(("reported", "health", "reason"), [
    (None, Health.UNSETTLED, "rbd-mirror has not reported on this copy yet"),
    (("unknown", "status not found", False), Health.UNSETTLED,
     "rbd-mirror has not reported on this copy yet"),
    (("replaying", "replaying, {...}", True), Health.HEALTHY,
     "rbd-mirror reports replaying at 09:36:10"),
    (("starting_replay", "starting replay", True), Health.UNSETTLED,
     "rbd-mirror reports starting_replay at 09:36:10"),
    (("replaying", "replaying", False), Health.UNHEALTHY,
     "rbd-mirror is not running here (last report at 09:36:10: replaying)"),
    (("stopped", "remote image is not primary", True), Health.UNHEALTHY,
     "rbd-mirror reports stopped: 'remote image is not primary' at 09:36:10")])
def test_a_copy_is_judged_by_what_its_rbd_mirror_reports(
        reported: tuple[str, str, bool] | None, health: Health, reason: str) -> None:
    found = None if reported is None else status(*reported)
    assert judge_copy(image(primary=False), found) == CopyHealth(health, reason)


def test_a_primary_is_healthy_and_an_unmirrored_image_is_not() -> None:
    assert judge_copy(image(primary=True), None) == CopyHealth(Health.HEALTHY,
                                                               "primary (journal mode)")
    assert judge_copy(image(None, state=MirrorState.DISABLED), None).health is Health.UNHEALTHY


def _resync(loser: ObservedImage | None, winner: ObservedImage | None,
            health: Health = Health.SPLIT_BRAIN, reason: str = "split-brain") -> tuple[Act, str]:
    decision = resync_decision(loser, winner, CopyHealth(health, reason), "a", "b")
    return decision.act, decision.reason


def test_resync_acts_on_split_brain_only_and_leaves_a_replaying_copy_alone() -> None:
    assert _resync(image(False), image(True)) == (Act.ACT, "split-brain: resync from b")
    assert _resync(image(False), image(True), Health.HEALTHY, "replaying") == \
        (Act.SKIP, "replaying: left as it is")
    assert _resync(image(False), image(True), Health.UNSETTLED, "no report yet") == \
        (Act.WAIT, "no report yet")


def test_resync_waits_for_a_copy_rbd_mirror_is_recreating() -> None:
    decision = resync_decision(None, image(True), None, "a", "b")
    assert (decision.act, decision.reason) == \
        (Act.WAIT, "no copy on a yet: rbd-mirror is (re)creating it")


def test_resync_waits_for_an_unmirrored_copy_only_while_the_copies_settle() -> None:
    unmirrored = image(None, state=MirrorState.DISABLED)
    health = CopyHealth(Health.UNHEALTHY, "not mirrored")
    waiting = resync_decision(unmirrored, image(True), health, "a", "b", settling=True)
    assert (waiting.act, waiting.reason) == \
        (Act.WAIT, "not mirrored on a yet: rbd-mirror may be (re)creating it")
    refused = resync_decision(unmirrored, image(True), health, "a", "b")
    assert (refused.act, refused.reason) == (Act.REFUSE, "not mirrored on a")


@pytest.mark.parametrize(("loser", "winner", "words"), [
    (image(True), image(True), "primary on a as well as on b: demote it on a first"),
    (image(False), image(False), "not primary on b: a resync would copy from no primary"),
    (image(False), None, "not on b: nothing to resync from")])
def test_resync_refuses_what_it_cannot_repair(loser: ObservedImage, winner: ObservedImage | None,
                                              words: str) -> None:
    act, reason = _resync(loser, winner)
    assert act is Act.REFUSE and words in reason


def test_a_resync_runs_unasked_only_in_a_planned_run_or_for_the_confirmed_winner() -> None:
    assert resync_refusal(proven_clean=True, confirmed_winner=None, winner="b") is None
    assert resync_refusal(proven_clean=False, confirmed_winner="b", winner="b") is None
    unconfirmed = resync_refusal(proven_clean=False, confirmed_winner=None, winner="b")
    assert unconfirmed is not None and "--confirm-winner b" in unconfirmed
    other = resync_refusal(proven_clean=False, confirmed_winner="a", winner="b")
    assert other is not None and other.startswith("the operator confirmed a as the winner")


def test_split_brain_evidence_dates_each_sides_last_snapshot_as_primary() -> None:
    def snap(snap_id: int, second: int, demoted: bool = False) -> MirrorSnapshot:
        return MirrorSnapshot(snap_id, AT + timedelta(seconds=second), primary=True,
                              complete=True, primary_snap_id=None, demoted=demoted)
    evidence = split_brain_evidence([snap(30, 0), snap(33, 5, demoted=True)],
                                    [snap(37, 2), snap(40, 4)], "a", "b")
    # a was demoted after b's last snapshot; what counts is a's last snapshot as primary.
    assert evidence == ("a: last snapshot as primary 2026-11-22 09:36:10, demoted "
                        "2026-11-22 09:36:15; b: last snapshot as primary 2026-11-22 09:36:14; "
                        "of those, b's is the newer")


def test_peers_rbd_mirror_is_spared_and_every_other_holder_fenced() -> None:
    assert fence_decision("client.rbd-mirror-peer").act is Act.SKIP
    assert fence_decision("client.rbd-mirror.a").act is Act.SKIP
    assert fence_decision("client.admin").reason == "client.admin may write to it"
    assert fence_decision(None).act is Act.ACT


def test_each_destination_is_held_to_its_own_target_seen_from_the_primary() -> None:
    block = BlockSelection.model_validate({
        "name": "db", "pool": "rbd", "namespace": "water", "images": ["db-*"],
        "same_city": {"mode": "journal", "rpo_target": "5s"},
        "remote": {"mode": "snapshot", "interval": "1m", "rpo_target": "2m"}})
    peers = {"b": SiteKind.SAME_CITY, "c": SiteKind.REMOTE}
    assert destination_bounds(block, SiteKind.PRODUCTION, peers) == {
        "b": timedelta(seconds=5), "c": timedelta(minutes=2)}
    # From b, a is the same-city destination; c does not pull from b in Pacific's
    # shape, but the policy's bound would still apply to it.
    assert destination_bounds(block, SiteKind.SAME_CITY, {"a": SiteKind.PRODUCTION}) == {
        "a": timedelta(seconds=5)}


def test_an_rpo_reading_is_within_only_when_measured_and_under_its_bound() -> None:
    bound = timedelta(seconds=5)
    assert judge_reading(timedelta(seconds=1), bound, "caught up").within is True
    assert judge_reading(timedelta(seconds=6), bound, "replaying").reason == \
        "RPO 6.00 s (bound 5 s; replaying): over the bound"
    assert judge_reading(None, bound, "first sync in progress").within is None


def test_only_an_rbd_mirror_keeping_a_promoted_copy_locked_is_fenced() -> None:
    assert stuck_lock_decision("client.rbd-mirror.b").act is Act.ACT
    assert stuck_lock_decision("client.rbd-mirror.host1.xyzzy").act is Act.ACT
    refused = stuck_lock_decision("client.openstack")
    assert refused.act is Act.REFUSE
    assert refused.reason == "client.openstack holds its lock and is no rbd-mirror daemon"
    assert stuck_lock_decision(None).act is Act.REFUSE


def test_a_remote_copy_is_resynced_only_on_a_report_since_its_pool_was_repointed() -> None:
    before, after = AT - timedelta(seconds=1), AT + timedelta(seconds=1)
    split = MirrorStatus("error", "split-brain detected", True, AT)
    unlinked = MirrorStatus("error", "local image linked to unknown peer", True, AT)
    replaying = MirrorStatus("replaying", "replaying, {}", True, AT)
    assert follow_decision(False, split, before).act is Act.ACT
    assert follow_decision(False, unlinked, before).act is Act.ACT
    assert follow_decision(False, replaying, before).act is Act.SKIP
    # A report from before the re-pointing speaks of the old peer: wait for a new one.
    assert follow_decision(False, split, after).act is Act.WAIT
    assert follow_decision(False, None, before).act is Act.WAIT
    not_primary = MirrorStatus("stopped", "remote image is not primary", True, AT)
    assert follow_decision(False, not_primary, before).act is Act.WAIT
    assert follow_decision(True, replaying, before).act is Act.REFUSE
    # Not re-pointed: an old report stands (rbd-mirror repeats none while nothing changes).
    assert follow_decision(False, split, None).act is Act.ACT
    assert follow_decision(False, None, None).act is Act.WAIT


def test_only_a_registration_naming_another_copy_than_the_remotes_is_stale() -> None:
    assert registration_stale("10ab", "20cd") is True  # the copy an earlier resync deleted
    assert registration_stale("20cd", "20cd") is False
    assert registration_stale(None, "20cd") is False  # never registered: it will register
    assert registration_stale("10ab", None) is False  # no copy: a resync is at work
