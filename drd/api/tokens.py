"""Bearer tokens: issued once, stored only as SHA-256 hashes in a 0600 file.

Tokens are 256-bit random strings, so a plain SHA-256 is the right hash: there is
nothing for a slow password hash to protect against, and checks stay fast.
"""

import hashlib
import hmac
import secrets
import stat
from dataclasses import dataclass
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from drd.domain.access import Principal, parse_role
from drd.private_files import write_private

TOKEN_PREFIX = "drd_"  # noqa: S105  (a marker that makes leaked tokens greppable)


class TokenFileError(Exception):
    """The tokens file is missing, unsafe or malformed; the message says which."""


class TokenEntry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, max_length=64, description="who holds the token")
    role: str = Field(description="operator, peer, or tenant:<name>")
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$", description="hex SHA-256 of the token")

    @field_validator("role")
    @classmethod
    def _known_role(cls, value: str) -> str:
        parse_role(value)
        return value


class TokensFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tokens: list[TokenEntry] = Field(default_factory=list)


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class TokenRegistry:
    entries: tuple[TokenEntry, ...]

    def authenticate(self, token: str) -> Principal | None:
        """The principal holding `token`, or None. Compares in constant time."""
        digest = hash_token(token)
        found: TokenEntry | None = None
        for entry in self.entries:
            if hmac.compare_digest(entry.sha256, digest):
                found = entry
        if found is None:
            return None
        kind, tenant = parse_role(found.role)
        return Principal(name=found.name, kind=kind, tenant=tenant)


def load_tokens(path: Path) -> TokenRegistry:
    """Read the tokens file, refusing one that others could read."""
    try:
        mode = path.stat().st_mode
        text = path.read_text()
    except OSError as error:
        raise TokenFileError(f"cannot read tokens file {path}: {error.strerror}") from error
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise TokenFileError(
            f"tokens file {path} is mode {stat.S_IMODE(mode):04o}; it must be 0600")
    try:
        parsed = TokensFile.model_validate(yaml.safe_load(text) or {})
    except (yaml.YAMLError, ValidationError) as error:
        raise TokenFileError(f"tokens file {path} is malformed: {error}") from error
    names = [entry.name for entry in parsed.tokens]
    if len(names) != len(set(names)):
        raise TokenFileError(f"tokens file {path} names a token holder twice")
    return TokenRegistry(tuple(parsed.tokens))


def add_token(path: Path, name: str, role: str) -> str:
    """Issue a token for `name` with `role`, store its hash, and return it (shown once)."""
    parse_role(role)
    existing = load_tokens(path).entries if path.exists() else ()
    if any(entry.name == name for entry in existing):
        raise TokenFileError(f"tokens file {path} already has a token for {name}")
    token = new_token()
    entries = [*existing, TokenEntry(name=name, role=role, sha256=hash_token(token))]
    write_tokens(path, entries)
    return token


def write_tokens(path: Path, entries: list[TokenEntry]) -> None:
    """Replace the tokens file atomically, 0600, keeping its owner (the daemon's user)."""
    document = {"tokens": [entry.model_dump() for entry in entries]}
    write_private(path, yaml.safe_dump(document, sort_keys=False), keep_owner=True)


def read_secret_file(path: Path) -> str:
    """A token kept in a file (for the CLI and peer calls): its first line, stripped."""
    try:
        text = path.read_text()
    except OSError as error:
        raise TokenFileError(f"cannot read token file {path}: {error.strerror}") from error
    token = text.strip().splitlines()[0].strip() if text.strip() else ""
    if not token:
        raise TokenFileError(f"token file {path} is empty")
    return token
