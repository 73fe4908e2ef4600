"""YAML with line numbers, and a validator that reports every issue with its line."""

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from textwrap import dedent

import pytest
from pydantic import BaseModel, ConfigDict, Field

from drd.config import ConfigError, ConfigIssue, format_path, read_yaml_file, validate


def write(tmp_path: Path, text: str, name: str = "doc.yaml") -> Path:
    path = tmp_path / name
    path.write_text(dedent(text))
    return path


def rendered(error: ConfigError) -> list[str]:
    return [issue.render() for issue in error.issues]


# A small schema of its own: the validator is shared by site configs, policies and runbooks.
class Window(BaseModel):
    model_config = ConfigDict(extra="forbid")
    start_hour: int = Field(ge=0, le=23, strict=True)
    end_hour: int = Field(ge=0, le=23, strict=True)


@dataclass(frozen=True)
class Violation:
    path: tuple[str | int, ...]
    message: str


class Plan(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    windows: list[Window]
    retries: int = Field(default=1, strict=True)

    def cross_field_issues(self, valid_sections: frozenset[str]) -> Sequence[Violation]:
        if "windows" not in valid_sections:
            return []
        return [Violation(("windows", index, "end_hour"), "must be after start_hour")
                for index, window in enumerate(self.windows)
                if window.end_hour <= window.start_hour]


def test_every_key_and_item_keeps_its_line(tmp_path: Path) -> None:
    document = read_yaml_file(write(tmp_path, """\
        # a comment first
        name: nightly
        windows:
          - start_hour: 1
            end_hour: 3

          - start_hour: 22
            end_hour: 23
        """))
    assert document.lines[("name",)] == 2
    assert document.lines[("windows",)] == 3
    assert document.lines[("windows", 0)] == 4
    assert document.lines[("windows", 0, "end_hour")] == 5
    assert document.lines[("windows", 1)] == 7
    assert document.line_of(("windows", 1, "no_such_key")) == 7
    assert document.issues == ()


def test_duplicate_keys_name_both_lines_and_fail_validation(tmp_path: Path) -> None:
    path = write(tmp_path, """\
        name: nightly
        windows: []
        name: weekly
        """)
    with pytest.raises(ConfigError) as caught:
        validate(Plan, read_yaml_file(path))
    assert rendered(caught.value) == [
        f"{path}:3: name: duplicate key 'name' (first at line 1, again at line 3); "
        f"remove one of them",
    ]


def test_a_syntax_error_is_one_issue_at_the_parser_line(tmp_path: Path) -> None:
    path = write(tmp_path, """\
        name: nightly
        windows:
          - start_hour: 1
           end_hour: 3
        """)
    with pytest.raises(ConfigError) as caught:
        read_yaml_file(path)
    [issue] = caught.value.issues
    assert (issue.file, issue.line, issue.path) == (str(path), 4, None)
    assert issue.render().startswith(f"{path}:4: YAML syntax error: ")


def test_field_errors_are_all_reported_with_lines_and_readable_messages(
        tmp_path: Path) -> None:
    path = write(tmp_path, """\
        windows:
          - start_hour: 25
            end_hour: "3"
            until: dawn
        retries: many
        """)
    with pytest.raises(ConfigError) as caught:
        validate(Plan, read_yaml_file(path))
    assert rendered(caught.value) == [
        f"{path}:1: name: required key is missing",
        f"{path}:2: windows[0].start_hour: must be at most 23, got the number 25",
        f"{path}:3: windows[0].end_hour: must be a whole number, got text '3'",
        f"{path}:4: windows[0].until: unknown key 'until' is not allowed; "
        f"allowed keys here: start_hour, end_hour",
        f"{path}:5: retries: must be a whole number, got text 'many'",
    ]


def test_cross_field_rules_get_lines_and_run_beside_field_errors(tmp_path: Path) -> None:
    path = write(tmp_path, """\
        name: nightly
        windows:
          - start_hour: 4
            end_hour: 2
        retries: 1.5
        """)
    with pytest.raises(ConfigError) as caught:
        validate(Plan, read_yaml_file(path))
    assert rendered(caught.value) == [
        f"{path}:4: windows[0].end_hour: must be after start_hour",
        f"{path}:5: retries: must be a whole number, got the number 1.5",
    ]


def test_a_valid_document_becomes_the_model(tmp_path: Path) -> None:
    path = write(tmp_path, """\
        name: nightly
        windows: [{start_hour: 1, end_hour: 3}]
        """)
    plan = validate(Plan, read_yaml_file(path))
    assert plan == Plan(name="nightly", windows=[Window(start_hour=1, end_hour=3)])


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ("", 1, "the file is empty; expected a mapping with the keys name, windows, retries"),
        ("# only a comment\n", 1, "the file is empty; expected a mapping with the keys "
                                  "name, windows, retries"),
        ("\n- name: nightly\n", 2, "(top level): expected a mapping with the keys name, "
                                   "windows, retries, got a list"),
    ],
)
def test_an_empty_or_non_mapping_file_is_one_clear_issue(
        tmp_path: Path, text: str, line: int, message: str) -> None:
    path = tmp_path / "doc.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        validate(Plan, read_yaml_file(path))
    assert rendered(caught.value) == [f"{path}:{line}: {message}"]


def test_an_unreadable_file_is_one_issue_without_a_line(tmp_path: Path) -> None:
    missing = tmp_path / "absent.yaml"
    with pytest.raises(ConfigError) as caught:
        read_yaml_file(missing)
    assert rendered(caught.value) == [f"{missing}: cannot read the file: "
                                      f"No such file or directory"]


def test_a_file_that_is_not_utf8_names_its_line(tmp_path: Path) -> None:
    path = tmp_path / "doc.yaml"
    path.write_bytes(b"name: nightly\nwindows: [caf\xe9]\n")
    with pytest.raises(ConfigError) as caught:
        read_yaml_file(path)
    assert rendered(caught.value) == [
        f"{path}:2: the file is not UTF-8 text (byte 0xe9 cannot be decoded)"]


def test_unsafe_tags_are_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "name: !!python/object/apply:os.system [true]\n")
    with pytest.raises(ConfigError) as caught:
        read_yaml_file(path)
    [issue] = caught.value.issues
    assert issue.line == 1
    assert "could not determine a constructor" in issue.message


def test_paths_render_as_people_write_them() -> None:
    assert format_path(("peers", 0, "url")) == "peers[0].url"
    assert format_path(()) == "(top level)"
    assert str(ConfigIssue("f.yaml", 3, ("a", 1), "bad")) == "f.yaml:3: a[1]: bad"
