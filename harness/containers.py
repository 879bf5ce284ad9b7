"""Container harness: one engine, one set of base images, built images and compose projects.

The engine is the suite's own (harness/docker-engine.sh: its own socket and data root),
never the one a user works with: DOCKER_HOST points every docker client here at it
(set when this module is imported, for benchmarks too, and by tests/conftest.py).

What is expensive is done once: ensure_engine() starts the engine (or reuses it),
ensure_base_images() makes the base images present (pulled, or stand-ins built by
harness/standins.py on machines without a registry), and RuntimeImages builds each runtime
image once per (Debian release, variant). The session fixtures of tests/conftest.py and
the benchmarks call these; this module defines no fixtures.

The network rule of these machines holds for everything started here: builds use
``--network host``, containers run with ``--network host``, and ``compose_up``
refuses a compose project in which any service is not on host networking.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness import TEMPLATE_DIR
from harness.engine import ENGINE_SCRIPT, docker, docker_cli, docker_env, use_suite_engine
from harness.processes import GiveUp, free_port, http_get, run, wait_until
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
class EngineUnavailable(RuntimeError):
    """The suite's engine does not answer and cannot be started here."""


def engine_script(command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(ENGINE_SCRIPT), command], capture_output=True, text=True, check=False
    )


def ensure_engine() -> bool:
    """The suite's own engine, answering; True when this call started it (its caller
    then stops it with stop_engine()). Its data (images, build cache) stays."""
    docker_cli()
    use_suite_engine()
    if engine_script("status").returncode == 0:
        return False
    started = engine_script("start")
    if started.returncode != 0:
        raise EngineUnavailable(f"cannot start the suite's Docker engine: {started.stderr.strip()}")
    return True


def stop_engine() -> None:
    engine_script("stop")


def images_the_tier_uses(rust_version: str | None = None) -> list[str]:
    """Base images of the cells built here (the dev image only for the default release)."""
    rust_version = rust_version or default_answers()["rust_version"]
    images = [f"rust:{rust_version}-{RELEASES[0]}"]
    for release in RELEASES:
        number = {"bookworm": "12", "trixie": "13"}[release]
        images += [
            f"debian:{release}-slim",
            f"rust:{rust_version}-slim-{release}",
            f"gcr.io/distroless/cc-debian{number}:nonroot",
        ]
    return images


def ensure_base_images(images: Iterable[str], rust_version: str | None = None) -> None:
    """These base images (every one with a stand-in recipe when `images` is empty) present
    in the suite's running engine, once per machine: already there, pulled, or stand-ins
    built by harness/standins.py."""
    rust_version = rust_version or default_answers()["rust_version"]
    run(
        [sys.executable, "-m", STANDIN_MODULE, "--rust-version", rust_version, *images],
        env=docker_env(),
        cwd=TEMPLATE_DIR,
        timeout=7200,
    )


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
    """(status, body) of the first answer on the loopback port (with the body `expect`, if
    given); gives up early when `container` stops, and shows its log on failure."""

    def answer() -> tuple[int, str]:
        try:
            status, body = http_get(port, path, timeout=5)
            if expect is not None and body != expect:
                raise AssertionError(f"answered {status} {body!r}, not {expect!r}")
            return status, body
        except (OSError, AssertionError) as error:
            if container and not docker_running(container):
                raise GiveUp(f"the container stopped (last: {error!r})") from error
            raise

    return wait_until(
        answer,
        timeout,
        f"no answer on 127.0.0.1:{port}{path}",
        interval=0.2,
        details=(lambda: container_logs(container)) if container else None,
    )


def docker_running(name: str) -> bool:
    result = docker("inspect", "--format", "{{.State.Running}}", name, check=False)
    return result.stdout.strip() == "true"


def container_logs(name: str, tail: int = 3000) -> str:
    """The last `tail` characters the container wrote to its stdout."""
    return docker("logs", name, check=False).stdout[-tail:]


class ContainerRunner:
    """Starts containers on host networking with PORT set to a free port, each once it
    answers on /health; remove_all() removes every one it started."""

    def __init__(self) -> None:
        self.names: list[str] = []

    def __call__(self, image: str, *extra: str) -> Container:
        port = free_port()
        name = f"template-test-{os.getpid()}-{len(self.names)}-{port}"
        self.names.append(name)
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

    def remove_all(self) -> None:
        for name in self.names:
            docker("rm", "-f", name, check=False)


class Hammer:
    """Sends GET /Pete on a new connection every 100 ms while in its `with` block and
    records each outcome: ("answered", (status, body)), ("refused", error) or ("error",
    error). Measures a reload: a request refused is one a user would have seen fail."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.results: list[tuple[str, object]] = []
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()

    def outcomes(self) -> list[str]:
        return [kind for kind, _ in self.results]

    def _one(self) -> None:
        try:
            outcome: tuple[str, object] = ("answered", http_get(self.port, "/Pete", timeout=300))
        except ConnectionRefusedError as err:
            outcome = ("refused", err)
        except OSError as err:
            outcome = ("error", err)
        with self._lock:
            self.results.append(outcome)

    def _loop(self) -> None:
        while not self._stop.is_set():
            thread = threading.Thread(target=self._one, daemon=True)
            thread.start()
            self._threads.append(thread)
            self._stop.wait(0.1)

    def __enter__(self) -> Hammer:
        self._main = threading.Thread(target=self._loop, daemon=True)
        self._main.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._main.join()
        for thread in self._threads:
            thread.join(timeout=300)


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
