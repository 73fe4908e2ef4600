"""Make RBD mirroring match the tenants' policies, one idempotent pass at a time.

A pass observes every pool and namespace the policies name (a few rounds of batched
cls calls each, OBSERVE_PARALLEL namespaces at a time), plans with the pure `plan_reconcile`,
reads the marks of the few mirrored images no policy selects any more, and carries
the actions out, PARALLEL at a time. Each Ceph call is retried with backoff; an action that still
fails is reported and tried again next pass. Blocking: run a pass in a worker thread.
"""

import contextvars
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from functools import partial
from typing import Any, TypeVar, cast

import structlog
from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, wait_exponential

from drd.ceph import rbd_images, rbd_observe
from drd.ceph.cluster import CephError, ClusterHandle
from drd.domain.replication_plan import (
    Action,
    ActionKind,
    ObservedImage,
    Protected,
    Selection,
    plan_reconcile,
    primary_tenants,
)

log = structlog.get_logger()
T = TypeVar("T")

ATTEMPTS = 3
PARALLEL = 8  # actions carried out at once: each is several writes
# Namespaces observed at once. Observing one is four or five round trips in a row, cheap
# for the OSDs; under load a round trip takes tens of ms, so a pass over 50 namespaces
# 8 at a time was mostly waiting (0.7 s against 0.2 s on an idle cluster).
OBSERVE_PARALLEL = 32


@dataclass(frozen=True)
class ActionOutcome:
    action: Action
    ok: bool
    error: str = ""


@dataclass(frozen=True)
class ReconcileReport:
    outcomes: tuple[ActionOutcome, ...]
    protected: tuple[Protected, ...]
    observed: tuple[ObservedImage, ...]
    pool_errors: tuple[str, ...]

    @property
    def failed(self) -> list[ActionOutcome]:
        return [o for o in self.outcomes if not o.ok]


def _retrying() -> Retrying:
    return Retrying(retry=retry_if_exception_type(CephError), stop=stop_after_attempt(ATTEMPTS),
                    wait=wait_exponential(multiplier=0.2, max=2), reraise=True)


def _with_retries(handle: ClusterHandle, call: Callable[[Any], Any]) -> Any:
    for attempt in _retrying():
        with attempt:
            return handle.run(call)
    raise AssertionError("unreachable: tenacity reraises")


def _observe(cluster: Any, pool: str, namespace: str,
             memo: rbd_observe.ObservationMemo | None) -> list[ObservedImage]:
    return rbd_observe.observe_pool_batched(cluster, pool, namespace, memo)


def _in_parallel(calls: list[Callable[[], T]], width: int = PARALLEL) -> list[T]:
    """Run blocking Ceph calls `width` at a time: librados serves them concurrently,
    and a pass over many namespaces or images is otherwise a chain of round trips."""
    if len(calls) <= 1:
        return [call() for call in calls]
    with ThreadPoolExecutor(max_workers=min(width, len(calls)),
                            thread_name_prefix="reconcile") as workers:
        # Each call carries the log context (the site) into its worker.
        futures = [workers.submit(contextvars.copy_context().run, call) for call in calls]
        return [future.result() for future in futures]


def _observe_or_error(handle: ClusterHandle, pool: str, namespace: str,
                      memo: rbd_observe.ObservationMemo | None
                      ) -> list[ObservedImage] | CephError:
    try:
        return cast("list[ObservedImage]", _with_retries(
            handle, partial(_observe, pool=pool, namespace=namespace, memo=memo)))
    except CephError as error:
        log.warning("cannot observe pool", pool=pool, namespace=namespace, error=str(error))
        return error


def reconcile_once(handle: ClusterHandle, selections: list[Selection],
                   production_site: bool,
                   memo: rbd_observe.ObservationMemo | None = None) -> ReconcileReport:
    """One full pass over the pools the policies name. `memo` carries what one pass
    learnt that cannot change into the next (see drd.ceph.rbd_observe)."""
    observed: list[ObservedImage] = []
    pool_errors: list[str] = []
    namespaces = sorted({(s.pool, s.namespace) for s in selections})
    for found in _in_parallel([partial(_observe_or_error, handle, pool, namespace, memo)
                               for pool, namespace in namespaces], OBSERVE_PARALLEL):
        # One unreadable pool must not stop the others; its images stay as they are.
        if isinstance(found, CephError):
            pool_errors.append(str(found))
        else:
            observed += found
    primary_for = primary_tenants(selections, observed, production_site)
    plan = plan_reconcile(selections, observed, primary_for)
    if plan.unknown_marks:
        marks = {}
        for ref in plan.unknown_marks:
            try:
                marks[ref] = _with_retries(handle, partial(rbd_images.read_tenant_mark, ref=ref))
            except CephError as error:
                log.warning("cannot read image marks", image=str(ref), error=str(error))
        observed = [replace(i, marked_tenant=marks[i.ref]) if i.ref in marks else i
                    for i in observed]
        plan = plan_reconcile(selections, observed, primary_for)
    outcomes = tuple(_in_parallel([partial(_carry_out, handle, action)
                                   for action in plan.actions]))
    # Images just mirrored as asked are protected from now on, not from the next pass.
    ids = {image.ref: image.image_id for image in observed}
    newly = tuple(Protected(o.action.ref, ids[o.action.ref], o.action.selection)
                  for o in outcomes
                  if o.ok and o.action.selection is not None
                  and o.action.kind in (ActionKind.ENABLE, ActionKind.CHANGE_MODE))
    return ReconcileReport(outcomes, plan.protected + newly, tuple(observed),
                           tuple(pool_errors))


def _carry_out(handle: ClusterHandle, action: Action) -> ActionOutcome:
    if action.kind is ActionKind.CONFLICT:
        log.warning("image claimed twice", image=str(action.ref), reason=action.reason)
        return ActionOutcome(action, ok=False, error=action.reason)
    try:
        if action.kind is ActionKind.DISABLE:
            _with_retries(handle, lambda c: rbd_images.disable_mirroring(c, action.ref))
        else:
            selection = action.selection
            assert selection is not None
            if action.kind is ActionKind.CHANGE_MODE:
                _with_retries(handle, lambda c: rbd_images.disable_mirroring(c, action.ref))
            _with_retries(handle, lambda c: rbd_images.enable_mirroring(
                c, action.ref, selection.mode, selection.tenant, selection.name))
    except CephError as error:
        log.error("reconcile action failed", action=action.kind.value, image=str(action.ref),
                  error=str(error))
        return ActionOutcome(action, ok=False, error=str(error))
    log.info("reconciled", action=action.kind.value, image=str(action.ref),
             tenant=action.tenant, reason=action.reason)
    return ActionOutcome(action, ok=True)
