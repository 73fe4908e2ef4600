"""YAML parsed with the line of every key and item kept, so errors can point at the file.

`parse_yaml` is pure; `read_yaml_file` is the only function here that touches the disk.
"""

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

# A place in a document: mapping keys and sequence indexes, e.g. ("peers", 0, "url").
YamlPath = tuple[str | int, ...]

_MERGE_TAG = "tag:yaml.org,2002:merge"


def format_path(path: YamlPath) -> str:
    """Render a path the way people write it: `peers[0].url`; the root is `(top level)`."""
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else part
    return text or "(top level)"


@dataclass(frozen=True)
class ConfigIssue:
    """One thing wrong with a config file, rendered as `file:line: path: message`.

    `line` is None when no line applies (an unreadable file); `path` is None when the
    issue is not about any key (a YAML syntax error).
    """

    file: str
    line: int | None
    path: YamlPath | None
    message: str

    def render(self) -> str:
        where = self.file if self.line is None else f"{self.file}:{self.line}"
        if self.path is None:
            return f"{where}: {self.message}"
        return f"{where}: {format_path(self.path)}: {self.message}"

    def __str__(self) -> str:
        return self.render()


class ConfigError(Exception):
    """A config file cannot be used; `issues` holds every problem found, in file order."""

    def __init__(self, issues: list[ConfigIssue]) -> None:
        ordered = sorted(issues, key=_issue_order)
        super().__init__("\n".join(issue.render() for issue in ordered))
        self.issues: tuple[ConfigIssue, ...] = tuple(ordered)


def _issue_order(issue: ConfigIssue) -> tuple[str, int, str]:
    path = "" if issue.path is None else format_path(issue.path)
    return issue.file, issue.line or 0, path


@dataclass(frozen=True)
class YamlDocument:
    """Parsed YAML data, the 1-based line of each path in it, and non-fatal parse issues.

    `issues` holds problems that leave the data usable but must still fail validation,
    such as duplicate keys (YAML would silently keep only the last one).
    """

    file: str
    data: Any
    lines: Mapping[YamlPath, int]
    issues: tuple[ConfigIssue, ...] = field(default=())

    def line_of(self, path: YamlPath) -> int:
        """The line of `path`, or of its nearest ancestor present in the file."""
        for end in range(len(path), -1, -1):
            line = self.lines.get(path[:end])
            if line is not None:
                return line
        return 1


def parse_yaml(text: str, file: str) -> YamlDocument:
    """Parse one YAML document with the safe loader; raise ConfigError on a syntax error.

    `file` is only used to label issues. An empty document gives `data=None`.
    """
    loader = yaml.SafeLoader(text)
    try:
        root = loader.get_single_node()
        if root is None:
            return YamlDocument(file=file, data=None, lines=MappingProxyType({}))
        indexer = _LineIndexer(loader, file)
        indexer.walk(root, (), _line(root), frozenset())
        data = loader.construct_document(root)
    except yaml.YAMLError as error:
        raise ConfigError([_syntax_issue(file, error)]) from error
    finally:
        loader.dispose()
    return YamlDocument(file=file, data=data, lines=MappingProxyType(indexer.lines),
                        issues=tuple(indexer.issues))


def read_yaml_file(path: Path) -> YamlDocument:
    """Read and parse a UTF-8 YAML file; an unreadable file is one ConfigError issue."""
    file = str(path)
    try:
        raw = path.read_bytes()
    except OSError as error:
        reason = error.strerror or str(error)
        raise ConfigError([ConfigIssue(file, None, None, f"cannot read the file: {reason}")]
                          ) from error
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        line = raw.count(b"\n", 0, error.start) + 1
        message = (f"the file is not UTF-8 text (byte 0x{raw[error.start]:02x} "
                   f"cannot be decoded)")
        raise ConfigError([ConfigIssue(file, line, None, message)]) from error
    return parse_yaml(text, file)


def _line(node: Node) -> int:
    return int(node.start_mark.line) + 1


class _LineIndexer:
    """Walks a composed node tree, recording each path's line and noting duplicate keys."""

    def __init__(self, loader: yaml.SafeLoader, file: str) -> None:
        self.loader = loader
        self.file = file
        self.lines: dict[YamlPath, int] = {}
        self.issues: list[ConfigIssue] = []

    def walk(self, node: Node, path: YamlPath, line: int, ancestors: frozenset[int]) -> None:
        self.lines.setdefault(path, line)
        if id(node) in ancestors:  # an alias that refers to its own ancestor
            return
        inside = ancestors | {id(node)}
        if isinstance(node, SequenceNode):
            for index, item in enumerate(node.value):
                self.walk(item, (*path, index), _line(item), inside)
        elif isinstance(node, MappingNode):
            self._walk_mapping(node, path, inside)

    def _walk_mapping(self, node: MappingNode, path: YamlPath,
                      inside: frozenset[int]) -> None:
        first_seen: dict[object, int] = {}
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE_TAG:
                continue  # `<<: *anchor` keys live where the anchor is; keep the parent's line
            if not isinstance(key_node, ScalarNode):
                continue  # unhashable; construct_document rejects it with its line
            key_line = _line(key_node)
            key = self.loader.construct_object(key_node)
            if key in first_seen:
                self.issues.append(ConfigIssue(
                    self.file, key_line, (*path, _path_part(key)),
                    f"duplicate key '{key}' (first at line {first_seen[key]}, again at line "
                    f"{key_line}); remove one of them",
                ))
                continue
            first_seen[key] = key_line
            self.walk(value_node, (*path, _path_part(key)), key_line, inside)


def _path_part(key: object) -> str | int:
    # Mapping keys are strings in every drd schema; a number or boolean key is shown as
    # written so the issue names it, and pydantic reports it as not allowed.
    return key if isinstance(key, str) else str(key)


def _syntax_issue(file: str, error: yaml.YAMLError) -> ConfigIssue:
    if isinstance(error, yaml.MarkedYAMLError) and error.problem_mark is not None:
        parts = [part for part in (error.context, error.problem) if part]
        message = ", ".join(parts) if parts else "cannot be parsed"
        return ConfigIssue(file, error.problem_mark.line + 1, None,
                           f"YAML syntax error: {message}")
    return ConfigIssue(file, None, None, f"YAML syntax error: {error}")
