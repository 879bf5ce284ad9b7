"""The test suite's own Docker engine (harness/docker-engine.sh) and the docker CLI.

Stand-in base images carry official names, so they live only in this engine: nothing the
suite builds reaches the engine a user works with.
"""

from __future__ import annotations

import functools
import http.client
import json
import os
import socket
import subprocess
import urllib.parse
from pathlib import Path

import pytest

from harness import IN_CI, TEMPLATE_DIR
from harness.processes import require, run

ENGINE_SCRIPT = TEMPLATE_DIR / "harness" / "docker-engine.sh"
# Where a user's own engine listens (the docker CLI's default).
DEFAULT_DOCKER_SOCKET = Path("/var/run/docker.sock")
STANDIN_LABEL = "org.template.standin=1"


@functools.cache
def suite_engine_host() -> str:
    """DOCKER_HOST of the suite's own engine; harness/docker-engine.sh decides where it is."""
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


# ---------------------------------------------------------------- the docker CLI
def docker_cli() -> str:
    """Debian's client speaks BuildKit by itself; a newer client needs the buildx plugin."""
    if Path("/usr/bin/docker").exists():
        return "/usr/bin/docker"
    return require("docker")


def docker_env() -> dict[str, str]:
    env = dict(os.environ, DOCKER_HOST=suite_engine_host())
    env["DOCKER_BUILDKIT"] = "1"
    env.setdefault("BUILDKIT_PROGRESS", "plain")
    return env


def docker(
    *args: str,
    check: bool = True,
    timeout: float = 3600,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run the docker CLI; a failure raises with the command's output."""
    result = subprocess.run(
        [docker_cli(), *args],
        cwd=cwd,
        env=env or docker_env(),
        text=True,
        capture_output=True,
        timeout=timeout,
        check=False,
    )
    if check and result.returncode != 0:
        raise AssertionError(
            f"docker {' '.join(args)} exited {result.returncode}\n"
            f"--- stdout\n{result.stdout[-6000:]}\n--- stderr\n{result.stderr[-6000:]}"
        )
    return result


def compose_available() -> bool:
    return (
        subprocess.run(
            [docker_cli(), "compose", "version"], capture_output=True, check=False
        ).returncode
        == 0
    )


def require_compose() -> None:
    if not compose_available():
        message = (
            "prerequisite 'docker compose' (v2 plugin) is not installed"
            " (run harness/prerequisites/30-docker.sh)"
        )
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
