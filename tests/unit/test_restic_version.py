"""drd refuses a restic older than 0.17 with the reason; the adapter fits its Protocol."""

from pathlib import Path

import pytest

from drd.backup.restic import Restic, ResticRepository, ResticUnavailable, require_version
from drd.backup.restic_messages import parse_version
from drd.backup.restic_port import ResticRepositoryPort


@pytest.mark.parametrize("version", [(0, 17, 0), (0, 18, 0), (1, 0, 0)])
def test_new_enough(version: tuple[int, int, int]) -> None:
    assert require_version(version) == version


def test_debian_12s_restic_is_refused() -> None:
    found = parse_version("restic 0.14.0 compiled with go1.19.8 on linux/amd64")
    with pytest.raises(ResticUnavailable) as error:
        require_version(found)
    assert str(error.value) == ("restic 0.14.0 is too old: drd needs 0.17 or newer, for "
                                "--stdin-from-command, --retry-lock and exit codes 10, 11 "
                                "and 12")


def test_the_adapter_is_what_the_services_may_ask_for() -> None:
    # Checked by mypy: Restic matches the Protocol the backup service and scheduler use.
    port: ResticRepositoryPort = Restic(ResticRepository("/srv/restic/water",
                                                         Path("/etc/drd/water.password"),
                                                         Path("/var/cache/drd/restic")))
    assert port is not None
