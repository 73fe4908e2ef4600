"""Names and globs in tenant policies: tenants, selections, Ceph pools, RBD namespaces and
image globs. Shared by every part of a policy (protection, backup) and by the site
config's grants. Pure.
"""

import re
from collections.abc import Callable
from fnmatch import fnmatchcase
from typing import Annotated

from pydantic import AfterValidator, Field

TENANT_NAME_PATTERN = r"^[a-z][a-z0-9-]{0,62}$"
SELECTION_NAME_PATTERN = TENANT_NAME_PATTERN
# Ceph's own pools (.mgr, .rgw.root) start with a dot; no tenant selects those.
POOL_NAME_PATTERN = r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,126}$"
NAMESPACE_PATTERN = r"^(?:[A-Za-z0-9_][A-Za-z0-9_.-]{0,126})?$"
# RBD image names cannot hold '/' (pool/namespace separator) or '@' (snapshot separator).
IMAGE_GLOB_PATTERN = r"^[^/@\s]{1,255}$"
_GLOB_CHARS = re.compile(r"[*?\[]")


def _matching(pattern: str, what: str, rule: str) -> Callable[[str], str]:
    def check(value: str) -> str:
        if not re.fullmatch(pattern, value):
            raise ValueError(f"{value!r} is not {what}: {rule}")
        return value
    return check


_NAME_RULE = "use a lowercase letter followed by up to 62 lowercase letters, digits or '-'"
_CEPH_NAME_RULE = ("use letters, digits, '_', '.' or '-', not starting with '.' or '-', "
                   "at most 127 characters")

TenantName = Annotated[str, AfterValidator(_matching(TENANT_NAME_PATTERN, "a tenant name",
                                                     _NAME_RULE)),
                       Field(json_schema_extra={"pattern": TENANT_NAME_PATTERN})]
SelectionName = Annotated[str, AfterValidator(_matching(SELECTION_NAME_PATTERN,
                                                        "a selection name", _NAME_RULE)),
                          Field(json_schema_extra={"pattern": SELECTION_NAME_PATTERN})]
PoolName = Annotated[str, AfterValidator(_matching(POOL_NAME_PATTERN, "a pool name",
                                                   _CEPH_NAME_RULE)),
                     Field(json_schema_extra={"pattern": POOL_NAME_PATTERN})]
NamespaceName = Annotated[str, AfterValidator(_matching(
    NAMESPACE_PATTERN, "an RBD namespace name", _CEPH_NAME_RULE + "; '' is the pool's "
    "default namespace")), Field(json_schema_extra={"pattern": NAMESPACE_PATTERN})]
ImageGlob = Annotated[str, AfterValidator(_matching(
    IMAGE_GLOB_PATTERN, "an image name glob", "use an image name with optional *, ? and "
    "[...] wildcards, without '/', '@' or spaces")),
                      Field(json_schema_extra={"pattern": IMAGE_GLOB_PATTERN})]


def image_spec(pool: str, namespace: str) -> str:
    """`rbd/water`, or `rbd` for the pool's default namespace, as the rbd CLI writes it."""
    return f"{pool}/{namespace}" if namespace else pool


def is_glob(pattern: str) -> bool:
    """Whether `pattern` holds a wildcard (*, ? or [...])."""
    return bool(_GLOB_CHARS.search(pattern))


def globs_overlap(glob: str, other: str) -> bool:
    """Same glob, or a plain name that the other glob matches."""
    if glob == other:
        return True
    if not is_glob(glob) and fnmatchcase(glob, other):
        return True
    return not is_glob(other) and fnmatchcase(other, glob)


def glob_covers(outer: str, inner: str) -> bool:
    """Whether every name `inner` matches is sure to match `outer` too.

    Exact for a plain `inner`, `outer == inner`, `*`, and a prefix glob such as `db-*`
    over anything that starts with its prefix; any other pair counts as not covered.
    """
    if outer in (inner, "*"):
        return True
    if not is_glob(inner):
        return fnmatchcase(inner, outer)
    prefix = outer[:-1]
    return outer.endswith("*") and not is_glob(prefix) and inner.startswith(prefix)


def unique_items(items: tuple[str, ...]) -> tuple[str, ...]:
    """The items, or ValueError naming the first one listed twice."""
    seen: set[str] = set()
    for item in items:
        if item in seen:
            raise ValueError(f"{item!r} is listed twice; list each one once")
        seen.add(item)
    return items
