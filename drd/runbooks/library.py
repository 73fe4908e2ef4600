"""The step library: every step type this daemon can run, by the name runbooks use."""

from drd.runbooks.drill_steps import drill_executors
from drd.runbooks.operator_steps import operator_executors
from drd.runbooks.rbd_library import rbd_executors
from drd.runbooks.rgw_steps import rgw_executors
from drd.runbooks.step_api import StepExecutor


def step_executors() -> dict[str, StepExecutor]:
    """One executor for every step type a runbook may name (tests hold them equal)."""
    return {**operator_executors(), **rbd_executors(), **drill_executors(),
            **rgw_executors()}
