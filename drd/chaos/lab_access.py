"""What a chaos run does to and asks of its lab: the operator's CLI and API on each site,
and the lab's processes by the PIDs lab.json records (never by name).
"""

import contextlib
import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import psutil

from drd.api.client import ApiClientError, ApiTarget, get_json
from drd.api.tokens import read_secret_file
from drd.lab.description import DaemonRole, LabDescription
from drd.lab.lab_store import load_description
from drd.lab.lab_up import lab_up

CLI_TIMEOUT = 120.0


class LabAccess:
    def __init__(self, lab_dir: Path) -> None:
        self.dir = lab_dir
        lab = self.lab
        if lab.operator_token_file is None:
            raise RuntimeError(f"the lab at {lab_dir} has no drd daemons")
        self._token = read_secret_file(lab.operator_token_file)

    @property
    def lab(self) -> LabDescription:
        """lab.json as it is now: restarts change the PIDs in it."""
        description = load_description(self.dir)
        if description is None:
            raise RuntimeError(f"no lab at {self.dir}")
        return description

    def status(self, site: str, timeout: float = 5.0) -> dict[str, Any] | None:
        """The site daemon's /v1/status, or None when it does not answer."""
        url = self.lab.sites[site].api_url
        assert url is not None
        try:
            answer: dict[str, Any] = get_json(ApiTarget(url, self._token), "/v1/status",
                                              timeout=timeout)
        except ApiClientError:
            return None
        return answer

    def leases(self, site: str) -> dict[str, dict[str, Any]]:
        status = self.status(site)
        return {} if status is None else {lease["group"]: lease for lease in status["leases"]}

    def cli(self, site: str, *args: str, timeout: float = CLI_TIMEOUT
            ) -> subprocess.CompletedProcess[str]:
        """`drd ARGS` as the lab's operator against `site`'s daemon; the token goes by
        environment, never on the command line."""
        config = self.lab.sites[site].drd_config
        return subprocess.run([sys.executable, "-m", "drd", *args, "--config", str(config)],
                              capture_output=True, text=True, timeout=timeout, check=False,
                              env={**os.environ, "DRD_TOKEN": self._token})

    def cli_json(self, site: str, *args: str) -> dict[str, Any]:
        done = self.cli(site, *args, "--json")
        if done.returncode != 0:
            raise RuntimeError(f"`drd {' '.join(args)}` on {site} failed: "
                               f"{done.stderr.strip() or done.stdout.strip()}")
        answer: dict[str, Any] = json.loads(done.stdout)
        return answer

    def pids(self, site: str, roles: set[DaemonRole] | None = None) -> list[int]:
        return [p.pid for p in self.lab.sites[site].processes
                if roles is None or p.role in roles]

    def signal(self, pids: list[int], sig: signal.Signals) -> None:
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)

    def kill(self, pids: list[int]) -> None:
        """SIGKILL each and wait until it is gone."""
        self.signal(pids, signal.SIGKILL)
        for pid in pids:
            with contextlib.suppress(psutil.NoSuchProcess):
                psutil.Process(pid).wait(30)

    def stop(self, pids: list[int]) -> None:
        """SIGTERM each and wait until it has exited (memstore writes itself out)."""
        self.signal(pids, signal.SIGTERM)
        for pid in pids:
            with contextlib.suppress(psutil.NoSuchProcess):
                psutil.Process(pid).wait(120)

    def revive(self) -> None:
        """Restart every lab process that is not running, as `drd lab up` does."""
        lab = self.lab
        lab_up(lab.dir, sorted(lab.sites), lab.block, report=lambda _: None)
