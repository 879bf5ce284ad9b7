"""Container harness: one engine, one set of base images, built images and compose projects.

The engine is the suite's own (harness/docker-engine.sh: its own socket and data root),
never the one a user works with: DOCKER_HOST points every docker client here at it
(set when this module is imported, for benchmarks too, and by tests/conftest.py).

Everything here is session-scoped where it is expensive: the engine is started (or
reused) once, the base images are made present once (pulled, or stand-ins built by
harness/standins.py on machines without a registry), and each runtime image
is built once per (Debian release, variant) and shared by the tests that need it.

The network rule of these machines holds for everything started here: builds use
``--network host``, containers run with ``--network host``, and ``compose_up``
refuses a compose project in which any service is not on host networking.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from harness import IN_CI, TEMPLATE_DIR
from harness.engine import (
    ENGINE_SCRIPT,
    docker,
    docker_cli,
    docker_env,
    suite_engine_host,
    use_suite_engine,
)
from harness.processes import free_port, http_get
from harness.render import bake, default_answers

use_suite_engine()
STANDIN_MODULE = "harness.standins"
RELEASES = ("bookworm", "trixie")
VARIANTS = ("debian-slim", "distroless", "scratch")
# Cells that build for real. The static (scratch) binary does not depend on the
# runtime's libc, so it is built on the default release only: every variant and
# every release is still built, run and curled (see docs/containers.md).
RUNTIME_CELLS = (
    ("bookworm", "debian-slim"),
    ("bookworm", "distroless"),
    ("bookworm", "scratch"),
    ("trixie", "debian-slim"),
    ("trixie", "distroless"),
)


# ---------------------------------------------------------------- engine and images
def engine_script(command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(ENGINE_SCRIPT), command], capture_output=True, text=True, check=False
    )


@pytest.fixture(scope="session")
def docker_engine() -> Iterator[str]:
    """The suite's own engine, running; stopped at the end if this session started it.

    Its data (images, build cache) stays for the next session.
    """
    docker_cli()
    running = engine_script("status").returncode == 0
    if not running:
        started = engine_script("start")
        if started.returncode != 0:
            message = f"cannot start the suite's Docker engine: {started.stderr.strip()}"
            if IN_CI:
                pytest.fail(message)
            pytest.skip(message)
    assert os.environ["DOCKER_HOST"] == suite_engine_host()
    yield docker_cli()
    if not running:
        engine_script("stop")


def images_the_tier_uses(rust_version: str) -> list[str]:
    """Base images of the cells built here (the dev image only for the default release)."""
    images = [f"rust:{rust_version}-{RELEASES[0]}"]
    for release in RELEASES:
        number = {"bookworm": "12", "trixie": "13"}[release]
        images += [
            f"debian:{release}-slim",
            f"rust:{rust_version}-slim-{release}",
            f"gcr.io/distroless/cc-debian{number}:nonroot",
        ]
    return images


@pytest.fixture(scope="session")
def base_images(docker_engine: str) -> None:
    """The base images the built cells name, present once per machine."""
    rust_version = default_answers()["rust_version"]
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            STANDIN_MODULE,
            "--rust-version",
            rust_version,
            *images_the_tier_uses(rust_version),
        ],
        capture_output=True,
        text=True,
        check=False,
        env=docker_env(),
        cwd=TEMPLATE_DIR,
    )
    assert result.returncode == 0, f"base images:\n{result.stdout}\n{result.stderr}"


# ---------------------------------------------------------------- projects and builds
def render(cookies: Any, **answers: str) -> Path:
    """The default answers with these changes, baked by pytest-cookies' fixture."""
    return bake(cookies, **default_answers(**answers))


@dataclass
class Build:
    tag: str
    project: Path
    output: str


def build_image(
    project: Path, tag: str, *extra: str, dockerfile: str = "Dockerfile", timeout: float = 3600
) -> Build:
    """docker build with host networking; keeps BuildKit's plain output for assertions."""
    result = docker(
        "build",
        "--network",
        "host",
        "--progress=plain",
        "-f",
        str(project / dockerfile),
        "-t",
        tag,
        *extra,
        str(project),
        timeout=timeout,
    )
    return Build(tag=tag, project=project, output=result.stdout + result.stderr)


@dataclass
class RuntimeImages:
    """Runtime images built once per session for each (release, variant) cell.

    A failed build is remembered: the other tests of that cell fail with the same
    error instead of building again.
    """

    cookies: Any  # pytest-cookies' session fixture
    built: dict[tuple[str, str], Build | AssertionError] = field(default_factory=dict)

    def get(self, release: str, variant: str) -> Build:
        key = (release, variant)
        if key not in self.built:
            try:
                project = render(
                    self.cookies,
                    debian_release=release,
                    runtime_image=variant,
                )
                tag = f"template-test/{project.name}:{release}-{variant}"
                self.built[key] = build_image(project, tag)
            except AssertionError as err:
                self.built[key] = err
        result = self.built[key]
        if isinstance(result, AssertionError):
            raise AssertionError(f"building the {release} {variant} image failed:\n{result}")
        return result


@pytest.fixture(scope="session")
def runtime_images(base_images: None, cookies_session: Any) -> RuntimeImages:
    return RuntimeImages(cookies_session)


def compiled_crates(build_output: str) -> list[str]:
    """Crate names cargo printed as `Compiling <name> v<version>` in a build's output."""
    return re.findall(r"Compiling (\S+) v\d", build_output)


# ---------------------------------------------------------------- containers
@dataclass
class Container:
    name: str
    port: int

    def get(self, path: str, timeout: float = 10) -> tuple[int, str]:
        return http_get(self.port, path, timeout)


def wait_for_http(
    port: int,
    path: str = "/health",
    timeout: float = 60,
    expect: str | None = None,
    container: str | None = None,
) -> tuple[int, str]:
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        try:
            status, body = http_get(port, path, timeout=5)
            if expect is None or body == expect:
                return status, body
            last = (status, body)
        except OSError as err:
            last = err
        if container and not docker_running(container):
            break
        time.sleep(0.2)
    logs = docker("logs", container, check=False).stdout[-3000:] if container else ""
    raise AssertionError(f"no answer on 127.0.0.1:{port}{path} (last: {last!r})\n{logs}")


def docker_running(name: str) -> bool:
    result = docker("inspect", "--format", "{{.State.Running}}", name, check=False)
    return result.stdout.strip() == "true"


@pytest.fixture
def run_container() -> Iterator:
    """Starts containers on host networking with PORT set to a free port; removes them."""
    names: list[str] = []

    def start(image: str, *extra: str) -> Container:
        port = free_port()
        name = f"template-test-{os.getpid()}-{len(names)}-{port}"
        names.append(name)
        docker(
            "run",
            "-d",
            "--name",
            name,
            "--network",
            "host",
            "-e",
            f"PORT={port}",
            "-e",
            "HOST=127.0.0.1",
            *extra,
            image,
        )
        wait_for_http(port, container=name)
        return Container(name=name, port=port)

    yield start
    for name in names:
        docker("rm", "-f", name, check=False)


# ---------------------------------------------------------------- compose
class NotHostNetworking(AssertionError):
    """A compose project with a service that would need a bridge network."""


def compose_config(project: Path, files: list[Path], name: str, env: dict[str, str]) -> dict:
    args = ["compose", "-p", name]
    for file in files:
        args += ["-f", str(file)]
    return json.loads(docker(*args, "config", "--format", "json", cwd=project, env=env).stdout)


def check_host_networking(config: dict) -> None:
    """Every service on host networking, and no network for compose to create."""
    offenders = [
        name
        for name, service in config.get("services", {}).items()
        if service.get("network_mode") != "host"
    ]
    if offenders:
        raise NotHostNetworking(
            f"refusing to start compose services without network_mode: host: {offenders}"
        )
    if config.get("networks"):
        raise NotHostNetworking(f"refusing to create compose networks: {list(config['networks'])}")


@dataclass
class ComposeProject:
    project: Path
    files: list[Path]
    name: str
    env: dict[str, str]

    def compose(
        self,
        *args: str,
        check: bool = True,
        timeout: float = 3600,
    ) -> subprocess.CompletedProcess[str]:
        base = ["compose", "-p", self.name]
        for file in self.files:
            base += ["-f", str(file)]
        return docker(*base, *args, cwd=self.project, env=self.env, check=check, timeout=timeout)

    def running_containers(self) -> list[str]:
        out = docker(
            "ps", "-a", "-q", "--filter", f"label=com.docker.compose.project={self.name}"
        ).stdout
        return out.split()

    def networks(self) -> list[str]:
        out = docker(
            "network", "ls", "-q", "--filter", f"label=com.docker.compose.project={self.name}"
        ).stdout
        return out.split()


def compose_up(
    project: Path, files: list[Path], name: str, env: dict[str, str] | None = None, *up_args: str
) -> ComposeProject:
    """`docker compose up -d` after checking that every service uses host networking."""
    full_env = docker_env() | (env or {})
    check_host_networking(compose_config(project, files, name, full_env))
    compose = ComposeProject(project, files, name, full_env)
    compose.compose("up", "-d", *up_args)
    return compose


def host_network_override(path: Path, services: list[str]) -> Path:
    """A compose override putting every service (and its build) on host networking."""
    lines = ["services:"]
    for service in services:
        lines += [
            f"  {service}:",
            "    network_mode: host",
            "    ports: !reset []",
            "    build:",
            "      network: host",
        ]
    path.write_text("\n".join(lines) + "\n")
    return path


def port_is_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True
