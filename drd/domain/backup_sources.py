"""The sources of a tenant's backups: RBD images by pool, namespace and name globs, read
from production or from the remote site's mirrored copy, or files by path. Pure.

Rules between sources (unique names, no image in two sources) are in `source_rules`;
grants of pools and directories are checked in `drd.domain.policy_limits`.
"""

from collections.abc import Iterator
from enum import StrEnum
from fnmatch import fnmatchcase
from pathlib import Path, PurePosixPath
from typing import Annotated, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from drd.domain.policy_names import (
    ImageGlob,
    NamespaceName,
    PoolName,
    SelectionName,
    globs_overlap,
    image_spec,
    unique_items,
)
from drd.domain.rules import RuleViolation

_Item = TypeVar("_Item")


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SourceSite(StrEnum):
    """Which copy of an RBD source a backup reads."""

    PRODUCTION = "production"  # the images tenants write to, on their primary site
    REMOTE = "remote"  # the remote site's mirrored copy, keeping the load off the primary


def _source_path(value: Path) -> Path:
    if not value.is_absolute():
        raise ValueError(f"'{value}' must be an absolute path (starting with /)")
    if ".." in PurePosixPath(value).parts:
        raise ValueError(f"'{value}' must not contain '..'; give the directory itself")
    return value


def not_empty(items: tuple[_Item, ...]) -> tuple[_Item, ...]:
    # An after-validator, not min_length: pydantic counts only the valid items against
    # min_length, so a list of bad items would also be reported as empty.
    if not items:
        raise ValueError("must have at least 1 item, got 0")
    return items


# For editors: the JSON Schema still says a list needs an item.
AT_LEAST_ONE = Field(json_schema_extra={"minItems": 1})


def _unique_paths(paths: tuple[Path, ...]) -> tuple[Path, ...]:
    unique_items(tuple(str(path) for path in paths))
    return paths


SourcePath = Annotated[Path, AfterValidator(_source_path),
                      Field(json_schema_extra={"pattern": "^/"})]

RBD_SOURCE_EXAMPLE = {"name": "databases", "pool": "rbd", "namespace": "water",
                      "images": ["db-*"], "from": "remote"}
PATHS_SOURCE_EXAMPLE = {"name": "scada-config", "paths": ["/srv/water/scada"]}

class BackupSource(_Section):
    """RBD images by pool, namespace and name globs, or files by path: one or the other."""

    model_config = ConfigDict(serialize_by_alias=True, json_schema_extra={
        "oneOf": [{"required": ["pool", "images"]}, {"required": ["paths"]}]})

    name: SelectionName = Field(
        description="Name of this source, unique among the tenant's backup sources; it "
                    "names the restic snapshots, and is shown in status and errors.",
        examples=["databases"])
    pool: PoolName | None = Field(
        default=None, description="Ceph pool holding the images; it must be granted to "
                                  "the tenant. With images; not with paths.",
        examples=["rbd"])
    namespace: NamespaceName = Field(
        default="", description="RBD namespace inside the pool; '' (the default) is the "
                                "pool's default namespace.", examples=["water"])
    images: Annotated[tuple[ImageGlob, ...], AT_LEAST_ONE, AfterValidator(not_empty),
                      AfterValidator(unique_items)] | None = Field(
        default=None, validate_default=True,
        description="Image name globs (* any text, ? one character, [abc] one of a set); "
                    "each matching image is backed up as one restic snapshot of its "
                    "contents, from a fresh RBD snapshot. With pool.",
        examples=[["db-*", "pg-wal-?"]])
    paths: Annotated[tuple[SourcePath, ...], AT_LEAST_ONE, AfterValidator(not_empty),
                     AfterValidator(_unique_paths)] | None = Field(
        default=None, validate_default=True,
        description="Absolute paths of files or directories on the hosts of drd, backed "
                    "up as restic reads them; each must lie in a directory the site config "
                    "grants the tenant. Instead of pool and images.",
        examples=[["/srv/water/scada"]])
    from_site: SourceSite | None = Field(
        default=None, alias="from",
        description="production (the default): back up the images where tenants write "
                    "them; remote: back up the remote site's mirrored copy instead, keeping "
                    "the load off the primary (the images must be mirrored to the remote "
                    "site by protection.block). Only for images.",
        examples=["remote"])

    @field_validator("images")
    @classmethod
    def _images_with_pool(cls, images: tuple[str, ...] | None,
                          info: ValidationInfo) -> tuple[str, ...] | None:
        if "pool" not in info.data:
            return images  # the pool itself is invalid, and reported
        pool = info.data["pool"]
        if images is None and pool is not None:
            raise ValueError("required with pool: the globs of the images to back up")
        if images is not None and pool is None:
            raise ValueError("needs pool: the Ceph pool these images live in")
        return images

    @field_validator("paths")
    @classmethod
    def _paths_alone(cls, paths: tuple[Path, ...] | None,
                     info: ValidationInfo) -> tuple[Path, ...] | None:
        rbd = [key for key in ("pool", "images") if info.data.get(key) is not None]
        if paths is not None and (rbd or info.data.get("namespace")):
            raise ValueError("a source backs up RBD images (pool, namespace, images) or "
                             "files (paths), not both; make them two sources")
        return paths

    @field_validator("from_site")
    @classmethod
    def _from_only_for_images(cls, site: SourceSite | None,
                              info: ValidationInfo) -> SourceSite | None:
        if site is not None and info.data.get("paths") is not None:
            raise ValueError("applies only to RBD images: files are read where drd runs; "
                             "remove it")
        return site

    @model_validator(mode="after")
    def _backs_something_up(self) -> "BackupSource":
        if self.pool is None and self.paths is None:
            raise ValueError("backs up nothing: give pool and images for RBD images, or "
                             "paths for files")
        return self

    @property
    def site(self) -> SourceSite:
        """Which copy a backup reads: production unless the policy says remote."""
        return self.from_site or SourceSite.PRODUCTION

    @property
    def spec(self) -> str | None:
        """`pool/namespace` of an RBD source, as the rbd CLI writes it; None for paths."""
        return None if self.pool is None else image_spec(self.pool, self.namespace)

    def selects(self, image: str) -> bool:
        """Whether an image of this source's pool and namespace matches one of its globs."""
        return any(fnmatchcase(image, glob) for glob in self.images or ())


def source_rules(sources: tuple[BackupSource, ...]) -> Iterator[RuleViolation]:
    """Names unique, and no image in two sources, each at its path under backup.sources."""
    first_index: dict[str, int] = {}
    for index, source in enumerate(sources):
        first = first_index.setdefault(source.name, index)
        if first != index:
            yield RuleViolation(("backup", "sources", index, "name"),
                                f"source {source.name!r} is already defined at "
                                f"backup.sources[{first}]; names must be unique")
    for later, source in enumerate(sources):
        for glob_index, glob in enumerate(source.images or ()):
            earlier = next((i for i in range(later)
                            if sources[i].spec == source.spec
                            and any(globs_overlap(glob, other)
                                    for other in sources[i].images or ())), None)
            if earlier is not None:
                yield RuleViolation(
                    ("backup", "sources", later, "images", glob_index),
                    f"{glob!r} selects images in {source.spec} that "
                    f"{sources[earlier].name!r} (backup.sources[{earlier}]) also selects; "
                    f"back each image up in one source only")
