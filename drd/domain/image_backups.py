"""Names and decisions for backing RBD images up with restic and restoring them. Pure.

A restic snapshot of an image holds one file, `/<image_file_name(ref)>`. restic groups
a source's history by host and paths (restic_argv.DEFAULT_GROUP_BY), so that name must
stay the same for an image across runs, sites and drd versions: it depends on the pool,
namespace and image name alone, never on which site's copy was read.

The names drd gives its own RBD snapshots and images carry a fixed prefix and a random
token, so a sweep can tell what drd left behind from anything a tenant made.
"""

import re
from dataclasses import dataclass
from urllib.parse import quote, unquote

from drd.domain.replication_plan import ImageRef

FILE_SUFFIX = ".raw"
# restic refuses a stdin filename holding '/', so the spec's '/' is written as '+'.
# Ceph pool and namespace names, as policies allow them, cannot hold '+'; every part is
# escaped anyway, so two images never share a file name whatever their names hold.
_SEPARATOR = "+"
_SAFE = "-_.~!$&'()*,;=:@[]"  # kept as they are; only '+', '%', '/' and blanks are escaped

BACKUP_SNAPSHOT_PREFIX = "drd-backup-"
SCRATCH_IMAGE_PREFIX = "drd-restore-test-"
STAGING_IMAGE_PREFIX = "drd-restore-"
REPLACED_IMAGE_PREFIX = "drd-replaced-"
TOKEN_HEX_DIGITS = 16
_TOKEN = re.compile(rf"^[0-9a-f]{{{TOKEN_HEX_DIGITS}}}$")
_BACKUP_SNAPSHOT = re.compile(rf"^{BACKUP_SNAPSHOT_PREFIX}[0-9a-f]{{{TOKEN_HEX_DIGITS}}}$")


def image_file_name(ref: ImageRef) -> str:
    """The file an image's backups are stored as in restic: `rbd+water+db-1.raw`.

    It is the image's spec as `rbd` writes it, namespace omitted when empty (so the
    default namespace gives `rbd+db-1.raw`, never `rbd++db-1.raw` or `rbd//db-1`).
    """
    if not ref.pool or not ref.name:
        raise ValueError(f"an image needs a pool and a name, got {ref!r}")
    parts = [ref.pool, *([ref.namespace] if ref.namespace else []), ref.name]
    return _SEPARATOR.join(quote(part, safe=_SAFE) for part in parts) + FILE_SUFFIX


def image_of_file_name(file_name: str) -> ImageRef:
    """The image `image_file_name` named `file_name`; ValueError for any other name."""
    if not file_name.endswith(FILE_SUFFIX):
        raise ValueError(f"{file_name!r} is not an RBD image backup (no {FILE_SUFFIX})")
    parts = [unquote(part) for part in file_name[:-len(FILE_SUFFIX)].split(_SEPARATOR)]
    if len(parts) == 2:
        parts.insert(1, "")
    # The round trip refuses what drd never writes: `rbd++db.raw`, unneeded escapes, ...
    if len(parts) != 3 or not parts[0] or not parts[2] or \
            image_file_name(ref := ImageRef(*parts)) != file_name:
        raise ValueError(f"{file_name!r} is not an RBD image backup name drd writes "
                         f"(pool+[namespace+]image{FILE_SUFFIX})")
    return ref


def snapshot_spec(ref: ImageRef, snapshot: str) -> str:
    """`pool/namespace/image@snapshot` as `rbd export` takes it."""
    return f"{ref}@{snapshot}"


def _token(token: str) -> str:
    if not _TOKEN.match(token):
        raise ValueError(f"a token is {TOKEN_HEX_DIGITS} lowercase hex digits, got {token!r}")
    return token


def backup_snapshot_name(token: str) -> str:
    """The RBD snapshot one backup reads from: `drd-backup-<token>`."""
    return BACKUP_SNAPSHOT_PREFIX + _token(token)


def is_backup_snapshot(name: str) -> bool:
    """Whether an RBD snapshot is one a backup took (and so may be swept). A tenant's own
    snapshot called `drd-backup-monday` is not."""
    return bool(_BACKUP_SNAPSHOT.match(name))


def scratch_image(pool: str, namespace: str, token: str) -> ImageRef:
    """The image a restore test restores into: `drd-restore-test-<token>`."""
    return ImageRef(pool, namespace, SCRATCH_IMAGE_PREFIX + _token(token))


def staging_image(target: ImageRef, token: str) -> ImageRef:
    """Where a restore imports before the image takes the target's name."""
    return ImageRef(target.pool, target.namespace, STAGING_IMAGE_PREFIX + _token(token))


def replaced_image(target: ImageRef, token: str) -> ImageRef:
    """The name an existing image has between a forced restore's two renames."""
    return ImageRef(target.pool, target.namespace, REPLACED_IMAGE_PREFIX + _token(token))


@dataclass(frozen=True)
class ExistingImage:
    """What a restore needs to know of an image that already has the target's name."""

    size: int
    mirroring: bool  # RBD mirroring is enabled on it (or being disabled)
    watchers: int  # clients that have it open for writing (a VM, rbd-nbd, ...)
    snapshots: tuple[str, ...]  # all of them: user, mirror and trash namespaces


def restore_refusal(target: ImageRef, existing: ExistingImage | None,
                    force: bool) -> str | None:
    """Why a restore into `target` must not go ahead, or None if it may.

    Replacing an image deletes it, so a forced restore still refuses whatever deleting
    would break: mirroring (the peers' copies go with it), a client that has it open,
    and snapshots (they would be deleted with it).
    """
    if existing is None:
        return None
    if not force:
        return (f"image {target} already exists; restore into a new image, or give "
                f"--force to replace it")
    if existing.mirroring:
        return (f"image {target} is mirrored to other sites; replacing it would break its "
                f"replication, even with --force: restore into a new image, or disable "
                f"its mirroring first")
    if existing.watchers:
        return (f"image {target} is in use: {existing.watchers} client(s) have it open; "
                f"stop them, or restore into a new image")
    if existing.snapshots:
        names = ", ".join(existing.snapshots[:5]) + (", ..." if len(existing.snapshots) > 5
                                                     else "")
        return (f"image {target} has {len(existing.snapshots)} snapshot(s) ({names}) that "
                f"replacing it would delete; remove them first, or restore into a new image")
    return None
