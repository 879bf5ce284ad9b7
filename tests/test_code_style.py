"""The template's own Python (hooks, tests, scripts, benchmarks) is ruff-clean."""

from __future__ import annotations

from support import TEMPLATE_DIR, require, run

PYTHON_DIRS = [
    d for d in ("hooks", "tests", "scripts", "benchmarks") if (TEMPLATE_DIR / d).exists()
]


def test_python_passes_ruff_check() -> None:
    run([require("ruff"), "check", *PYTHON_DIRS], cwd=TEMPLATE_DIR)


def test_python_is_ruff_formatted() -> None:
    run([require("ruff"), "format", "--check", *PYTHON_DIRS], cwd=TEMPLATE_DIR)
