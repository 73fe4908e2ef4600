"""The relay restic reads an image through: every byte passed on, and a digest only of
an export that finished."""

import hashlib
import subprocess
import sys
from pathlib import Path


def relay(tmp_path: Path, *command: str) -> tuple[int, bytes, Path]:
    digest = tmp_path / "image.sha256"
    done = subprocess.run([sys.executable, "-m", "drd.backup.export_stream",
                           "--digest-file", str(digest), "--", *command],
                          capture_output=True, timeout=60, check=False)
    return done.returncode, done.stdout, digest


def test_every_byte_is_relayed_and_its_sha256_noted(tmp_path: Path) -> None:
    source = tmp_path / "image"
    source.write_bytes(bytes(range(256)) * 40_000)  # 10 MB: several relay chunks
    code, out, digest = relay(tmp_path, "cat", str(source))
    assert code == 0
    assert out == source.read_bytes()
    assert digest.read_text().strip() == hashlib.sha256(source.read_bytes()).hexdigest()


def test_a_failed_export_leaves_no_digest_and_passes_its_status_on(tmp_path: Path) -> None:
    code, _, digest = relay(tmp_path, "sh", "-c", "head -c 100000 /dev/zero; exit 7")
    assert code == 7
    assert not digest.exists()
    assert not list(tmp_path.iterdir())  # no partial digest either
