"""Values a backup policy hands to restic, each checked in restic's own terms: the
repository URL, the password file, `--read-data-subset`, `--limit-upload` and tags.

Pure. Messages never echo a repository URL or a password-file value: a tenant who
pasted a secret there must not find it again in an error, a log or the audit trail.
"""

import re
from datetime import timedelta
from pathlib import Path, PurePosixPath
from typing import Annotated
from urllib.parse import urlsplit

from pydantic import AfterValidator, BeforeValidator, Field, PlainSerializer, WithJsonSchema

MAX_REPOSITORY_LENGTH = 1024
# restic's backends, as `restic --repo` takes them; a bare absolute path is `local:`.
_BACKENDS = ("local", "sftp", "rest", "s3", "swift", "b2", "azure", "gs", "rclone")
_FORMS = ("/srv/restic/water, local:/srv/restic/water, s3:https://host/bucket/water, "
          "rest:https://host:8000/water, sftp:user@host:/srv/restic/water")
_UNPRINTABLE = re.compile(r"[\s\x00-\x1f\x7f]")
_NO_SECRETS = ("drd hands restic its credentials through the environment and the "
               "password file, never in the URL, which logs and process lists show")


def _repository(value: str) -> str:
    if not value:
        raise ValueError(f"is empty; give a restic repository such as {_FORMS}")
    if len(value) > MAX_REPOSITORY_LENGTH:
        raise ValueError(f"is longer than {MAX_REPOSITORY_LENGTH} characters")
    if _UNPRINTABLE.search(value):
        raise ValueError("must not contain spaces or control characters")
    if value.startswith("/"):
        return value
    backend, colon, rest = value.partition(":")
    if not colon or backend not in _BACKENDS:
        raise ValueError(f"is not a restic repository: give an absolute path or one of "
                         f"restic's backends ({', '.join(_BACKENDS)}), e.g. {_FORMS}")
    if not rest:
        raise ValueError(f"names the {backend} backend but no place in it")
    if backend == "local" and not rest.startswith("/"):
        raise ValueError("a local repository must be an absolute path (local:/...)")
    if backend == "sftp" and rest.startswith("//"):
        _check_url(backend, value)  # sftp://user@host:port//path
    elif backend in ("rest", "s3") or rest.startswith(("http://", "https://")):
        _check_url(backend, rest)
    if backend == "rclone":
        remote = rest.partition(":")[0]
        if not remote or "," in remote or "=" in remote:
            raise ValueError("give an rclone remote by name (rclone:remote:path); rclone's "
                             "inline form carries its credentials in the URL, and "
                             + _NO_SECRETS)
    return value


def _check_url(backend: str, rest: str) -> None:
    if backend == "rest" and not rest.startswith(("http://", "https://")):
        raise ValueError("a rest repository is rest:http://host:port/path or "
                         "rest:https://host:port/path")
    if not rest.startswith(("http://", "https://", "sftp://")):
        return  # s3:host/bucket, without a scheme
    parts = urlsplit(rest)
    if parts.password is not None:
        raise ValueError(f"carries a password (user:password@host); remove it: "
                         f"{_NO_SECRETS}")
    if parts.query or parts.fragment:
        raise ValueError(f"must not carry a query (?...) or fragment (#...): {_NO_SECRETS}")
    if not parts.hostname:
        raise ValueError(f"names no host in its {backend} URL")


RepositoryUrl = Annotated[str, AfterValidator(_repository), Field(
    json_schema_extra={"maxLength": MAX_REPOSITORY_LENGTH, "pattern": r"^[^\s]+$"})]


def _password_file(value: Path) -> Path:
    # Never echo the value: someone may have pasted the password itself here.
    if not value.is_absolute():
        raise ValueError("must be the absolute path of a file that holds the repository "
                         "password, never the password itself")
    if ".." in PurePosixPath(value).parts:
        raise ValueError("must not contain '..'; give the file's own absolute path")
    return value


PasswordFile = Annotated[Path, AfterValidator(_password_file),
                         Field(json_schema_extra={"pattern": "^/"})]


# --read-data-subset: a group `n/t`, a percentage `x%`, or a size with restic's
# binary units K, M, G, T.
_GROUP = re.compile(r"^([0-9]+)/([0-9]+)$")
_PERCENT = re.compile(r"^([0-9]+(?:\.[0-9]+)?)%$")
_SIZE = re.compile(r"^([0-9]+)([KMGTkmgt])$")
READ_DATA_SUBSET_PATTERN = r"^(?:[0-9]+/[0-9]+|[0-9]+(?:\.[0-9]+)?%|[0-9]+[KMGTkmgt])$"


def _read_data_subset(value: str) -> str:
    group, percent, size = _GROUP.match(value), _PERCENT.match(value), _SIZE.match(value)
    if group:
        number, total = int(group[1]), int(group[2])
        if not 1 <= number <= total:
            raise ValueError(f"'{value}' reads group {number} of {total}; n/t needs "
                             f"1 <= n <= t")
    elif percent:
        if not 0 < float(percent[1]) <= 100:
            raise ValueError(f"'{value}' must be more than 0% and at most 100%")
    elif size:
        if int(size[1]) == 0:
            raise ValueError(f"'{value}' reads nothing; give a size above zero")
    elif value.isdigit():
        raise ValueError(f"'{value}' has no unit: write {value}G for GiB, {value}M for "
                         f"MiB, {value}% or a group such as 1/{value}")
    else:
        raise ValueError(f"'{value}' is not a read-data subset: write a group n/t (1/7 "
                         f"reads one seventh), a percentage (5%) or a size (500M, 2G)")
    return value


ReadDataSubset = Annotated[str, AfterValidator(_read_data_subset),
                           Field(json_schema_extra={"pattern": READ_DATA_SUBSET_PATTERN})]


# Bandwidth as people write it, held as bytes a second.
_RATE_UNITS = {
    "KiB": 1024, "MiB": 1024**2, "GiB": 1024**3,
    "kB": 1000, "MB": 1000**2, "GB": 1000**3,
    "kbit": 125, "Mbit": 125_000, "Gbit": 125_000_000,
}
_RATE = re.compile(r"^([0-9]+(?:\.[0-9]+)?)\s*(" + "|".join(_RATE_UNITS) + r")/s$")
BANDWIDTH_PATTERN = _RATE.pattern
_KIB = 1024


def parse_bandwidth(value: object) -> int:
    """`"20MiB/s"` as 20971520 bytes a second; ValueError with a message for people."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        raise ValueError(f"the number {value} has no unit: write e.g. {value}MiB/s or "
                         f"{value}Mbit/s")
    if not isinstance(value, str):
        raise ValueError("must be a rate such as 20MiB/s")
    match = _RATE.match(value)
    if match is None:
        hint = ("; units are case-sensitive (MB is bytes, Mbit is bits)"
                if re.match(_RATE.pattern, value, re.IGNORECASE) else "")
        raise ValueError(f"'{value}' is not a rate: write a number and one of "
                         f"{', '.join(_RATE_UNITS)} per second, e.g. 20MiB/s or "
                         f"100Mbit/s{hint}")
    rate = int(float(match[1]) * _RATE_UNITS[match[2]])
    if rate < _KIB:
        raise ValueError(f"'{value}' is below 1KiB/s, the finest limit restic takes")
    return rate


def format_bandwidth(rate: int) -> str:
    """The shortest exact binary form: 20MiB/s, 1536KiB/s, or bytes a second."""
    for unit in ("GiB", "MiB", "KiB"):
        size = _RATE_UNITS[unit]
        if rate % size == 0:
            return f"{rate // size}{unit}/s"
    return f"{rate}B/s"


def limit_upload_kib(rate: int) -> int:
    """restic's `--limit-upload` value (KiB/s) for `rate` bytes a second, rounded down so
    the limit is never exceeded."""
    return max(1, rate // _KIB)


def keep_within_argument(duration: timedelta) -> str:
    """restic's `--keep-within` value for a whole number of hours: 36h is `1d12h`.

    restic's durations know y, m (months!), d and h, so drd never hands it minutes.
    """
    hours, rest = divmod(int(duration.total_seconds()), 3600)
    if rest or hours <= 0:
        raise ValueError(f"{duration} is not a positive whole number of hours")
    days, hours = divmod(hours, 24)
    return f"{days}d{hours}h" if days and hours else f"{days}d" if days else f"{hours}h"


Bandwidth = Annotated[int, BeforeValidator(parse_bandwidth),
                      PlainSerializer(format_bandwidth, return_type=str),
                      WithJsonSchema({"type": "string", "pattern": BANDWIDTH_PATTERN,
                                      "examples": ["20MiB/s", "100Mbit/s"]})]


# restic splits --tag on commas; drd writes its own tags with the `drd:` prefix, which
# retention groups on, so a tenant's tag never takes that form.
TAG_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:=+@-]{0,63}$"
RESERVED_TAG_PREFIX = "drd:"


def _tag(value: str) -> str:
    if "," in value:
        raise ValueError(f"'{value}' holds a comma, which restic reads as two tags; "
                         f"list them separately")
    if not re.fullmatch(TAG_PATTERN, value):
        raise ValueError(f"'{value}' is not a tag: start with a letter or digit, then up to "
                         f"63 of letters, digits and _ . : = + @ -")
    if value.startswith(RESERVED_TAG_PREFIX):
        raise ValueError(f"'{value}' starts with '{RESERVED_TAG_PREFIX}', which drd "
                         f"keeps for the tags it sets itself")
    return value


ResticTag = Annotated[str, AfterValidator(_tag),
                      Field(json_schema_extra={"pattern": TAG_PATTERN})]
