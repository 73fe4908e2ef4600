"""The environment of a restic child: inherited settings scrubbed, drd's own put in. Pure.

restic reads much of its configuration from RESTIC_* variables: the password
(RESTIC_PASSWORD, _COMMAND, _FILE), the repository (RESTIC_REPOSITORY, _FILE), and
defaults that silently filter what commands see (RESTIC_HOST is the default --host of
`snapshots`, `forget` and `stats`). An inherited one would make restic act on another
repository, with another key, or on a subset of snapshots, behind drd's back. So every
inherited RESTIC_* variable goes, and so do the cloud backends' credentials: a tenant's
repository is opened with that tenant's credentials, given explicitly, or none.

TZ is UTC in every child, so `--time` (written in UTC by restic_argv) and the
calendar buckets of --keep-hourly/daily/... mean the same on every site.
"""

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

# Backends' credential variables, by prefix (restic's docs, "Preparing a new repository").
_CREDENTIAL_PREFIXES = ("RESTIC_", "AWS_", "B2_", "AZURE_", "GOOGLE_", "OS_", "ST_", "RCLONE_")
# Names drd itself sets; a credential may not override them.
_OWN = ("RESTIC_PASSWORD_FILE", "RESTIC_CACHE_DIR", "TZ")


@dataclass(frozen=True)
class RepositoryCredentials:
    """Environment variables a repository's backend needs, e.g. AWS_ACCESS_KEY_ID and
    AWS_SECRET_ACCESS_KEY for s3. Their values never appear in a repr or a log."""

    variables: Mapping[str, str] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        for name in self.variables:
            if not name or "=" in name or "\0" in name:
                raise ValueError(f"{name!r} is not an environment variable name")
            if name.startswith("RESTIC_") or name in _OWN:
                raise ValueError(f"{name} is drd's to set (the password is read only from "
                                 f"the policy's password file), not a credential's")

    def __repr__(self) -> str:
        return f"RepositoryCredentials({', '.join(sorted(self.variables)) or 'none'})"

    def secrets(self) -> tuple[str, ...]:
        """The values, for redacting them from anything restic prints."""
        return tuple(value for value in self.variables.values() if value)


def restic_environment(inherited: Mapping[str, str], *, password_file: Path, cache_dir: Path,
                       credentials: RepositoryCredentials = RepositoryCredentials()
                       ) -> dict[str, str]:
    """The environment for one restic child, built from `inherited` (os.environ)."""
    if not password_file.is_absolute() or not cache_dir.is_absolute():
        raise ValueError("the password file and the cache dir must be absolute paths")
    env = {name: value for name, value in inherited.items() if not is_scrubbed(name)}
    env.update(credentials.variables)
    env["RESTIC_PASSWORD_FILE"] = str(password_file)
    env["RESTIC_CACHE_DIR"] = str(cache_dir)
    env["TZ"] = "UTC"
    return env


def is_scrubbed(name: str) -> bool:
    """Whether an inherited variable is dropped before restic runs."""
    return name.startswith(_CREDENTIAL_PREFIXES) or name == "TZ"
