"""What a rule that spans fields reports: where in the document, and what is wrong.

Shared by every config model (site config, tenant policy, and the platform rules that
check a policy against the site config), so the validator can put a line on each one.
"""

from dataclasses import dataclass

# A place in a document: mapping keys and sequence indexes, e.g. ("peers", 0, "url").
FieldPath = tuple[str | int, ...]


@dataclass(frozen=True)
class RuleViolation:
    """A broken cross-field rule: the path it is reported at, and a sentence for people."""

    path: FieldPath
    message: str
