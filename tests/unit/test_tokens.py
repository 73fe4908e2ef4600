"""Bearer tokens: issued once, kept only as hashes, in a file only its owner reads."""

from pathlib import Path

import pytest

from drd.api.tokens import (
    TokenFileError,
    add_token,
    hash_token,
    load_tokens,
    read_secret_file,
)
from drd.domain.access import RoleKind


def test_an_issued_token_authenticates_and_is_never_stored(tmp_path: Path) -> None:
    tokens_file = tmp_path / "tokens.yaml"
    token = add_token(tokens_file, "ops-alice", "operator")
    tenant_token = add_token(tokens_file, "water-ci", "tenant:water")

    assert token not in tokens_file.read_text()
    assert hash_token(token) in tokens_file.read_text()
    assert tokens_file.stat().st_mode & 0o777 == 0o600
    registry = load_tokens(tokens_file)
    alice = registry.authenticate(token)
    assert alice is not None and alice.name == "ops-alice" and alice.kind is RoleKind.OPERATOR
    water = registry.authenticate(tenant_token)
    assert water is not None and water.tenant == "water"
    assert registry.authenticate(token + "x") is None


def test_a_tokens_file_others_can_read_is_refused(tmp_path: Path) -> None:
    tokens_file = tmp_path / "tokens.yaml"
    add_token(tokens_file, "ops-alice", "operator")
    tokens_file.chmod(0o640)
    with pytest.raises(TokenFileError, match="mode 0640; it must be 0600"):
        load_tokens(tokens_file)


def test_a_holder_cannot_get_two_tokens_and_roles_are_checked(tmp_path: Path) -> None:
    tokens_file = tmp_path / "tokens.yaml"
    add_token(tokens_file, "ops-alice", "operator")
    with pytest.raises(TokenFileError, match="already has a token for ops-alice"):
        add_token(tokens_file, "ops-alice", "operator")
    with pytest.raises(ValueError, match="is not one of"):
        add_token(tokens_file, "bob", "root")
    assert len(load_tokens(tokens_file).entries) == 1


def test_a_malformed_tokens_file_names_itself(tmp_path: Path) -> None:
    tokens_file = tmp_path / "tokens.yaml"
    tokens_file.write_text("tokens:\n  - name: x\n    role: operator\n    sha256: nothex\n")
    tokens_file.chmod(0o600)
    with pytest.raises(TokenFileError, match=f"{tokens_file} is malformed"):
        load_tokens(tokens_file)


def test_secret_files_yield_their_first_line(tmp_path: Path) -> None:
    secret = tmp_path / "peer.token"
    secret.write_text("drd_abc\n")
    assert read_secret_file(secret) == "drd_abc"
    secret.write_text("\n")
    with pytest.raises(TokenFileError, match="is empty"):
        read_secret_file(secret)
