"""How mirroring must change to match the policies: the reconciler's decisions."""

from datetime import timedelta

from drd.domain.replication_plan import (
    ActionKind,
    ImageRef,
    MirrorMode,
    MirrorState,
    ObservedImage,
    Selection,
    plan_reconcile,
    primary_tenants,
)

WATER_DB = Selection("water", "databases", "rbd", "water", ("db-*",), MirrorMode.JOURNAL, None)
WATER_FILES = Selection("water", "files", "rbd", "water", ("files",), MirrorMode.SNAPSHOT,
                        timedelta(minutes=1))


def image(name: str, state: MirrorState = MirrorState.DISABLED, mode: MirrorMode | None = None,
          primary: bool | None = None, *, mark: str | None = None,
          namespace: str = "water") -> ObservedImage:
    return ObservedImage(ImageRef("rbd", namespace, name), f"id-{name}", state, mode, primary,
                         mark)


def mirrored(name: str, mode: MirrorMode, primary: bool = True,
             mark: str | None = None) -> ObservedImage:
    return image(name, MirrorState.ENABLED, mode, primary, mark=mark)


def test_selected_images_are_enabled_in_the_mode_their_selection_asks_for() -> None:
    plan = plan_reconcile([WATER_DB, WATER_FILES],
                          [image("db-1"), image("files"), image("scratch")])
    assert [(a.kind, a.ref.name, a.selection.mode if a.selection else None)
            for a in plan.actions] == [
        (ActionKind.ENABLE, "db-1", MirrorMode.JOURNAL),
        (ActionKind.ENABLE, "files", MirrorMode.SNAPSHOT),
    ]
    assert plan.actions[0].reason == \
        "rbd/water/db-1 matches tenant water's selection databases; enabling journal mirroring"


def test_images_already_mirrored_as_asked_need_nothing_and_are_protected() -> None:
    plan = plan_reconcile([WATER_DB], [mirrored("db-1", MirrorMode.JOURNAL)])
    assert plan.actions == ()
    assert [p.ref.name for p in plan.protected] == ["db-1"]


def test_a_mode_change_is_planned_with_its_cost_stated() -> None:
    plan = plan_reconcile([WATER_DB], [mirrored("db-1", MirrorMode.SNAPSHOT)])
    [action] = plan.actions
    assert action.kind is ActionKind.CHANGE_MODE
    assert "peers resync it in the new mode" in action.reason


def test_images_no_policy_selects_are_never_touched_unless_drd_mirrored_them() -> None:
    foreign = mirrored("legacy", MirrorMode.SNAPSHOT, mark="")
    dropped = mirrored("db-old", MirrorMode.JOURNAL, mark="water")
    plan = plan_reconcile([WATER_FILES], [foreign, dropped, image("scratch")])
    assert [(a.kind, a.ref.name) for a in plan.actions] == [(ActionKind.DISABLE, "db-old")]
    assert "no longer selected by tenant water's policy" in plan.actions[0].reason


def test_unselected_mirrored_images_with_unread_marks_are_asked_about_first() -> None:
    plan = plan_reconcile([WATER_FILES], [mirrored("db-old", MirrorMode.JOURNAL)])
    assert plan.actions == ()
    assert [ref.name for ref in plan.unknown_marks] == ["db-old"]


def test_replicas_and_images_in_transition_are_left_to_ceph() -> None:
    replica = mirrored("db-1", MirrorMode.SNAPSHOT, primary=False)
    disabling = image("db-2", MirrorState.DISABLING, MirrorMode.JOURNAL, True)
    plan = plan_reconcile([WATER_DB], [replica, disabling])
    assert plan.actions == ()


def test_an_image_two_tenants_claim_is_reported_and_left_alone() -> None:
    thief = Selection("transport", "all", "rbd", "water", ("*",), MirrorMode.SNAPSHOT,
                      timedelta(minutes=5))
    plan = plan_reconcile([WATER_DB, thief], [image("db-1")])
    [action] = plan.actions
    assert action.kind is ActionKind.CONFLICT
    assert "selected by tenants transport, water" in action.reason


def test_namespaces_and_pools_must_match_exactly() -> None:
    plan = plan_reconcile([WATER_DB], [image("db-1", namespace="")])
    assert plan.actions == ()


def test_new_images_are_enabled_only_where_the_tenant_is_primary() -> None:
    replica = mirrored("db-1", MirrorMode.JOURNAL, primary=False)
    fresh = image("db-2")
    on_replica_site = primary_tenants([WATER_DB], [replica, fresh], production_site=True)
    assert on_replica_site == set()
    assert plan_reconcile([WATER_DB], [replica, fresh], on_replica_site).actions == ()

    after_failover = [mirrored("db-1", MirrorMode.JOURNAL, primary=True), fresh]
    primary_here = primary_tenants([WATER_DB], after_failover, production_site=False)
    assert primary_here == {"water"}
    assert [a.ref.name for a in plan_reconcile([WATER_DB], after_failover,
                                               primary_here).actions] == ["db-2"]


def test_a_tenant_with_nothing_mirrored_yet_starts_on_production() -> None:
    fresh = [image("db-1")]
    assert primary_tenants([WATER_DB], fresh, production_site=True) == {"water"}
    assert primary_tenants([WATER_DB], fresh, production_site=False) == set()
