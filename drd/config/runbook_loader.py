"""Read runbooks: the built-in ones shipped in the repository's `runbooks/`, and a site's
own in `paths.runbooks_dir`, where one of the same name replaces the built-in.

A runbook is validated as a whole before anything runs: its fields and step parameters
(with lines), its cross-field rules, and the sites it names against the site config.
A run keeps the text it started from, so `resume` continues the same steps even if the
file changed since.
"""

from dataclasses import dataclass
from pathlib import Path

from drd.config.validation import validate
from drd.config.yaml_document import ConfigError, ConfigIssue, parse_yaml
from drd.domain.rules import RuleViolation
from drd.domain.runbook import Runbook, site_issues

RUNBOOK_SUFFIX = ".yaml"


def builtin_runbooks_dir() -> Path:
    """`runbooks/` next to the drd package: the repository (an editable install)."""
    return Path(__file__).resolve().parents[2] / "runbooks"


@dataclass(frozen=True)
class LoadedRunbook:
    runbook: Runbook
    path: Path
    text: str
    builtin: bool


def parse_runbook(text: str, path: Path, known_sites: set[str]) -> Runbook:
    """Validate runbook text as if read from `path`; ConfigError with every issue."""
    return validate(Runbook, parse_yaml(text, str(path)),
                    extra_rules=[lambda book: site_issues(book, known_sites),
                                 lambda book: _name_issues(book, path)])


def load_runbooks(site_dir: Path | None, known_sites: set[str],
                  builtin_dir: Path | None = None
                  ) -> tuple[dict[str, LoadedRunbook], list[ConfigIssue]]:
    """Every valid runbook by name, and the issues of the invalid ones (which are left
    out: a broken file must not stop the others from running)."""
    books: dict[str, LoadedRunbook] = {}
    issues: list[ConfigIssue] = []
    for directory, builtin in ((builtin_dir or builtin_runbooks_dir(), True),
                               (site_dir, False)):
        if directory is None or not directory.is_dir():
            continue
        for path in sorted(directory.glob(f"*{RUNBOOK_SUFFIX}")):
            if path.name.startswith("."):
                continue
            try:
                text = path.read_text()
                book = parse_runbook(text, path, known_sites)
            except OSError as error:
                issues.append(ConfigIssue(str(path), None, None, f"cannot read: {error}"))
            except ConfigError as error:
                issues += error.issues
            else:
                books[book.name] = LoadedRunbook(book, path, text, builtin)
    return books, issues


def _name_issues(runbook: Runbook, path: Path) -> list[RuleViolation]:
    if path.suffix == RUNBOOK_SUFFIX and runbook.name != path.stem:
        return [RuleViolation(("name",), f"must equal the file name's stem {path.stem!r}, "
                                         f"so that a run names the file it came from")]
    return []
