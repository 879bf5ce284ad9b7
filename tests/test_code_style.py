"""The template's own Python and shell (hooks, tests, scripts, benchmarks, CI entry) are
ruff- and shellcheck-clean."""

from __future__ import annotations

from support import TEMPLATE_DIR, require, run

PYTHON_PATHS = [
    p
    for p in ("hooks", "tests", "scripts", "benchmarks", "local_extensions.py")
    if (TEMPLATE_DIR / p).exists()
]
SHELL_SCRIPTS = [
    *sorted(str(p.relative_to(TEMPLATE_DIR)) for p in (TEMPLATE_DIR / "scripts").rglob("*.sh")),
    ".ci/run",
]


def test_python_passes_ruff_check() -> None:
    run([require("ruff"), "check", *PYTHON_PATHS], cwd=TEMPLATE_DIR)


def test_python_is_ruff_formatted() -> None:
    run([require("ruff"), "format", "--check", *PYTHON_PATHS], cwd=TEMPLATE_DIR)


def test_shell_scripts_pass_shellcheck() -> None:
    assert "scripts/docker-engine.sh" in SHELL_SCRIPTS
    run([require("shellcheck"), "-x", *SHELL_SCRIPTS], cwd=TEMPLATE_DIR)
