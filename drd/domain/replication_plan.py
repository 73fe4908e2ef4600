"""Decide how RBD mirroring must change so that it matches the tenants' policies. Pure.

One pass compares what each tenant's selections ask for with what a pool holds and
returns actions, each with the reason an operator reads in the log. Three rules
keep it safe:
- an image no selection matches is never touched, unless drd itself enabled its
  mirroring (its `drd.tenant` mark), in which case mirroring is disabled cleanly;
- only images that are primary here, or not mirrored at all, are acted on: the
  copies on peers belong to rbd-mirror;
- an image two tenants both claim is left alone and reported.
"""

from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum
from fnmatch import fnmatchcase

from drd.domain.tenant_policy import ReplicationMode

# One name for one idea: the mode a policy asks for is the mode Ceph mirrors in.
MirrorMode = ReplicationMode


class MirrorState(StrEnum):
    DISABLED = "disabled"
    ENABLING = "enabling"
    ENABLED = "enabled"
    DISABLING = "disabling"


@dataclass(frozen=True, order=True)
class ImageRef:
    pool: str
    namespace: str
    name: str

    def __str__(self) -> str:
        space = f"{self.namespace}/" if self.namespace else ""
        return f"{self.pool}/{space}{self.name}"


@dataclass(frozen=True)
class Selection:
    """One selection of a tenant policy, reduced to what mirroring needs."""

    tenant: str
    name: str
    pool: str
    namespace: str
    globs: tuple[str, ...]
    mode: MirrorMode
    snapshot_interval: timedelta | None  # the shortest over snapshot destinations

    def matches(self, ref: ImageRef) -> bool:
        return (ref.pool == self.pool and ref.namespace == self.namespace
                and any(fnmatchcase(ref.name, glob) for glob in self.globs))


@dataclass(frozen=True)
class ObservedImage:
    ref: ImageRef
    image_id: str
    state: MirrorState
    mode: MirrorMode | None  # None while mirroring is disabled
    primary: bool | None  # None while mirroring is disabled
    # The drd.tenant mark: None when not read yet, "" when the image has none.
    marked_tenant: str | None


class ActionKind(StrEnum):
    ENABLE = "enable"
    CHANGE_MODE = "change-mode"
    DISABLE = "disable"
    CONFLICT = "conflict"


@dataclass(frozen=True)
class Action:
    kind: ActionKind
    ref: ImageRef
    reason: str
    selection: Selection | None = None
    tenant: str | None = None  # whose policy the action serves (or served, for disable)


@dataclass(frozen=True)
class Protected:
    """An image under a policy and mirrored as that policy asks: the scheduler's input."""

    ref: ImageRef
    image_id: str
    selection: Selection


@dataclass(frozen=True)
class ReconcilePlan:
    actions: tuple[Action, ...]
    protected: tuple[Protected, ...]
    # Mirrored images no selection matches and whose mark was not read yet: the
    # adapter reads their marks (one image open each) and plans again.
    unknown_marks: tuple[ImageRef, ...]


def claimants(selections: list[Selection], ref: ImageRef) -> list[Selection]:
    return [s for s in selections if s.matches(ref)]


def primary_tenants(selections: list[Selection], images: list[ObservedImage],
                    production_site: bool) -> set[str]:
    """Tenants this site is primary for, and so may start mirroring new images of.

    A site holding a primary mirrored image of a tenant is that tenant's primary. A
    tenant with nothing mirrored yet starts on the production site. (Epochs replace
    this inference when automatic takeover lands.)
    """
    seen_primary: set[str] = set()
    seen_anywhere: set[str] = set()
    for image in images:
        if image.state is MirrorState.DISABLED:
            continue
        for selection in claimants(selections, image.ref):
            seen_anywhere.add(selection.tenant)
            if image.primary:
                seen_primary.add(selection.tenant)
    unmirrored = {s.tenant for s in selections} - seen_anywhere
    return seen_primary | (unmirrored if production_site else set())


def plan_reconcile(selections: list[Selection], images: list[ObservedImage],
                   primary_for: set[str] | None = None) -> ReconcilePlan:
    """What to do to the images of the pools `selections` name.

    `primary_for` limits enabling new mirroring to the tenants this site is primary
    for (None: all of them).
    """
    actions: list[Action] = []
    protected: list[Protected] = []
    unknown: list[ImageRef] = []
    for image in sorted(images, key=lambda i: i.ref):
        wanted = claimants(selections, image.ref)
        tenants = sorted({s.tenant for s in wanted})
        if len(tenants) > 1:
            actions.append(Action(ActionKind.CONFLICT, image.ref,
                                  f"{image.ref} is selected by tenants {', '.join(tenants)}; "
                                  "left as it is until only one selects it"))
            continue
        if image.primary is False:
            continue  # a replica: rbd-mirror owns it
        if image.state in (MirrorState.ENABLING, MirrorState.DISABLING):
            continue  # Ceph is mid-change; look again next pass
        if wanted:
            if (image.state is MirrorState.DISABLED and primary_for is not None
                    and wanted[0].tenant not in primary_for):
                continue  # another site is this tenant's primary
            action = _toward(image, wanted[0])
            if action is None:
                protected.append(Protected(image.ref, image.image_id, wanted[0]))
            else:
                actions.append(action)
        elif image.state is MirrorState.ENABLED:
            if image.marked_tenant is None:
                unknown.append(image.ref)
            elif image.marked_tenant:
                actions.append(Action(
                    ActionKind.DISABLE, image.ref,
                    f"{image.ref} is no longer selected by tenant {image.marked_tenant}'s "
                    "policy; disabling the mirroring drd enabled",
                    tenant=image.marked_tenant))
    return ReconcilePlan(tuple(actions), tuple(protected), tuple(unknown))


def _toward(image: ObservedImage, selection: Selection) -> Action | None:
    where = f"tenant {selection.tenant}'s selection {selection.name}"
    if image.state is MirrorState.DISABLED:
        return Action(ActionKind.ENABLE, image.ref,
                      f"{image.ref} matches {where}; enabling {selection.mode.value} mirroring",
                      selection, selection.tenant)
    if image.mode is not selection.mode:
        current = image.mode.value if image.mode else "unknown"
        return Action(ActionKind.CHANGE_MODE, image.ref,
                      f"{image.ref} is mirrored in {current} mode but {where} asks for "
                      f"{selection.mode.value}; peers resync it in the new mode", selection,
                      selection.tenant)
    return None
