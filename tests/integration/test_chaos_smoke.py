"""The chaos smoke set, end to end through the CLI: `drd chaos run --smoke` boots a lab of
its own, runs each smoke experiment against the daemons with a recording write load,
writes a JSON result per run, and removes the lab. Every invariant must hold, and the
results must show the fault really bit (writes acknowledged throughout; for the cut link,
b judged a lost and the witness refused b)."""

import json
import os
from pathlib import Path

import pytest

from tests.integration.conftest import run_drd

pytestmark = pytest.mark.integration
BLOCK = os.environ.get("DRD_TEST_CHAOS_BLOCK", "76")


def test_the_smoke_experiments_hold_every_invariant(tmp_path: Path) -> None:
    out = tmp_path / "results"
    done = run_drd("chaos", "run", "--smoke", "--block", BLOCK, "--out", str(out),
                   timeout=900)
    assert done.returncode == 0, done.stderr[-4000:]
    results = {json.loads(path.read_text())["experiment"]: json.loads(path.read_text())
               for path in out.glob("*.json")}
    assert set(results) == {"production-drd-killed", "production-cut-from-same-city"}
    for name, result in results.items():
        assert result["passed"], (name, result["invariants"])
        assert {v["invariant"] for v in result["invariants"]} == {
            "one primary at a time", "no acknowledged write lost", "takeover as designed",
            "converged"}
        figures = result["figures"]
        # 20 writes a second from before the fault until after it healed.
        assert figures["acknowledged_writes"] > 20 * 25, (name, figures)
        assert figures["lost_writes"] == 0
    assert not Path(f"/tmp/drd-chaos-{BLOCK}").exists()  # the lab it booted is gone
