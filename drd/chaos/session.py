"""A sequence of chaos runs on one lab: the lab is booted when none is given, each run's
result is written as JSON, and a run that leaves the lab unhealed makes the session
rebuild its own lab (never a lab it was given) before the next.
"""

from collections.abc import Callable
from pathlib import Path
from typing import Any

import rados
import rbd

from drd.chaos.experiment import Experiment
from drd.chaos.lab_access import LabAccess
from drd.chaos.runner import ChaosRun, RunSettings, save_result
from drd.chaos.setup import NotReady
from drd.lab.lab_down import lab_down
from drd.lab.lab_up import lab_up

SITES = ["a", "b", "c"]


def own_lab_dir(block: int) -> Path:
    return Path(f"/tmp/drd-chaos-{block}")  # noqa: S108 (one dir per block, made by us)


class ChaosSession:
    def __init__(self, lab_dir: Path | None, block: int, out: Path, *, failback: bool,
                 note: Callable[[str], None]) -> None:
        self._given = lab_dir
        self._block = block
        self._out = out
        self._settings = RunSettings(failback=failback)
        self._note = note
        self._own = lab_dir is None

    @property
    def lab_dir(self) -> Path:
        return self._given if self._given is not None else own_lab_dir(self._block)

    def run_all(self, plan: list[Experiment]) -> int:
        """Run each experiment in turn; how many runs broke an invariant or failed."""
        failed = 0
        for number, experiment in enumerate(plan, start=1):
            self._note(f"== {experiment.name} ({number}/{len(plan)}): {experiment.description}")
            result = self._run_one(experiment)
            path = save_result(result, self._out)
            for verdict in result.get("invariants", []):
                mark = "held" if verdict["held"] else "BROKEN"
                self._note(f"   {mark:6} {verdict['invariant']}: {verdict['detail']}")
            self._note(f"   result: {path}")
            if not result.get("passed"):
                failed += 1
                if self._own and self._left_unhealed(result):
                    self._rebuild()
        return failed

    def _run_one(self, experiment: Experiment) -> dict[str, Any]:
        try:
            if self._own:
                lab_up(self.lab_dir, SITES, self._block, report=self._lab_note)
            access = LabAccess(self.lab_dir)
            return ChaosRun(experiment, access, self._settings, self._note).run()
        except (NotReady, RuntimeError, OSError, rados.Error, rbd.Error) as error:
            self._note(f"   the run could not complete: {error}")
            return {"experiment": experiment.name, "passed": False, "error": str(error),
                    "invariants": []}

    @staticmethod
    def _left_unhealed(result: dict[str, Any]) -> bool:
        if "error" in result:
            return True
        failback = result.get("failback")
        converged = any(v["invariant"] == "converged" and v["held"]
                        for v in result["invariants"])
        took_over = "writable_after_seconds" in result.get("figures", {})
        return not converged or (took_over and (failback is None
                                                or failback.get("state") != "succeeded"))

    def _rebuild(self) -> None:
        self._note("   rebuilding the lab for the next run")
        self.remove_own_lab()

    def remove_own_lab(self) -> None:
        if self._own:
            lab_down(self.lab_dir, keep=False, report=self._lab_note)

    def _lab_note(self, line: str) -> None:
        self._note(f"   lab: {line}")
