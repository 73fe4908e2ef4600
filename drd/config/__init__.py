"""Config loading: YAML to domain models, every error as `file:line: path: message`."""

from drd.config.validation import HasCrossFieldRules, RuleViolationLike, validate
from drd.config.yaml_document import (
    ConfigError,
    ConfigIssue,
    YamlDocument,
    YamlPath,
    format_path,
    parse_yaml,
    read_yaml_file,
)

__all__ = [
    "ConfigError",
    "ConfigIssue",
    "HasCrossFieldRules",
    "RuleViolationLike",
    "YamlDocument",
    "YamlPath",
    "format_path",
    "parse_yaml",
    "read_yaml_file",
    "validate",
]
