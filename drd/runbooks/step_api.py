"""What a step executor gets and gives: the contract between the engine and the step
library.

An executor is idempotent against the real state: it looks before it acts, so running
a step again after a crash, a retry or a resume does no harm and doubles no effect
("already non-primary: left as it is"). It reports what it saw and did as lines of
output, and facts (JSON values) that later steps or the run's report read.
"""

import asyncio
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol, TypeVar

from drd.ceph.cluster import ClusterHandle
from drd.domain.replication_plan import ImageRef
from drd.domain.runbook import RunbookKind, RunTarget
from drd.domain.runbook_steps import AnyStep
from drd.domain.site import SiteKind
from drd.domain.tenant_policy import TenantPolicy

T = TypeVar("T")
R = TypeVar("R")

IMAGE_PARALLEL = 16  # images one step works on at once, each in a worker thread


class StepFailed(Exception):
    """The step could not do its work; the message says what and why, for the journal."""


class StepPaused(Exception):
    """The step waits for an operator (an approval gate): the run pauses here, and
    `drd runbook resume` continues it."""


@dataclass(frozen=True)
class ScopedImage:
    """An image of a tenant in the run's scope, as found on one site."""

    tenant: str
    selection: str
    ref: ImageRef


@dataclass
class StepOutput:
    lines: list[str] = field(default_factory=list)
    facts: dict[str, Any] = field(default_factory=dict)

    def say(self, line: str) -> None:
        self.lines.append(line)


class SiteAccess(Protocol):
    """How a step reaches the sites' Ceph clusters and daemons."""

    def cluster(self, site: str) -> ClusterHandle:
        """A librados handle on `site`'s cluster; StepFailed if this site cannot reach it."""

    def ceph_conf(self, site: str) -> str:
        """The ceph.conf path for `site`, for CLI tools (radosgw-admin, rbd)."""

    def peer_reachable(self, site: str) -> bool:
        """Whether `site`'s drd answers heartbeats (this site counts as reachable)."""

    def sites_of_kind(self, kind: SiteKind) -> list[str]:
        """The configured sites (this one and its peers) of that fixed kind, by name."""

    def restart_rbd_mirror(self, site: str) -> str:
        """Restart `site`'s rbd-mirror daemon and say what was restarted; blocking.
        StepFailed where this drd cannot (another site's, or no way configured)."""


@dataclass
class StepContext:
    """One step's view of its run."""

    run_id: int
    kind: RunbookKind
    target: RunTarget
    policies: Mapping[str, TenantPolicy]
    sites: SiteAccess
    # Facts earlier steps of this run recorded, by step name.
    facts: Mapping[str, Mapping[str, Any]]
    now: Callable[[], datetime]
    # Set by `drd runbook resume --approve`: who approved a paused gate.
    approved_by: str | None = None
    # Set by `--confirm-winner SITE`: the side an operator confirmed as split-brain winner.
    confirmed_winner: str | None = None
    # Sites this run demoted and then proved fully replayed elsewhere (the journal says
    # so): a split-brain on them may be resynced without an operator's confirmation.
    cleanly_demoted: frozenset[str] = frozenset()
    output: StepOutput = field(default_factory=StepOutput)

    def site(self, reference: str) -> str:
        return self.target.site(reference)

    def tenants(self) -> list[str]:
        return sorted(t for t in self.policies if self.target.covers(t))

    async def in_thread(self, call: Callable[[], T]) -> T:
        return await asyncio.to_thread(call)


class StepExecutor(Protocol):
    """One step type's behaviour."""

    async def plan(self, step: AnyStep, context: StepContext) -> list[str]:
        """What the step would do now, against the current state; changes nothing."""

    async def run(self, step: AnyStep, context: StepContext) -> None:
        """Do the step; write output and facts to `context.output`; raise StepFailed."""


class ImageThreads:
    """Worker threads of one step's own for its per-image librbd calls, `width` of them.

    Not the loop's default pool: it has min(32, CPUs + 4) workers, six on a 2-CPU host,
    shared with everything else the daemon runs in threads, which would cap a step at
    six images at once whatever its width. Leaving the block never waits for calls
    still running: a cancelled step (timeout, abort) must not block the event loop on
    librbd; they finish on their own.
    """

    def __init__(self, width: int) -> None:
        self._pool = ThreadPoolExecutor(max_workers=max(1, width),
                                        thread_name_prefix="runbook-step")

    def __enter__(self) -> "ImageThreads":
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    async def run(self, call: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._pool, call)


async def for_each(items: Sequence[T], work: Callable[[T], R],
                   width: int = IMAGE_PARALLEL) -> list[R | BaseException]:
    """`work(item)` for every item in worker threads of its own, `width` at once; each
    result or the exception it raised, in the order of `items`."""
    if not items:
        return []

    with ImageThreads(min(width, len(items))) as threads:
        async def one(item: T) -> R | BaseException:
            try:
                return await threads.run(lambda: work(item))
            except Exception as error:  # each image's failure is reported, not raised
                return error

        return list(await asyncio.gather(*(one(item) for item in items)))


def failures(items: Sequence[Any], results: Sequence[object]) -> list[str]:
    """`item: reason` for each failed result of `for_each`."""
    return [f"{item}: {result}" for item, result in zip(items, results, strict=True)
            if isinstance(result, BaseException)]


async def restart_rbd_mirror_of(context: StepContext, site: str, *, done_then: str,
                                not_done: str) -> None:
    """Restart `site`'s rbd-mirror (through its drd if it is another site), recorded in
    the step's facts; `done_then` follows what was done, `not_done` leads the warning
    when it could not be."""
    out = context.output
    try:
        done = await context.in_thread(lambda: context.sites.restart_rbd_mirror(site))
    except StepFailed as error:
        out.say(f"WARNING: {not_done}: {error}")
        return
    out.facts.setdefault("rbd_mirror_restarted", []).append(done)
    out.say(f"{done}{done_then}")
