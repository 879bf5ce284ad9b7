"""The template's own Python and shell are ruff- and shellcheck-clean.

ruff reads its file set from pyproject.toml (everything but the generated tree), as
`make lint` does; the shell scripts are the template's own `*.sh` and the CI entry.
"""

from __future__ import annotations

from harness import TEMPLATE_DIR
from harness.processes import require, run

SHELL_SCRIPTS = [
    *sorted(
        str(path.relative_to(TEMPLATE_DIR))
        for folder in ("harness", "maintainer", "scripts")
        for path in (TEMPLATE_DIR / folder).rglob("*.sh")
    ),
    ".ci/run",
]


def test_python_passes_ruff_check() -> None:
    run([require("ruff"), "check", "."], cwd=TEMPLATE_DIR)


def test_python_is_ruff_formatted() -> None:
    run([require("ruff"), "format", "--check", "."], cwd=TEMPLATE_DIR)


def test_shell_scripts_pass_shellcheck() -> None:
    assert "harness/docker-engine.sh" in SHELL_SCRIPTS
    run([require("shellcheck"), "-x", *SHELL_SCRIPTS], cwd=TEMPLATE_DIR)
