"""Steps that involve people and their tools: an approval gate, a notification, and a
hook script.

A hook runs without a shell, with its output captured into the journal; the step's
timeout kills it (and its process group). Notifications go to the log always, and to a
webhook when the runbook names one; a webhook that fails is logged and the run goes on,
since telling people must never be what stops a failover.
"""

import asyncio
import os

import aiohttp
import structlog

from drd.domain.runbook_steps import AnyStep, ApprovalStep, HookStep, NotifyStep
from drd.runbooks.hooks import run_hook
from drd.runbooks.step_api import StepContext, StepExecutor, StepFailed, StepPaused

log = structlog.get_logger()

OUTPUT_LINES = 50  # of a hook's output kept in the journal (the last ones)

WEBHOOK_TIMEOUT_SECONDS = 5.0


class Approval:
    async def plan(self, step: AnyStep, context: StepContext) -> list[str]:
        assert isinstance(step, ApprovalStep)
        return [f"pause until an operator approves: {step.params.message}"]

    async def run(self, step: AnyStep, context: StepContext) -> None:
        assert isinstance(step, ApprovalStep)
        if context.approved_by is None:
            raise StepPaused(f"waiting for approval: {step.params.message} (approve with "
                             f"drd runbook resume {context.run_id} --approve)")
        context.output.say(f"approved by {context.approved_by}: {step.params.message}")
        context.output.facts["approved_by"] = context.approved_by


class Notify:
    async def plan(self, step: AnyStep, context: StepContext) -> list[str]:
        assert isinstance(step, NotifyStep)
        where = f" and POST to {step.params.webhook}" if step.params.webhook else ""
        return [f"log{where}: {step.params.message}"]

    async def run(self, step: AnyStep, context: StepContext) -> None:
        assert isinstance(step, NotifyStep)
        event = {"run": context.run_id, "kind": context.kind.value,
                 "source": context.target.source, "target": context.target.target,
                 "message": step.params.message, "at": context.now().isoformat()}
        log.warning("runbook notification", **event)
        context.output.say(f"logged: {step.params.message}")
        if step.params.webhook is None:
            return
        timeout = aiohttp.ClientTimeout(total=WEBHOOK_TIMEOUT_SECONDS)
        try:
            async with aiohttp.ClientSession(timeout=timeout) as session, \
                    session.post(str(step.params.webhook), json=event) as response:
                context.output.say(f"webhook answered {response.status}")
        except (aiohttp.ClientError, TimeoutError) as error:
            log.error("runbook webhook failed", run=context.run_id, error=str(error))
            context.output.say(f"webhook failed: {error!r}; the run goes on")


class Hook:
    async def plan(self, step: AnyStep, context: StepContext) -> list[str]:
        assert isinstance(step, HookStep)
        return [f"run {' '.join(step.params.command)} (timeout "
                f"{step.timeout.total_seconds():.0f} s)"]

    async def run(self, step: AnyStep, context: StepContext) -> None:
        assert isinstance(step, HookStep)
        env = {**os.environ, "DRD_RUN_ID": str(context.run_id),
               "DRD_SOURCE_SITE": context.target.source,
               "DRD_TARGET_SITE": context.target.target,
               "DRD_TENANTS": ",".join(context.tenants())}
        deadline = asyncio.get_running_loop().time() + step.timeout.total_seconds()
        try:
            result = await run_hook(step.params.command, env, deadline, keep=OUTPUT_LINES)
        except OSError as error:
            raise StepFailed(f"cannot start {step.params.command[0]}: {error}") from error
        context.output.lines.extend(result.lines)
        context.output.facts["exit_status"] = result.status
        if result.status is None:
            raise StepFailed(f"{step.params.command[0]} did not finish within "
                             f"{step.timeout.total_seconds():.0f} s and was killed")
        if result.status != 0:
            raise StepFailed(f"{step.params.command[0]} exited with status "
                             f"{result.status}")


def operator_executors() -> dict[str, StepExecutor]:
    return {"approval": Approval(), "notify": Notify(), "exec_hook": Hook()}
