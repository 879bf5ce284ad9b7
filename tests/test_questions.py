"""The two question files agree, and both engines reject bad answers the same way.

Validation lives in hooks/pre_gen_project.py (cookiecutter) and in copier.yml's
`validator:` entries (copier validates before writing; its tasks run after).
These tests are what keeps the two in step.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from harness import TEMPLATE_DIR
from harness.render import (
    choices,
    cookiecutter_cli,
    copier_cli,
    default_answers,
    load_hook,
    questions,
    render_cookiecutter,
    render_copier,
)

COPIER = yaml.safe_load((TEMPLATE_DIR / "copier.yml").read_text())
COPIER_QUESTIONS = {
    name: spec
    for name, spec in COPIER.items()
    if not name.startswith("_") and name != "cookiecutter"
}


RULES = load_hook("pre_gen_project")


def test_both_engines_ask_the_same_questions_in_the_same_order() -> None:
    assert list(COPIER_QUESTIONS) == list(questions())


def test_defaults_and_choices_are_the_same_in_both_engines() -> None:
    for name, cookiecutter_value in questions().items():
        spec = COPIER_QUESTIONS[name]
        if isinstance(cookiecutter_value, list):
            assert spec["choices"] == cookiecutter_value, name
            assert spec["default"] == cookiecutter_value[0], name
        else:
            # Derived defaults refer to other answers: cookiecutter prefixes them.
            assert str(spec["default"]) == cookiecutter_value.replace("cookiecutter.", ""), name


def test_every_question_has_help_and_a_cookiecutter_prompt() -> None:
    prompts = __import__("json").loads((TEMPLATE_DIR / "cookiecutter.json").read_text())[
        "__prompts__"
    ]
    for name in questions():
        assert COPIER_QUESTIONS[name].get("help"), f"copier question {name} has no help"
        assert prompts.get(name), f"cookiecutter question {name} has no prompt"


def test_copier_maps_every_answer_into_the_cookiecutter_namespace() -> None:
    mapping = COPIER["cookiecutter"]
    assert mapping["when"] is False and mapping["type"] == "json"
    mapped = re.findall(r'"(\w+)":', mapping["default"])
    assert mapped == list(questions())


def test_copier_and_the_hook_reserve_the_same_crate_names() -> None:
    validator = COPIER_QUESTIONS["slug"]["validator"]
    listed = re.search(r"in \[([^\]]*)\]", validator)
    assert listed, "slug validator lists no reserved names"
    in_copier = set(re.findall(r"'([a-z0-9_]+)'", listed.group(1)))
    assert in_copier == RULES.RESERVED_CRATE_NAMES | RULES.DEPENDENCY_CRATE_NAMES


def test_no_slug_may_take_the_name_of_a_crate_in_the_lock() -> None:
    """Both locks (one per `database` answer): a slug named like any dependency breaks."""
    locks = sorted((TEMPLATE_DIR / "{{cookiecutter.slug}}").glob("*Cargo.lock*"))
    assert len(locks) == 2, locks
    in_lock = {
        name.replace("-", "_")
        for lock in locks
        for name in re.findall(r'^name = "([^"{]+)"$', lock.read_text(), re.M)
    }
    assert {"sqlx", "actix_web"} <= in_lock
    assert in_lock == RULES.DEPENDENCY_CRATE_NAMES, (
        "hooks/pre_gen_project.py and copier.yml must list exactly the crates in both locks"
    )


def test_copier_and_the_hook_use_the_same_patterns() -> None:
    assert RULES.SLUG_PATTERN.pattern in COPIER_QUESTIONS["slug"]["validator"]
    assert RULES.RUST_VERSION_PATTERN.pattern in COPIER_QUESTIONS["rust_version"]["validator"]
    assert f"< {RULES.MIN_RUST_MINOR} " in COPIER_QUESTIONS["rust_version"]["validator"]


@pytest.mark.parametrize(
    "slug", ["hello-service", "a1", "svc-2-go", "x" * 40, "self-service", "testing"]
)
def test_good_slugs_pass_the_rules(slug: str) -> None:
    assert RULES.check_slug(slug) is None


@pytest.mark.parametrize(
    "slug",
    [
        "",
        "a",
        "x" * 41,
        "Hello",
        "hello_service",
        "1st",
        "-x",
        "x-",
        "a--b",
        "a.b",
        "ü-svc",
        "self",
        "test",
        "std",
        "fn",
        "proc-macro",
        "con",
        "build",
    ],
)
def test_bad_slugs_fail_the_rules(slug: str) -> None:
    assert RULES.check_slug(slug)


@pytest.mark.parametrize("port", ["1024", "5000", "65535"])
def test_good_ports_pass_the_rules(port: str) -> None:
    assert RULES.check_port(port) is None


@pytest.mark.parametrize("port", ["", "80", "1023", "65536", "5000x", "-5000", "50.0", " 5000"])
def test_bad_ports_fail_the_rules(port: str) -> None:
    assert RULES.check_port(port)


@pytest.mark.parametrize("version", ["1.89", "1.95", "1.95.0", "1.120.3"])
def test_good_rust_versions_pass_the_rules(version: str) -> None:
    assert RULES.check_rust_version(version) is None


@pytest.mark.parametrize(
    "version", ["", "1", "1.88", "1.70.0", "2.0", "1.95.0.1", "stable", "v1.95"]
)
def test_bad_rust_versions_fail_the_rules(version: str) -> None:
    assert RULES.check_rust_version(version)


# Each bad answer, the field it belongs to, and the rule its message must state.
REJECTIONS = [
    ("slug", "Bad_Slug", "lowercase letters, digits and single hyphens"),
    ("slug", "a--b", "single hyphens"),
    ("slug", "x" * 41, "2-40"),
    ("slug", "self", "Rust keyword, a name cargo reserves"),
    ("slug", "actix-web", "a crate the service depends on"),
    ("port", "80", "from 1024 to 65535"),
    ("port", "http", "whole number"),
    ("rust_version", "1.70", "at least 1.89"),
    ("rust_version", "latest", "must look like 1.95"),
    ("project_name", 'Say "hi"', "without double quotes"),
    ("description", "   ", "one non-empty line"),
]


def expected_error(field: str, value: str) -> str:
    checks = {
        "slug": RULES.check_slug,
        "port": RULES.check_port,
        "rust_version": RULES.check_rust_version,
    }
    message = checks[field](value) if field in checks else RULES.one_line_text(field, value)
    assert message
    return message


def test_the_rejection_table_matches_the_rules() -> None:
    for field, value, rule in REJECTIONS:
        message = expected_error(field, value)
        assert message.startswith(f"{field} '{value}' is invalid: ")
        assert rule in message


def files_under(path: Path) -> list[Path]:
    return sorted(p for p in path.rglob("*")) if path.exists() else []


@pytest.mark.parametrize(("field", "value", "rule"), REJECTIONS)
def test_cookiecutter_rejects_bad_input_with_one_line_and_writes_nothing(
    tmp_path: Path, field: str, value: str, rule: str
) -> None:
    output = tmp_path / "out"
    output.mkdir()
    result = cookiecutter_cli(output, {field: value})
    assert result.returncode != 0
    assert f"ERROR: {expected_error(field, value)}" in result.stderr.splitlines()
    assert files_under(output) == []


@pytest.mark.parametrize(("field", "value", "rule"), REJECTIONS)
def test_copier_rejects_bad_input_with_the_same_line_and_writes_nothing(
    tmp_path: Path, field: str, value: str, rule: str
) -> None:
    destination = tmp_path / "service"
    result = copier_cli(destination, {field: value})
    assert result.returncode != 0
    last_line = result.stderr.strip().splitlines()[-1]
    assert last_line.endswith(expected_error(field, value)), last_line
    assert f"question '{field}'" in last_line
    assert not destination.exists()


def test_copier_rejects_bad_input_into_an_existing_directory_and_adds_nothing(
    tmp_path: Path,
) -> None:
    destination = tmp_path / "service"
    destination.mkdir()
    (destination / "notes.txt").write_text("mine\n")
    result = copier_cli(destination, {"slug": "Bad_Slug"})
    assert result.returncode != 0
    assert expected_error("slug", "Bad_Slug") in result.stderr
    assert files_under(destination) == [destination / "notes.txt"]
    assert (destination / "notes.txt").read_text() == "mine\n"


def test_cookiecutter_reports_every_bad_answer_at_once(tmp_path: Path) -> None:
    output = tmp_path / "out"
    result = cookiecutter_cli(output, {"slug": "Bad_Slug", "port": "80"})
    assert result.returncode != 0
    errors = [line for line in result.stderr.splitlines() if line.startswith("ERROR: ")]
    assert f"ERROR: {expected_error('slug', 'Bad_Slug')}" in errors
    assert f"ERROR: {expected_error('port', '80')}" in errors
    assert files_under(output) == []


@pytest.mark.parametrize("engine", ["cookiecutter", "copier"])
@pytest.mark.parametrize("question", list(choices()))
def test_an_answer_outside_the_choices_is_rejected_and_nothing_written(
    tmp_path: Path, question: str, engine: str
) -> None:
    """Both engines refuse it themselves (cookiecutter's choice list, copier's `choices`),
    naming the question and the value, before they write anything."""
    answers = default_answers(**{question: "not-a-choice"})
    output = tmp_path / "out"
    with pytest.raises(ValueError) as refusal:
        if engine == "cookiecutter":
            render_cookiecutter(output, **answers)
        else:
            render_copier(output / "service", **answers)
    assert question in str(refusal.value) and "not-a-choice" in str(refusal.value)
    assert files_under(output) == []
