"""Session-wide fixtures: one cargo target directory for every build in the run."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support import TEMPLATE_DIR, bake, default_answers

# The command-line tools of requirements-dev.txt (ruff, check-jsonschema, hadolint, cruft,
# sccache) sit next to the interpreter in .venv/bin: find them as an activated venv would.
os.environ["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), os.environ["PATH"]])


@pytest.fixture(scope="session")
def cargo_target_dir() -> Path:
    """Shared by every cargo build of the session, across generated projects.

    Kept under .cache/ so repeated local runs stay warm; CI starts from empty.
    """
    path = Path(os.environ.get("TEMPLATE_TEST_CARGO_TARGET", TEMPLATE_DIR / ".cache" / "target"))
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture(scope="session")
def cargo_env(cargo_target_dir: Path) -> dict[str, str]:
    """Environment for cargo (and the post-generation hook) sharing one target dir."""
    env = dict(os.environ)
    env["CARGO_TARGET_DIR"] = str(cargo_target_dir)
    env.setdefault("CARGO_TERM_COLOR", "never")
    return env


@pytest.fixture(scope="session", autouse=True)
def shared_cargo_target(cargo_target_dir: Path) -> Iterator[None]:
    """Hooks run cargo in subprocesses; they inherit the shared target dir too."""
    previous = os.environ.get("CARGO_TARGET_DIR")
    os.environ["CARGO_TARGET_DIR"] = str(cargo_target_dir)
    yield
    if previous is None:
        os.environ.pop("CARGO_TARGET_DIR", None)
    else:
        os.environ["CARGO_TARGET_DIR"] = previous


@pytest.fixture(scope="session")
def default_project(cookies_session: Any) -> Path:
    """The service generated with the default answers (verification off)."""
    return bake(cookies_session, **default_answers())
