"""Rendering the template: its questions, default answers, and both engines (API and CLI)."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

from harness import TEMPLATE_DIR


def questions() -> dict[str, Any]:
    """cookiecutter.json without its private keys."""
    data = json.loads((TEMPLATE_DIR / "cookiecutter.json").read_text())
    return {k: v for k, v in data.items() if not k.startswith("_")}


def choices() -> dict[str, list[str]]:
    return {k: v for k, v in questions().items() if isinstance(v, list)}


# The slug both engines derive from the default project name (tests/test_slug.py
# renders it), for tests that need the name before they render anything.
DEFAULT_SLUG = "hello-service"


def default_answers(**overrides: str) -> dict[str, str]:
    """Default answers with verification off. The slug is left out (unless overridden)
    so that each engine derives it from the project name, as it does for users."""
    answers = {k: (v[0] if isinstance(v, list) else v) for k, v in questions().items()}
    del answers["slug"]
    answers["verify"] = "none"
    answers.update(overrides)
    return answers


def bake(cookies: Any, **answers: str) -> Path:
    """cookiecutter's output through pytest-cookies (`cookies` or `cookies_session`), as
    cookiecutter templates are conventionally tested; a failed bake fails the test."""
    result = cookies.bake(extra_context=answers, template=str(TEMPLATE_DIR))
    assert result.exit_code == 0 and result.exception is None, (
        f"cookiecutter failed (exit {result.exit_code}): {result.exception!r}"
    )
    return Path(result.project_path)


def cookiecutter_config(home: Path) -> Path:
    """A config that keeps cookiecutter's replay and clones out of the real $HOME."""
    home.mkdir(parents=True, exist_ok=True)
    config = home / "cookiecutter.yaml"
    config.write_text(
        f"cookiecutters_dir: {home / 'cookiecutters'}\nreplay_dir: {home / 'replay'}\n"
    )
    return config


def render_cookiecutter(
    output_dir: Path, template: str | Path = TEMPLATE_DIR, **answers: str
) -> Path:
    from cookiecutter.main import cookiecutter

    output_dir.mkdir(parents=True, exist_ok=True)
    project = cookiecutter(
        str(template),
        no_input=True,
        extra_context=answers,
        output_dir=str(output_dir),
        config_file=str(cookiecutter_config(output_dir.parent / f".{output_dir.name}-cc-home")),
    )
    return Path(project)


def render_copier(
    destination: Path,
    template: str | Path = TEMPLATE_DIR,
    vcs_ref: str | None = None,
    **answers: str,
) -> Path:
    import copier

    copier.run_copy(
        str(template),
        str(destination),
        data=answers,
        defaults=True,
        unsafe=True,
        quiet=True,
        vcs_ref=vcs_ref,
    )
    return destination


def cookiecutter_cli(
    output_dir: Path,
    answers: dict[str, str],
    env: dict[str, str] | None = None,
    *options: str,
) -> subprocess.CompletedProcess[str]:
    """`cookiecutter --no-input [options]` as a user runs it, its config kept out of $HOME."""
    config = cookiecutter_config(output_dir.parent / f".{output_dir.name}-cc-home")
    return subprocess.run(
        [sys.executable, "-m", "cookiecutter", "--no-input", *options, str(TEMPLATE_DIR),
         *(f"{key}={value}" for key, value in answers.items()),
         "--output-dir", str(output_dir),
         "--config-file", str(config)],
        capture_output=True, text=True, env=env, check=False,
    )  # fmt: skip


def copier_cli(
    destination: Path, answers: dict[str, str], env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """`copier copy --trust --defaults` as a user runs it, answers given with --data."""
    return subprocess.run(
        [sys.executable, "-m", "copier", "copy", "--trust", "--defaults",
         *(arg for key, value in answers.items() for arg in ("--data", f"{key}={value}")),
         str(TEMPLATE_DIR), str(destination)],
        capture_output=True, text=True, env=env, check=False,
    )  # fmt: skip


def load_hook(name: str) -> ModuleType:
    """hooks/<name>.py as a module, so tests call its rules and helpers directly."""
    spec = importlib.util.spec_from_file_location(name, TEMPLATE_DIR / "hooks" / f"{name}.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up while loading
    spec.loader.exec_module(module)
    return module


def add_route(project: Path, handler: str, source: str) -> None:
    """A test-only handler in a generated project's src/routes.rs, registered before the
    greeting, whose `/{name}` would otherwise answer its path."""
    routes = project / "src" / "routes.rs"
    original = routes.read_text()
    assert ".service(greet)" in original, "routes moved: update harness/render.py add_route"
    routes.write_text(
        original.replace(".service(greet)", f".service({handler}).service(greet)") + source
    )
