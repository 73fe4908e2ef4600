"""The environment of a restic child: inherited restic settings and credentials gone."""

from pathlib import Path

import pytest

from drd.backup.restic_env import RepositoryCredentials, is_scrubbed, restic_environment

PASSWORD_FILE = Path("/etc/drd/restic/water.password")
CACHE = Path("/var/cache/drd/restic")
INHERITED = {
    "PATH": "/usr/bin:/bin", "HOME": "/var/lib/drd", "LANG": "C.UTF-8",
    "CEPH_CONF": "/etc/ceph/ceph.conf", "TZ": "Asia/Shanghai",
    "RESTIC_PASSWORD": "inherited-password", "RESTIC_PASSWORD_COMMAND": "pass show x",
    "RESTIC_PASSWORD_FILE": "/root/other.password", "RESTIC_REPOSITORY": "/srv/other",
    "RESTIC_REPOSITORY_FILE": "/root/repo", "RESTIC_HOST": "someone-else",
    "RESTIC_FROM_PASSWORD": "copy-source", "RESTIC_CACHE_DIR": "/tmp/x",
    "AWS_ACCESS_KEY_ID": "AKIA-OTHER-TENANT", "AWS_SECRET_ACCESS_KEY": "other-secret",
    "B2_ACCOUNT_KEY": "b2", "AZURE_ACCOUNT_KEY": "az", "GOOGLE_APPLICATION_CREDENTIALS": "g",
    "OS_PASSWORD": "swift", "ST_KEY": "st", "RCLONE_CONFIG_PASS": "rc",
}


def test_inherited_restic_settings_and_credentials_are_gone() -> None:
    env = restic_environment(INHERITED, password_file=PASSWORD_FILE, cache_dir=CACHE)
    assert env == {"PATH": "/usr/bin:/bin", "HOME": "/var/lib/drd", "LANG": "C.UTF-8",
                   "CEPH_CONF": "/etc/ceph/ceph.conf",
                   "RESTIC_PASSWORD_FILE": str(PASSWORD_FILE),
                   "RESTIC_CACHE_DIR": str(CACHE), "TZ": "UTC"}


def test_credentials_are_passed_explicitly_and_hidden_from_repr() -> None:
    keys = RepositoryCredentials({"AWS_ACCESS_KEY_ID": "AKIAWATER",
                                  "AWS_SECRET_ACCESS_KEY": "water-secret"})
    env = restic_environment(INHERITED, password_file=PASSWORD_FILE, cache_dir=CACHE,
                             credentials=keys)
    assert env["AWS_ACCESS_KEY_ID"] == "AKIAWATER"
    assert env["AWS_SECRET_ACCESS_KEY"] == "water-secret"  # noqa: S105  (a test value)
    assert "B2_ACCOUNT_KEY" not in env
    assert "water-secret" not in repr(keys) and "water-secret" not in str(keys)
    assert repr(keys) == "RepositoryCredentials(AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY)"
    assert keys.secrets() == ("AKIAWATER", "water-secret")


@pytest.mark.parametrize("name", ["RESTIC_PASSWORD", "RESTIC_PASSWORD_FILE",
                                  "RESTIC_REPOSITORY", "RESTIC_CACHE_DIR", "TZ", "A=B", ""])
def test_a_credential_may_not_set_the_password_or_drds_own_variables(name: str) -> None:
    with pytest.raises(ValueError):
        RepositoryCredentials({name: "x"})


def test_paths_must_be_absolute() -> None:
    with pytest.raises(ValueError, match="absolute"):
        restic_environment({}, password_file=Path("water.password"), cache_dir=CACHE)


@pytest.mark.parametrize(("name", "scrubbed"), [
    ("RESTIC_PASSWORD", True), ("RESTIC_ANYTHING_NEW", True), ("AWS_PROFILE", True),
    ("TZ", True), ("PATH", False), ("CEPH_ARGS", False), ("RESTICX", False)])
def test_what_is_scrubbed(name: str, scrubbed: bool) -> None:
    assert is_scrubbed(name) is scrubbed
