"""Tenant backups through the daemon on the real lab: a policy's images are backed up
when it is applied and on `drd backup run`, listed, restored byte for byte by
`drd restore`, and counted in the metrics; an existing target is refused."""

import json
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import pytest
import rbd

from drd.api.tokens import read_secret_file
from drd.lab.description import LabDescription
from drd.lab.drd_files import restic_password_file
from tests.integration.rbd_images import MiB, image_sha256, pool, random_bytes
from tests.integration.test_daemon import get_metrics
from tests.integration.test_replication import apply_policy, drd, eventually

pytestmark = pytest.mark.timeout(600)

RUN = uuid.uuid4().hex[:6]
IMAGE = f"ledger-{RUN}"
POLICY = """\
tenant: water
backup:
  sources:
    - name: ledgers
      pool: rbd
      namespace: water
      images: ["ledger-{run}"]
  schedule: {{cron: "0 3 * * *"}}
  password_file: {password}
  retention: {{keep_last: 3}}
  prune: {{schedule: {{cron: "0 4 * * 0"}}}}
  tags: [billing]
"""


@pytest.fixture(scope="module")
def ledger(lab: LabDescription) -> str:
    """A 24 MiB image of random data in water's namespace on production; its sha256."""
    with pool(lab.sites["a"], "water") as ioctx:
        rbd.RBD().create(ioctx, IMAGE, 24 * MiB, old_format=False)
        with rbd.Image(ioctx, IMAGE) as image:
            image.write(random_bytes(7, 24 * MiB), 0)
    return image_sha256(lab.sites["a"], IMAGE, "water")


def backups(lab: LabDescription) -> dict[str, Any]:
    shown = drd(lab, "backup", "list", "water", "--json")
    assert shown.returncode == 0, shown.stderr
    listed: dict[str, Any] = json.loads(shown.stdout)
    return listed


def test_a_policys_images_are_backed_up_listed_and_restored_byte_for_byte(
        lab: LabDescription, tmp_path: Path, ledger: str) -> None:
    policy = POLICY.format(run=RUN, password=restic_password_file(lab.dir, "water"))
    applied = apply_policy(lab, tmp_path, "water", policy)
    assert applied.returncode == 0, applied.stderr
    ran = drd(lab, "backup", "run", "water", "ledgers")
    assert ran.returncode == 0, ran.stderr + ran.stdout
    assert f"ledgers:rbd/water/{IMAGE}: succeeded" in ran.stdout
    file_name = f"/rbd+water+{IMAGE}.raw"

    def listed() -> list[dict[str, Any]]:
        return [s for s in backups(lab)["snapshots"] if file_name in s["paths"]]

    eventually(lambda: len(listed()) >= 1, 60, "the backup is in the repository")
    snapshot = listed()[-1]
    assert snapshot["size"] == 24 * MiB
    assert {"drd:tenant=water", "drd:source=ledgers", "billing"} <= set(snapshot["tags"])

    target = f"rbd/water/{IMAGE}-restored"
    restored = drd(lab, "restore", "water", f"rbd/water/{IMAGE}", "--to", target, "--json")
    assert restored.returncode == 0, restored.stderr
    done = json.loads(restored.stdout)
    assert done["sha256"] == ledger
    assert image_sha256(lab.sites["a"], f"{IMAGE}-restored", "water") == ledger
    again = drd(lab, "restore", "water", f"rbd/water/{IMAGE}", "--to", target)
    assert again.returncode == 1
    assert "exists" in again.stderr, again.stderr

    view = json.loads(drd(lab, "backup", "list", "water", "--json").stdout)
    assert view["repository"].endswith("/water")
    metrics = get_metrics(lab.sites["a"].api_url or "")
    assert 'drd_backup_runs_total{result="succeeded",tenant="water"}' in metrics
    usage = api_get(lab, "/v1/tenants/water/usage")
    assert usage["backups"]["succeeded"] >= 1
    assert usage["backups"]["bytes_added"] >= 24 * MiB  # random data: all of it is new


def api_get(lab: LabDescription, path: str) -> Any:
    assert lab.operator_token_file is not None
    request = urllib.request.Request(  # noqa: S310 (the lab's own http:// URL)
        (lab.sites["a"].api_url or "") + path,
        headers={"Authorization": f"Bearer {read_secret_file(lab.operator_token_file)}"})
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
        return json.load(response)
