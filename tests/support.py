"""Helpers shared by the test modules: render with either engine, find tools."""

from __future__ import annotations

import functools
import http.client
import importlib.util
import json
import os
import shutil
import socket
import subprocess
import sys
import urllib.parse
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

TEMPLATE_DIR = Path(__file__).resolve().parents[1]
IN_CI = os.environ.get("CI", "").lower() == "true"


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


def require(tool: str) -> str:
    """Path of a prerequisite; a missing one fails under CI=true and skips elsewhere."""
    path = shutil.which(tool)
    if path:
        return path
    message = f"prerequisite '{tool}' is not installed (run scripts/install-prerequisites.sh)"
    if IN_CI:
        pytest.fail(message)
    pytest.skip(message)


def http_get(port: int, path: str, timeout: float = 10) -> tuple[int, str]:
    """One GET on a new connection to the loopback port: (status, body)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path, headers={"Connection": "close"})
        response = conn.getresponse()
        return response.status, response.read().decode()
    finally:
        conn.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def run(
    cmd: list[str],
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
    timeout: float = 1800,
    check: bool = True,
) -> subprocess.CompletedProcess[str]:
    """Run a command, keeping its output for the assertion message."""
    result = subprocess.run(
        cmd, cwd=cwd, env=env, text=True, capture_output=True, timeout=timeout, check=False
    )
    if check and result.returncode != 0:
        raise AssertionError(
            f"{' '.join(cmd)} exited {result.returncode}\n--- stdout\n{result.stdout[-4000:]}"
            f"\n--- stderr\n{result.stderr[-4000:]}"
        )
    return result


def load_hook(name: str) -> ModuleType:
    """hooks/<name>.py as a module, so tests call its rules and helpers directly."""
    spec = importlib.util.spec_from_file_location(name, TEMPLATE_DIR / "hooks" / f"{name}.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up while loading
    spec.loader.exec_module(module)
    return module


# ---------------------------------------------------------------- the suite's Docker engine
ENGINE_SCRIPT = TEMPLATE_DIR / "scripts" / "docker-engine.sh"
# Where a user's own engine listens (the docker CLI's default).
DEFAULT_DOCKER_SOCKET = Path("/var/run/docker.sock")
STANDIN_LABEL = "org.template.standin=1"


@functools.cache
def suite_engine_host() -> str:
    """DOCKER_HOST of the suite's own engine; scripts/docker-engine.sh decides where it is."""
    return run(["bash", str(ENGINE_SCRIPT), "host"], timeout=30).stdout.strip()


def suite_engine_socket() -> Path:
    return Path(suite_engine_host().removeprefix("unix://"))


def use_suite_engine() -> str:
    """Point every docker client this process starts at the suite's engine.

    The docker CLI, compose, buildx, gitlab-ci-local and the post-generation hook all
    inherit DOCKER_HOST, which wins over a docker context; nothing reaches the user's
    engine, where stand-ins under official names would feed their real builds.
    """
    host = suite_engine_host()
    os.environ["DOCKER_HOST"] = host
    os.environ.pop("DOCKER_CONTEXT", None)
    return host


def engine_api(socket_path: Path, path: str, timeout: float = 10) -> tuple[int, str] | None:
    """GET on a Docker engine's unix socket: (status, body), or None when nothing answers."""
    conn = http.client.HTTPConnection("localhost", timeout=timeout)
    try:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(timeout)
        sock.connect(str(socket_path))
        conn.sock = sock
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.read().decode()
    except OSError:
        return None
    finally:
        conn.close()


def standin_images_on(socket_path: Path) -> list[str] | None:
    """Tags (or ids) of the images labelled as stand-ins; None when no engine answers there."""
    query = urllib.parse.quote(json.dumps({"label": [STANDIN_LABEL]}))
    answer = engine_api(socket_path, f"/images/json?filters={query}")
    if answer is None:
        return None
    status, body = answer
    assert status == 200, f"{socket_path}: GET /images/json -> {status} {body[:500]}"
    return [", ".join(image.get("RepoTags") or []) or image["Id"] for image in json.loads(body)]


def add_route(project: Path, handler: str, source: str) -> None:
    """A test-only handler in a generated project's src/routes.rs, registered before the
    greeting, whose `/{name}` would otherwise answer its path."""
    routes = project / "src" / "routes.rs"
    original = routes.read_text()
    assert ".service(greet)" in original, "routes moved: update tests/support.py add_route"
    routes.write_text(
        original.replace(".service(greet)", f".service({handler}).service(greet)") + source
    )
