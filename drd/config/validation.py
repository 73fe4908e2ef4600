"""Validate a parsed YAML document against a pydantic model, reporting every issue at once.

Field validation runs first. A model's cross-field rules run as a separate step, and their
issues get line numbers the same way. Each rule names the top-level sections it reads, so
when some sections are invalid the rules over the valid ones still run and every problem
is reported in one pass. Rules that need context beyond the document (a tenant policy
checked against the site config) are passed in as `extra_rules` and run once the model is
valid. Nothing here reads files.
"""

import types
from collections.abc import Callable, Sequence
from contextlib import suppress
from typing import (
    Annotated,
    Any,
    Protocol,
    TypeVar,
    Union,
    get_args,
    get_origin,
    runtime_checkable,
)

from pydantic import BaseModel, TypeAdapter, ValidationError
from pydantic.fields import FieldInfo
from pydantic_core import ErrorDetails

from drd.config.yaml_document import ConfigError, ConfigIssue, YamlDocument, YamlPath

ModelT = TypeVar("ModelT", bound=BaseModel)

_SHOWN_VALUE_CHARS = 40
_KEY_TAG = "[key]"
_DISCRIMINATOR = "type"  # the key that tells the members of a tagged union apart


class RuleViolationLike(Protocol):
    """What a cross-field check returns: where (a path in the document) and what is wrong."""

    @property
    def path(self) -> YamlPath: ...

    @property
    def message(self) -> str: ...


@runtime_checkable
class HasCrossFieldRules(Protocol):
    """A model with rules that span fields, checked after field validation.

    `validate` passes the names of the top-level fields that are valid. It may call this
    on a partial model built with `model_construct`, where only those fields are set; run
    only the rules whose fields are all in `valid_sections`.
    """

    def cross_field_issues(self, valid_sections: frozenset[str]
                           ) -> Sequence[RuleViolationLike]: ...


ExtraRule = Callable[[ModelT], Sequence[RuleViolationLike]]


def validate(model_class: type[ModelT], document: YamlDocument,
             extra_rules: Sequence[ExtraRule[ModelT]] = ()) -> ModelT:
    """Build `model_class` from `document`, or raise ConfigError carrying every issue.

    `extra_rules` run on the model once its fields are valid, next to its cross-field rules.
    """
    issues = list(document.issues)
    data = document.data
    if not isinstance(data, dict):
        issues.append(_not_a_mapping(model_class, document))
        raise ConfigError(issues)
    try:
        model = model_class.model_validate(data)
    except ValidationError as error:
        issues += [_field_issue(model_class, document, detail)
                   for detail in error.errors(include_url=False) if not _echo(detail)]
        issues += _partial_cross_field_issues(model_class, data, document)
        raise ConfigError(issues) from error
    issues += _cross_field_issues(model, frozenset(model_class.model_fields), document)
    issues += [_rule_issue(rule, document) for extra in extra_rules for rule in extra(model)]
    if issues:
        raise ConfigError(issues)
    return model


def _cross_field_issues(model: BaseModel, valid_sections: frozenset[str],
                        document: YamlDocument) -> list[ConfigIssue]:
    if not isinstance(model, HasCrossFieldRules):
        return []
    return [_rule_issue(rule, document) for rule in model.cross_field_issues(valid_sections)]


def _rule_issue(rule: RuleViolationLike, document: YamlDocument) -> ConfigIssue:
    return ConfigIssue(document.file, document.line_of(rule.path), rule.path, rule.message)


def _partial_cross_field_issues(model_class: type[BaseModel], data: dict[Any, Any],
                                document: YamlDocument) -> list[ConfigIssue]:
    """Run the rules over the sections that are valid, on a model holding only those."""
    if not issubclass(model_class, HasCrossFieldRules):
        return []
    sections = _valid_sections(model_class, data)
    partial = model_class.model_construct(**sections)
    return _cross_field_issues(partial, frozenset(sections), document)


def _valid_sections(model_class: type[BaseModel], data: dict[Any, Any]) -> dict[str, Any]:
    """Each top-level field that validates on its own (or is absent and has a default)."""
    sections: dict[str, Any] = {}
    for name, info in model_class.model_fields.items():
        if name not in data:
            if not info.is_required():
                sections[name] = info.get_default(call_default_factory=True)
            continue
        field_type: Any = Annotated[info.annotation, info]  # the field's type and constraints
        with suppress(ValidationError):
            sections[name] = TypeAdapter(field_type).validate_python(data[name])
    return sections


def _not_a_mapping(model_class: type[BaseModel], document: YamlDocument) -> ConfigIssue:
    keys = ", ".join(model_class.model_fields)
    if document.data is None:
        return ConfigIssue(document.file, 1, None,
                           f"the file is empty; expected a mapping with the keys {keys}")
    return ConfigIssue(document.file, document.line_of(()), (),
                       f"expected a mapping with the keys {keys}, "
                       f"got {_describe(document.data)}")


def _field_issue(model_class: type[BaseModel], document: YamlDocument,
                 detail: ErrorDetails) -> ConfigIssue:
    path = _document_path(document.data, detail["loc"])
    if detail["type"] == "union_tag_invalid":
        path = (*path, _DISCRIMINATOR)  # the line of the wrong tag, not of its mapping
    message = _message(model_class, path, detail, document.data)
    return ConfigIssue(document.file, document.line_of(path), path, message)


def _echo(detail: ErrorDetails) -> bool:
    """pydantic's "too short" for a list whose items failed: the items' errors say it all.

    A tuple that has items and fails on one of them is also reported as having fewer
    items "after validation"; people wrote the items, so that report only misleads.
    """
    value, ctx = detail["input"], detail.get("ctx") or {}
    return (detail["type"] == "too_short" and isinstance(value, list)
            and len(value) >= int(ctx.get("min_length", 0)))


def _document_path(data: Any, loc: tuple[str | int, ...]) -> YamlPath:
    """Turn pydantic's `loc` into a path in the document, dropping pydantic's type tags."""
    path: list[str | int] = []
    current: Any = data
    for part in loc:
        if isinstance(current, dict):
            if part not in current and current.get(_DISCRIMINATOR) == part:
                continue  # a tagged union's tag (a runbook step's type), not a key
            if part == _KEY_TAG and part not in current:
                break  # pydantic's tag for "the key before me is invalid"; that key is the path
            path.append(part if isinstance(part, str) else str(part))
            if part not in current:
                break  # a missing key: the path names it, the line is its parent's
            current = current[part]
        elif isinstance(current, list) and isinstance(part, int) and part < len(current):
            path.append(part)
            current = current[part]
        # Anything else is a union or validator tag such as "function-after[...]".
    return tuple(path)


def _message(model_class: type[BaseModel], path: YamlPath, detail: ErrorDetails,
             data: Any) -> str:
    kind = detail["type"]
    ctx: dict[str, Any] = dict(detail.get("ctx") or {})
    value = detail["input"]
    if kind == "missing":
        return "required key is missing"
    if kind == "extra_forbidden":
        allowed = _allowed_keys(model_class, path[:-1], data)
        listing = f"; allowed keys here: {', '.join(allowed)}" if allowed else ""
        return f"unknown key '{path[-1]}' is not allowed{listing}"
    if kind == "union_tag_invalid":
        return (f"unknown {ctx.get('discriminator', 'type').strip(chr(39))} "
                f"{ctx.get('tag')!r}; must be one of {ctx.get('expected_tags')}")
    if kind == "union_tag_not_found":
        return f"required key {ctx.get('discriminator', 'type')} is missing"
    if kind == "invalid_key":
        return "keys must be text"
    if kind in ("enum", "literal_error"):
        return f"must be one of {ctx.get('expected', '?')}, got {_describe(value)}"
    if kind == "value_error":
        # Our own validators word their messages for people; they never echo the value,
        # since a mistaken value may be a secret (a token where a token file belongs).
        return str(ctx.get("error", detail["msg"]))
    if kind in _EXPECTED:
        return f"must be {_EXPECTED[kind]}, got {_describe(value)}"
    if kind == "too_long":
        return (f"must have at most {ctx.get('max_length')} "
                f"{_items(ctx.get('max_length'))}, got {ctx.get('actual_length')}")
    if kind == "too_short":
        return (f"must have at least {ctx.get('min_length')} "
                f"{_items(ctx.get('min_length'))}, got {ctx.get('actual_length')}")
    if kind in _BOUNDS:
        return f"must be {_BOUNDS[kind]} {_bound(ctx)}, got {_describe(value)}"
    return _reword(detail["msg"])


_EXPECTED = {
    "model_type": "a mapping",
    "model_attributes_type": "a mapping",
    "dict_type": "a mapping",
    "list_type": "a list",
    "tuple_type": "a list",
    "string_type": "text",
    "int_type": "a whole number",
    "int_parsing": "a whole number",
    "int_from_float": "a whole number",
    "float_type": "a number",
    "float_parsing": "a number",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "path_type": "a file system path",
}

_BOUNDS = {
    "greater_than": "greater than",
    "greater_than_equal": "at least",
    "less_than": "less than",
    "less_than_equal": "at most",
}


def _bound(ctx: dict[str, Any]) -> str:
    values = [value for key, value in ctx.items() if key in ("gt", "ge", "lt", "le")]
    if not values:
        return "the limit"
    bound = values[0]
    # pydantic hands a float field's `le=60` back as 60.0; people wrote 60.
    return str(int(bound)) if isinstance(bound, float) and bound.is_integer() else str(bound)


def _items(count: object) -> str:
    return "item" if count == 1 else "items"


def _reword(message: str) -> str:
    for prefix, replacement in (("Value error, ", ""), ("Input should be ", "must be ")):
        if message.startswith(prefix):
            message = replacement + message[len(prefix):]
    return message


def _describe(value: object) -> str:
    """Say what the user wrote, briefly: `text 'prod'`, `a list`, `nothing (null)`."""
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return f"{str(value).lower()} (a boolean)"
    if isinstance(value, int | float):
        return f"the number {value}"
    if isinstance(value, str):
        shown = value if len(value) <= _SHOWN_VALUE_CHARS else value[:_SHOWN_VALUE_CHARS] + "..."
        return f"text {shown!r}"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return f"a {type(value).__name__}"


def _allowed_keys(model_class: type[BaseModel], path: YamlPath, data: Any) -> list[str]:
    """The field names of the model found at `path`, or [] if it is not a model.

    `data` is walked alongside, to pick the member of a tagged union its `type` names.
    """
    annotation: Any = model_class
    for part in path:
        annotation = _tagged_member(_unwrap_optional(annotation), data)
        data = data.get(part) if isinstance(data, dict) else (
            data[part] if isinstance(data, list) and isinstance(part, int)
            and part < len(data) else None)
        if isinstance(part, int):
            if get_origin(annotation) not in (list, tuple):
                return []
            annotation = get_args(annotation)[0]
        elif _is_model(annotation) and part in _keys(annotation):
            annotation = _keys(annotation)[part].annotation
        else:
            return []
    annotation = _tagged_member(_unwrap_optional(annotation), data)
    return list(_keys(annotation)) if _is_model(annotation) else []


def _tagged_member(annotation: Any, data: Any) -> Any:
    """The member of a tagged union (`Annotated[A | B, Field(discriminator=...)]`) that
    `data`'s tag names; any other annotation as it is."""
    if get_origin(annotation) is Annotated:
        annotation = get_args(annotation)[0]
    if get_origin(annotation) not in (Union, types.UnionType) or not isinstance(data, dict):
        return annotation
    tag = data.get(_DISCRIMINATOR)
    for member in get_args(annotation):
        field = _keys(member).get(_DISCRIMINATOR) if _is_model(member) else None
        if field is not None and tag in get_args(field.annotation):
            return member
    return annotation


def _keys(model_class: type[BaseModel]) -> dict[str, FieldInfo]:
    """A model's fields by the key a document writes: the alias where there is one
    (`from` is a Python keyword, so that field is `from_site` in code)."""
    return {info.alias or name: info for name, info in model_class.model_fields.items()}


def _unwrap_optional(annotation: Any) -> Any:
    if get_origin(annotation) in (Union, types.UnionType):
        members = [arg for arg in get_args(annotation) if arg is not type(None)]
        if len(members) == 1:
            return members[0]
    return annotation


def _is_model(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)

