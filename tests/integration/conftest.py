"""A session-scoped lab of real Ceph clusters, booted once through the `drd` CLI.

Set DRD_TEST_LAB_DIR to reuse a lab that is already up (it is then left running);
otherwise a fresh lab is booted on address block DRD_TEST_LAB_BLOCK (default 77,
so a test run never collides with the demo's lab on block 0) and torn down after.
"""

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from drd.lab.description import LabDescription
from drd.lab.lab_store import load_description
from drd.lab.processes import is_running
from tests.integration.descendants import note_test_start
from tests.integration.lab_diagnosis import diagnose, last_words

DRD = str(Path(sys.executable).with_name("drd"))
TEST_BLOCK = os.environ.get("DRD_TEST_LAB_BLOCK", "77")


def run_drd(*args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run([DRD, *args], capture_output=True, text=True, timeout=timeout,
                          check=False)


# The shared lab as the first failure left it, and as the run ended; printed last.
_FAILED_RUN_DIAGNOSIS: dict[str, list[str]] = {}


def _diagnose_if_failed(session: pytest.Session, lab_dir: Path) -> None:
    described = load_description(lab_dir)
    if session.testsfailed and described is not None:
        _FAILED_RUN_DIAGNOSIS["when the run ended"] = diagnose(described)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]
                              ) -> Iterator[None]:
    report = yield
    shared = getattr(item, "funcargs", {}).get("lab")
    if (isinstance(report, pytest.TestReport) and report.failed and _FAILED_RUN_DIAGNOSIS == {}
            and isinstance(shared, LabDescription)):
        now = load_description(shared.dir)
        if now is not None:
            _FAILED_RUN_DIAGNOSIS[f"at the first failure ({item.nodeid}, {report.when})"] = \
                diagnose(now)
    return report


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    for moment, lines in _FAILED_RUN_DIAGNOSIS.items():
        terminalreporter.section(f"the shared lab {moment}")
        for line in lines:
            terminalreporter.write_line(line)


@pytest.fixture(scope="session")
def lab(tmp_path_factory: pytest.TempPathFactory,
        request: pytest.FixtureRequest) -> Iterator[LabDescription]:
    reuse = os.environ.get("DRD_TEST_LAB_DIR")
    if reuse:
        description = load_description(Path(reuse))
        assert description is not None, f"DRD_TEST_LAB_DIR={reuse} holds no lab"
        yield description
        _diagnose_if_failed(request.session, description.dir)
        return
    lab_dir = tmp_path_factory.mktemp("lab") / "lab"
    result = run_drd("lab", "up", "--dir", str(lab_dir), "--block", TEST_BLOCK)
    assert result.returncode == 0, f"lab up failed:\n{result.stderr}"
    description = load_description(lab_dir)
    assert description is not None
    try:
        yield description
    finally:
        _diagnose_if_failed(request.session, lab_dir)
        down = run_drd("lab", "down", "--dir", str(lab_dir))
        survivors = [p.entity for _, p in description.all_processes() if is_running(p)]
        assert down.returncode == 0, down.stderr
        assert not survivors, f"lab processes survived lab down: {survivors}"


@pytest.fixture(autouse=True)
def _note_test_start() -> None:
    """For tests.integration.descendants: what the current test itself started."""
    note_test_start()


def _revive_crashed_daemons(request: pytest.FixtureRequest) -> None:
    """A test of the shared lab starts with all its daemons running, as systemd's
    Restart=on-failure keeps them on a real site: rbd-mirror 16.2.15 dies now and then in
    the lab (an assert in ~ImageWatcher while bootstrapping a split-brained journal copy,
    seen in a full run), and every later test would inherit the dead replayer. Whoever
    died is named on stderr; `lab up` restarts it."""
    if "lab" not in request.fixturenames:
        return
    shared: LabDescription = request.getfixturevalue("lab")
    now = load_description(shared.dir)
    if now is None:
        return
    dead = [p for _, p in now.all_processes() if not is_running(p)]
    if dead:
        print(f"\nrestarting lab daemons that died: {', '.join(p.entity for p in dead)}",
              file=sys.stderr)
        for record in dead:
            print("\n".join(f"  {record.entity}: {line}" for line in last_words(record)),
                  file=sys.stderr)
        revived = run_drd("lab", "up", "--dir", str(shared.dir), "--block", str(shared.block),
                          timeout=300)
        assert revived.returncode == 0, revived.stderr


@pytest.fixture(scope="module", autouse=True)
def _revive_before_module(request: pytest.FixtureRequest) -> None:
    """Before a module's own fixtures set up images on the shared lab."""
    _revive_crashed_daemons(request)


@pytest.fixture(autouse=True)
def _revive_before_test(request: pytest.FixtureRequest) -> None:
    _revive_crashed_daemons(request)
