"""drd refuses a restic older than 0.17 with the reason."""

import pytest

from drd.backup.restic import ResticUnavailable, require_version
from drd.backup.restic_messages import parse_version


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
