"""The default slug: both engines derive the same one from the project name.

The expression lives in cookiecutter.json and copier.yml, written by
maintainer/slug_rules.py; the rule and its message by
hooks/pre_gen_project.py (cookiecutter) and copier.yml's validator (copier).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

from harness import IN_CI, TEMPLATE_DIR
from harness.render import (
    DEFAULT_SLUG,
    bake,
    cookiecutter_cli,
    cookiecutter_config,
    copier_cli,
    default_answers,
    load_hook,
    questions,
    render_copier,
)

# Name -> the slug a user expects from it.
SLUGS = [
    ("Hello Service", DEFAULT_SLUG),
    ("Billing API 2.0", "billing-api-2-0"),
    ("Order  Desk", "order-desk"),
    ("Café Bot", "cafe-bot"),
    ("Zürich Payments", "zurich-payments"),
    ("Straße der Daten", "strasse-der-daten"),
    ("Ærøskøbing Færge", "aeroskobing-faerge"),
    ("Œuvre Façade", "oeuvre-facade"),
    ("Łódź Żółć Ćma", "lodz-zolc-cma"),
    ("Příliš žluťoučký kůň", "prilis-zlutoucky-kun"),
    ("İstanbul Şehir Ağı", "istanbul-sehir-agi"),  # noqa: RUF001 (Turkish dotless i)
    ("Año Niño São João", "ano-nino-sao-joao"),
    ("Grå Ålesund", "gra-alesund"),
    ("user_profile_service", "user-profile-service"),
    ("MyCoolAPI", "mycoolapi"),
    ("v2.api.example", "v2-api-example"),
    ("  --Leading & trailing!--  ", "leading-trailing"),
    ("(Beta) Search: v3", "beta-search-v3"),
    ("Inventory " * 8, "inventory-inventory-inventory-inventory"),
    ("A" * 39 + " Service", "a" * 39),
    ("Ünïcödé — 日本 Bridge", "unicode-bridge"),
]

# Names no valid slug comes from, and what each engine derives from them.
UNDERIVABLE = [("!!!", ""), ("2048 Game", "2048-game"), ("日本語", ""), ("Self", "self")]

PATH_SLUGS = ["a/b", "../x", "..", "a/../b", "a\\b"]


RULES = load_hook("pre_gen_project")


def names_answers(project_name: str) -> dict[str, str]:
    answers = default_answers(project_name=project_name)
    assert "slug" not in answers, "the engines must derive the slug themselves"
    return answers


def test_the_derived_slug_rules_are_up_to_date() -> None:
    """The default expression and every list of names a slug may not take
    (maintainer/slug_rules.py writes them from its table, the hook and Cargo.lock)."""
    result = subprocess.run(
        [sys.executable, "-m", "maintainer.slug_rules", "--check"],
        capture_output=True, text=True, check=False, cwd=TEMPLATE_DIR,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr


def test_the_table_covers_every_expected_slug() -> None:
    assert len(SLUGS) >= 15
    for _, slug in SLUGS:
        assert RULES.check_slug(slug) is None, slug


@pytest.mark.parametrize(("project_name", "slug"), SLUGS)
def test_both_engines_derive_the_expected_slug(
    tmp_path: Path, cookies: Any, project_name: str, slug: str
) -> None:
    answers = names_answers(project_name)
    by_cookiecutter = bake(cookies, **answers)
    by_copier = render_copier(tmp_path / "copier", **answers)
    from_copier = yaml.safe_load((by_copier / ".copier-answers.yml").read_text())["slug"]
    assert (by_cookiecutter.name, from_copier) == (slug, slug)
    for project in (by_cookiecutter, by_copier):
        assert f'name = "{slug}"' in (project / "Cargo.toml").read_text()


def entries(path: Path) -> list[str]:
    return sorted(str(p.relative_to(path)) for p in path.rglob("*"))


@pytest.mark.parametrize(("project_name", "derived"), UNDERIVABLE)
def test_cookiecutter_stops_with_the_slug_error_when_no_slug_derives(
    tmp_path: Path, project_name: str, derived: str
) -> None:
    result = cookiecutter_cli(tmp_path / "out", {"project_name": project_name, "verify": "none"})
    assert result.returncode != 0
    message = RULES.check_slug(derived)
    assert message and "slug=..." in message
    assert f"ERROR: {message}" in result.stderr.splitlines(), result.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(("project_name", "derived"), UNDERIVABLE)
def test_copier_stops_with_the_same_line_when_no_slug_derives(
    tmp_path: Path, project_name: str, derived: str
) -> None:
    destination = tmp_path / "service"
    result = copier_cli(destination, {"project_name": project_name, "verify": "none"})
    assert result.returncode != 0
    last_line = result.stderr.strip().splitlines()[-1]
    message = RULES.check_slug(derived)
    assert message and last_line.endswith(f"question 'slug': {message}"), last_line
    assert not destination.exists()


@pytest.mark.parametrize("slug", PATH_SLUGS)
def test_cookiecutter_rejects_a_path_as_slug_and_creates_no_folder(
    tmp_path: Path, slug: str
) -> None:
    """cookiecutter would create the project folder and its parents before its hook runs;
    the answers are checked first (local_extensions.py), so not even the output folder
    appears."""
    work = tmp_path / "work"
    work.mkdir()
    result = cookiecutter_cli(work / "out", {"slug": slug, "verify": "none"})
    assert result.returncode != 0
    assert f"ERROR: {RULES.check_slug(slug)}" in result.stderr.splitlines(), result.stderr
    # Only the test's own cookiecutter config, beside the output folder.
    assert entries(tmp_path) == ["work", "work/.out-cc-home", "work/.out-cc-home/cookiecutter.yaml"]


@pytest.mark.parametrize("slug", PATH_SLUGS)
def test_copier_rejects_a_path_as_slug_and_creates_no_folder(tmp_path: Path, slug: str) -> None:
    result = copier_cli(tmp_path / "new" / "service", {"slug": slug, "verify": "none"})
    assert result.returncode != 0
    assert result.stderr.strip().splitlines()[-1].endswith(str(RULES.check_slug(slug)))
    assert entries(tmp_path) == []


# ---------------------------------------------------------------- interactive prompts
# Driven through a real terminal as a person types: Enter on every prompt but the last,
# where the tests pick verify=none so that generating does not build the service.

VERIFY_NONE = {
    "copier": "\x1b[B" * 3 + "\r",  # three arrow-downs from `auto` to `none`
    "cookiecutter": "4\r",  # `none` is the fourth choice
}


def terminal_env(tmp_path: Path) -> dict[str, str]:
    """The user's environment with a sane terminal, and HOME kept in the test's folder."""
    env = dict(os.environ)
    env.update(HOME=str(tmp_path / "home"), TERM="xterm-256color", LANG="C.UTF-8", LC_ALL="C.UTF-8")
    for name in ("COLUMNS", "LINES", "CI"):
        env.pop(name, None)
    return env


def pexpect_module() -> ModuleType:
    """pexpect (requirements-dev.txt); missing, it fails under CI=true and skips elsewhere."""
    try:
        import pexpect
    except ImportError:
        message = "prerequisite 'pexpect' is not installed (requirements-dev.txt)"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    return pexpect


def spawn(command: list[str], tmp_path: Path):  # type: ignore[no-untyped-def]
    pexpect = pexpect_module()
    (tmp_path / "home").mkdir(exist_ok=True)
    return pexpect.spawn(
        command[0],
        command[1:],
        env=terminal_env(tmp_path),
        cwd=str(tmp_path),
        dimensions=(50, 200),
        encoding="utf-8",
        timeout=60,
    )


COPIER_HELP = {
    name: spec["help"]
    for name, spec in yaml.safe_load((TEMPLATE_DIR / "copier.yml").read_text()).items()
    if isinstance(spec, dict) and "help" in spec
}
PROMPTS = json.loads((TEMPLATE_DIR / "cookiecutter.json").read_text())["__prompts__"]
# The end of a cookiecutter prompt, where it reads the answer (colours in between).
INPUT_READY = r"[\])?](\x1b\[[0-9;]*m)*: "
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
KILL_LINE = "\x15"  # Ctrl-U: clears the default copier pre-fills, as a person would


def copier_prompt(child, name: str) -> None:  # type: ignore[no-untyped-def]
    child.expect_exact(COPIER_HELP[name][:30])


def copier_command(destination: Path) -> list[str]:
    return [sys.executable, "-m", "copier", "copy", "--trust", str(TEMPLATE_DIR), str(destination)]


def finish_copier(child, after: str) -> None:  # type: ignore[no-untyped-def]
    """Enter on every question after `after`, then the run ends well."""
    names = list(questions())
    for name in names[names.index(after) + 1 :]:
        copier_prompt(child, name)
        child.send(VERIFY_NONE["copier"] if name == "verify" else "\r")
    child.expect(pexpect_module().EOF, timeout=120)
    child.close()
    assert child.exitstatus == 0, ANSI.sub("", child.before or "")


def copier_at_the_slug_prompt(tmp_path: Path, project_name: str):  # type: ignore[no-untyped-def]
    """copier in a terminal, `project_name` typed over the pre-filled one, at the slug
    prompt; with the folder it generates into."""
    destination = tmp_path / "svc"
    child = spawn(copier_command(destination), tmp_path)
    copier_prompt(child, "project_name")
    child.send(KILL_LINE + project_name + "\r")
    copier_prompt(child, "slug")
    return child, destination


def test_copier_prompts_an_ordinary_name_through_with_enter(tmp_path: Path) -> None:
    child, destination = copier_at_the_slug_prompt(tmp_path, "Zürich Payments")
    child.expect_exact("zurich-payments")  # the derived default, pre-filled
    child.send("\r")
    finish_copier(child, "slug")
    assert 'name = "zurich-payments"' in (destination / "Cargo.toml").read_text()


def test_copier_asks_again_for_a_bad_slug_then_takes_a_good_one(tmp_path: Path) -> None:
    child, destination = copier_at_the_slug_prompt(tmp_path, "Zürich Payments")
    child.send(KILL_LINE + "Bad_Slug\r")
    child.expect_exact("is invalid")
    child.send(KILL_LINE + "payments-zh\r")
    finish_copier(child, "slug")
    assert 'name = "payments-zh"' in (destination / "Cargo.toml").read_text()


@pytest.mark.parametrize("project_name", ["!!!", "2048 Game", "Self"])
def test_copier_lets_the_user_type_a_slug_when_none_derives(
    tmp_path: Path, project_name: str
) -> None:
    """copier validates a default before it shows the prompt; the default offers nothing
    for such names, so the user reaches the slug prompt instead of a traceback."""
    child, destination = copier_at_the_slug_prompt(tmp_path, project_name)
    child.send("\r")  # nothing typed: refused, asked again
    child.expect_exact("is invalid")
    child.send("typed-slug\r")
    finish_copier(child, "slug")
    assert 'name = "typed-slug"' in (destination / "Cargo.toml").read_text()


def cookiecutter_command(output: Path) -> list[str]:
    config = cookiecutter_config(output.parent / f".{output.name}-cc-home")
    return [sys.executable, "-m", "cookiecutter", str(TEMPLATE_DIR),
            "--output-dir", str(output), "--config-file", str(config)]  # fmt: skip


def answer_cookiecutter(child, typed: dict[str, str]) -> None:  # type: ignore[no-untyped-def]
    """Type the given answers and Enter on every other prompt."""
    for name in questions():
        child.expect_exact(PROMPTS[name])
        child.expect(INPUT_READY)
        default = VERIFY_NONE["cookiecutter"] if name == "verify" else "\r"
        child.send(typed[name] + "\r" if name in typed else default)


def test_cookiecutter_prompts_an_ordinary_name_through_with_enter(tmp_path: Path) -> None:
    output = tmp_path / "out"
    child = spawn(cookiecutter_command(output), tmp_path)
    child.expect_exact(PROMPTS["project_name"])
    child.send("Zürich Payments\r")
    child.expect_exact(PROMPTS["slug"])
    child.expect_exact("(zurich-payments)")
    child.send("\r")
    names = list(questions())
    for name in names[2:]:
        child.expect_exact(PROMPTS[name])
        child.expect(INPUT_READY)
        child.send(VERIFY_NONE["cookiecutter"] if name == "verify" else "\r")
    child.expect(pexpect_module().EOF, timeout=120)
    child.close()
    assert child.exitstatus == 0, ANSI.sub("", child.before or "")
    assert 'name = "zurich-payments"' in (output / "zurich-payments" / "Cargo.toml").read_text()


def test_cookiecutter_rejects_a_bad_typed_slug_before_writing(tmp_path: Path) -> None:
    output = tmp_path / "out"
    child = spawn(cookiecutter_command(output), tmp_path)
    answer_cookiecutter(child, {"project_name": "Zürich Payments", "slug": "Bad_Slug"})
    child.expect(pexpect_module().EOF, timeout=60)
    child.close()
    shown = ANSI.sub("", child.before or "").replace("\r", "")
    assert child.exitstatus != 0
    assert f"ERROR: {RULES.check_slug('Bad_Slug')}" in shown.splitlines(), shown
    assert "Traceback" not in shown
    assert not output.exists()
