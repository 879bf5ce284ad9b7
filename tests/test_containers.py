"""The generated container files: statically correct for every answer, and real.

Unmarked tests are the fast tier: hadolint on every Dockerfile for every relevant
answer, the compose file against the compose spec (and `docker compose config`),
devcontainer.json. Tests marked `docker` build and run the images with a real
engine on host networking (see harness/containers.py and docs/containers.md).
"""

from __future__ import annotations

import itertools
import json
import os
import re
import socket
import subprocess
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from harness import standins
from harness.containers import (
    RUNTIME_CELLS,
    Build,
    ComposeProject,
    Container,
    NotHostNetworking,
    build_image,
    check_host_networking,
    compiled_crates,
    compose_config,
    compose_up,
    host_network_override,
    render,
    wait_for_http,
)
from harness.engine import docker, docker_cli, docker_env, require_compose
from harness.processes import free_port, http_get, require
from harness.render import DEFAULT_SLUG, add_route, default_answers

# Session fixtures: docker_engine, base_images, runtime_images, run_container.
pytest_plugins = ["harness.containers"]

SLUG = DEFAULT_SLUG

# Every answer that changes a container file.
CONTAINER_ANSWERS = [
    dict(zip(("debian_release", "runtime_image", "dev_watcher"), values, strict=True))
    for values in itertools.product(
        ("bookworm", "trixie"),
        ("debian-slim", "distroless", "scratch"),
        ("watchexec", "cargo-watch"),
    )
]


def answer_id(answers: dict[str, str]) -> str:
    return "-".join(answers.values())


@pytest.fixture(scope="module")
def rendered_variants(cookies_session: Any) -> list[Path]:
    return [render(cookies_session, **answers) for answers in CONTAINER_ANSWERS]


def dockerfile_args(text: str) -> dict[str, str]:
    return dict(re.findall(r"^ARG (\w+)=(\S*)$", text, flags=re.M))


def base_images_named(dockerfile: str) -> set[str]:
    """The external images a Dockerfile's FROM lines name, with ARG defaults applied."""
    args = dockerfile_args(dockerfile)
    stages = set(re.findall(r"^FROM \S+ AS (\S+)$", dockerfile, flags=re.M))
    images = set()
    for ref in re.findall(r"^FROM (\S+)", dockerfile, flags=re.M):
        ref = re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], ref)
        if ref != "scratch" and ref not in stages:
            images.add(ref)
    return images


# ---------------------------------------------------------------- fast tier
def test_every_dockerfile_is_hadolint_clean_for_every_answer(rendered_variants: list[Path]) -> None:
    hadolint = require("hadolint")
    files = [str(p / name) for p in rendered_variants for name in ("Dockerfile", "dev.Dockerfile")]
    result = subprocess.run(
        [hadolint, "--failure-threshold", "warning", *files],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_dockerfiles_pin_versions_from_the_answers(rendered_variants: list[Path]) -> None:
    for project, answers in zip(rendered_variants, CONTAINER_ANSWERS, strict=True):
        runtime = dockerfile_args((project / "Dockerfile").read_text())
        dev = dockerfile_args((project / "dev.Dockerfile").read_text())
        for args in (runtime, dev):
            assert args["RUST_VERSION"] == default_answers()["rust_version"]
            assert args["DEBIAN_RELEASE"] == answers["debian_release"]
        assert runtime["RUNTIME"] == answers["runtime_image"]
        watcher = {"watchexec": "watchexec-cli", "cargo-watch": "cargo-watch"}
        assert dev["WATCHER_CRATE"] == watcher[answers["dev_watcher"]]
        assert re.fullmatch(r"\d+\.\d+\.\d+", dev["WATCHER_VERSION"])
        assert re.fullmatch(r"\d+\.\d+\.\d+", dev["SYSTEMFD_VERSION"])


def test_runtime_dockerfile_builds_locked_runs_non_root_and_exposes_the_port(
    rendered_variants: list[Path],
) -> None:
    text = (rendered_variants[0] / "Dockerfile").read_text()
    assert "cargo build --release --locked" in text
    runtime_stages = re.split(r"^FROM ", text, flags=re.M)
    for stage in (s for s in runtime_stages if " AS runtime-" in s.splitlines()[0]):
        assert re.search(r"^USER 65532:65532$", stage, flags=re.M), stage
        assert f"EXPOSE {default_answers()['port']}" in stage
    # Cache mounts are keyed by project, Rust version and Debian release.
    for mount_id in re.findall(r"id=(\S+?),", text):
        assert mount_id.startswith(f"{SLUG}-")
        if "target" in mount_id:
            assert "${RUST_VERSION}" in mount_id and "${DEBIAN_RELEASE}" in mount_id


def test_every_base_image_the_dockerfiles_name_has_a_stand_in_recipe(
    rendered_variants: list[Path],
) -> None:
    named = set()
    for project in rendered_variants:
        for name in ("Dockerfile", "dev.Dockerfile"):
            named |= base_images_named((project / name).read_text())
    listing = standins.all_images(default_answers()["rust_version"])
    assert named, "no FROM lines found"
    assert named <= set(listing), f"images without a stand-in: {named - set(listing)}"


def resolved_from_lines(dockerfile: str) -> list[str]:
    """Each FROM line's image with the ARG defaults applied (ARGs may name ARGs)."""
    args = dockerfile_args(dockerfile)
    refs = []
    for ref in re.findall(r"^FROM (\S+)", dockerfile, flags=re.M):
        while "${" in ref:
            ref = re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], ref)
        refs.append(ref)
    return refs


def test_generated_dockerfiles_name_the_official_base_images(
    rendered_variants: list[Path],
) -> None:
    """Stand-ins live only in the suite's engine: the files users get are never rewritten.

    The tests build these very files, so a stand-in under another name would have to be
    written into them; this pins the official names for every release and runtime.
    """
    rust = default_answers()["rust_version"]
    for project, answers in zip(rendered_variants, CONTAINER_ANSWERS, strict=True):
        release = answers["debian_release"]
        number = {"bookworm": "12", "trixie": "13"}[release]
        runtime = (project / "Dockerfile").read_text()
        stages = set(re.findall(r"^FROM \S+ AS (\S+)$", runtime, flags=re.M))
        assert set(resolved_from_lines(runtime)) - stages - {"scratch"} == {
            f"rust:{rust}-slim-{release}",
            f"debian:{release}-slim",
            f"gcr.io/distroless/cc-debian{number}:nonroot",
        }, project
        assert resolved_from_lines((project / "dev.Dockerfile").read_text()) == [
            f"rust:{rust}-{release}"
        ]
        builder = (project / "ci" / "builder.Dockerfile").read_text()
        assert resolved_from_lines(builder) == [f"rust:{rust}-{release}"]
        assert dockerfile_args(builder)["RUST_IMAGE"] == "rust:${RUST_VERSION}-${DEBIAN_RELEASE}"


def test_compose_file_is_valid_against_the_compose_spec(rendered_variants: list[Path]) -> None:
    checker = require("check-jsonschema")
    files = [str(p / "compose.yaml") for p in rendered_variants]
    result = subprocess.run(
        [checker, "--builtin-schema", "vendor.compose-spec", *files],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_compose_config_accepts_the_file_and_keeps_caches_in_named_volumes(
    rendered_variants: list[Path],
) -> None:
    require_compose()
    for project, answers in zip(rendered_variants, CONTAINER_ANSWERS, strict=True):
        config = compose_config(project, [project / "compose.yaml"], "config-check", docker_env())
        app = config["services"]["app"]
        assert app["init"] is True
        volumes = {v["target"]: v for v in app["volumes"]}
        assert volumes["/usr/local/cargo/registry"]["type"] == "volume"
        assert volumes["/app/target"]["type"] == "volume"
        assert volumes["/app"]["type"] == "bind"
        command = " ".join(app["command"])
        assert command.startswith("systemfd --no-pid --backlog 128 -s http::0.0.0.0:")
        watcher = "watchexec" if answers["dev_watcher"] == "watchexec" else "cargo watch"
        assert f"-- {watcher}" in command and "--locked" in command


def read_devcontainer(project: Path) -> dict:
    """`devcontainer read-configuration`: the configuration as editors resolve it (offline)."""
    result = subprocess.run(
        [require("devcontainer"), "read-configuration", "--workspace-folder", str(project),
         "--log-format", "json"],
        capture_output=True, text=True, check=False, env=docker_env(), timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]
    return json.loads(result.stdout)


def devcontainer_compose_files(resolved: dict) -> list[Path]:
    """The compose files a resolved configuration names, relative to its devcontainer.json."""
    config = resolved["configuration"]
    folder = Path(config["configFilePath"]["fsPath"]).parent
    files = config["dockerComposeFile"]
    return [(folder / file).resolve() for file in ([files] if isinstance(files, str) else files)]


# read-configuration asks the engine for an existing dev container (`docker ps`) and
# fails when none answers, hence the docker tier.
@pytest.mark.docker
@pytest.mark.parametrize("answers", [{}, {"project_name": "Desk Two", "port": "8080"}])
def test_devcontainer_opens_the_compose_service_that_serves_the_port(
    answers: dict[str, str], cookies: Any, docker_engine: str
) -> None:
    require_compose()
    project = render(cookies, **answers)
    port = int(default_answers(**answers)["port"])
    resolved = read_devcontainer(project)
    config = resolved["configuration"]
    files = devcontainer_compose_files(resolved)
    assert files == [project / "compose.yaml"], files
    env = {k: v for k, v in docker_env().items() if k != "PORT"}
    compose = compose_config(project, files, "devcontainer-check", env)
    service = compose["services"][config["service"]]
    # The workspace the editor opens is the project, mounted where the service works.
    workspace = resolved["workspace"]["workspaceFolder"]
    mounts = {v["target"]: v for v in service["volumes"]}
    assert mounts[workspace]["type"] == "bind"
    assert Path(mounts[workspace]["source"]) == project
    assert service["working_dir"] == workspace
    # The service keeps its own command (the dev loop) and listens on the forwarded port.
    assert config.get("overrideCommand") is False
    assert service["environment"]["PORT"] == str(port)
    assert [int(p["target"]) for p in service["ports"]] == [port]
    assert config["forwardPorts"] == [port]


def test_compose_up_refuses_a_service_without_host_networking(
    rendered_variants: list[Path],
) -> None:
    config = {"services": {"app": {"image": "x"}, "db": {"network_mode": "host"}}}
    with pytest.raises(NotHostNetworking, match="app"):
        check_host_networking(config)
    with pytest.raises(NotHostNetworking, match="networks"):
        check_host_networking(
            {"services": {"app": {"network_mode": "host"}}, "networks": {"default": {}}}
        )
    # The generated compose file itself (a bridge network and port mappings) is refused
    # before anything starts; without compose this fails under CI=true.
    require_compose()
    project = rendered_variants[0]
    name = f"refused-check-{uuid.uuid4().hex[:8]}"
    with pytest.raises(NotHostNetworking, match="app"):
        compose_up(project, [project / "compose.yaml"], name)


# ---------------------------------------------------------------- runtime images
def cell_id(cell: tuple[str, str]) -> str:
    return "-".join(cell)


@pytest.mark.docker
@pytest.mark.parametrize("cell", RUNTIME_CELLS, ids=cell_id)
def test_runtime_image_answers_curl_as_a_non_root_user(cell, runtime_images, run_container) -> None:
    image = runtime_images.get(*cell)
    container = run_container(image.tag)
    assert container.get("/Pete") == (200, "Hello Pete!")
    assert container.get("/health")[0] == 200
    rows = docker("top", container.name, "-eo", "pid,uid").stdout.splitlines()[1:]
    uids = [row.split()[1] for row in rows]
    assert uids and all(uid != "0" for uid in uids), uids
    user = docker("inspect", "--format", "{{.Config.User}}", image.tag).stdout.strip()
    assert user and not user.startswith(("0", "root")), user


@pytest.mark.docker
@pytest.mark.parametrize("cell", RUNTIME_CELLS, ids=cell_id)
def test_healthcheck_works_without_a_shell_and_names_resolve_from_etc_hosts(
    cell, runtime_images, run_container, tmp_path: Path
) -> None:
    """The binary probes itself (HEALTHCHECK, compose, Kubernetes), and resolves a host
    name from the container's /etc/hosts: in scratch too (static glibc, nsswitch.conf)."""
    image = runtime_images.get(*cell)
    container = run_container(image.tag, "--add-host", "service.test.internal:127.0.0.1")
    health = json.loads(
        docker("inspect", "--format", "{{json .Config.Healthcheck}}", image.tag).stdout
    )
    binary = binary_path(image)
    assert health["Test"] == ["CMD", binary, "healthcheck"], health
    for probe in (["healthcheck"], ["healthcheck", "live"]):
        docker("exec", container.name, binary, *probe)
    url = f"http://service.test.internal:{container.port}/readyz"
    docker("exec", container.name, binary, "healthcheck", url)
    unknown = docker(
        "exec", container.name, binary, "healthcheck", "http://no-such-host.invalid:1/", check=False
    )
    assert unknown.returncode == 1
    if cell[1] == "scratch":
        certs = extract(image.tag, "/etc/ssl/certs/ca-certificates.crt", tmp_path / "certs")
        assert "BEGIN CERTIFICATE" in certs.read_text()
        passwd = extract(image.tag, "/etc/passwd", tmp_path / "passwd").read_text()
        assert passwd.startswith("nonroot:x:65532:65532:"), passwd


# What src/main.rs logs once SIGTERM reached the service and its drain began.
STOP_BEGINS_LOG = "SIGTERM received: readiness 503, draining"
# The stop tests shorten the drain (readiness 503 while requests are still served,
# src/lib.rs drain_and_stop; 3 s by default) so that drain plus the in-flight request
# fit well inside STOP_GRACE; the defaults' sum stays below Docker's 10 s (src/config.rs).
STOP_DRAIN = ("-e", "DRAIN_SECS=1")
STOP_GRACE = "5"


def wait_until_stop_begins(container: str, port: int, timeout: float = 10) -> None:
    """SIGTERM reached the service (it logged so) and its server stopped listening.

    The log line comes when the drain begins (src/main.rs); after it src/lib.rs pauses
    accepting and waits its hand-over delay; a refused connection comes only once the
    server is stopping, which is when a server that does not wait for its connections
    drops them.
    """
    deadline = time.monotonic() + timeout
    while STOP_BEGINS_LOG not in docker("logs", container, check=False).stdout:
        if time.monotonic() > deadline:
            logs = docker("logs", container, check=False).stdout[-3000:]
            raise AssertionError(f"docker stop did not reach the service:\n{logs}")
        time.sleep(0.05)
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
        except ConnectionRefusedError:
            return
        except OSError:
            pass
        time.sleep(0.02)
    raise AssertionError(f"127.0.0.1:{port} still listens {timeout} s after SIGTERM")


# A route the generated service does not have, added to a copy for the in-flight test:
# its handler is observably busy (it answers only once the whole body has arrived).
BUSY_ROUTE = """
#[actix_web::post("/echo")]
async fn echo(body: web::Bytes) -> web::Bytes {
    body
}
"""


@pytest.fixture(scope="module")
def busy_image(runtime_images, cookies_session: Any) -> Build:
    """The default cell's image, built from a copy with BUSY_ROUTE (on the warm cache)."""
    runtime_images.get("bookworm", "debian-slim")
    project = render(cookies_session)
    add_route(project, "echo", BUSY_ROUTE)
    return build_image(project, f"template-test/busy-{SLUG}:bookworm-debian-slim")


def stop_and_wait_until_it_begins(container: Container) -> subprocess.Popen:
    """`docker stop` with STOP_GRACE seconds of grace, more than STOP_DRAIN plus a short
    request (a service that ignores SIGTERM is killed, exit 137), returned once the
    service has really begun to stop: drained, and no longer listening."""
    stopper = subprocess.Popen(
        [*docker_cmd(), "stop", "-t", STOP_GRACE, container.name],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=docker_env(),
    )
    wait_until_stop_begins(container.name, container.port)
    return stopper


def assert_stopped_cleanly(stopper: subprocess.Popen, container: Container) -> None:
    assert stopper.wait(timeout=60) == 0, stopper.stderr.read() if stopper.stderr else ""
    state = json.loads(docker("inspect", "--format", "{{json .State}}", container.name).stdout)
    assert state["ExitCode"] == 0, f"not a clean exit on SIGTERM: {state}"
    assert not state["OOMKilled"]


@pytest.mark.docker
def test_docker_stop_finishes_the_in_flight_request_and_exits_by_itself(
    busy_image: Build, run_container
) -> None:
    container = run_container(busy_image.tag, *STOP_DRAIN)
    conn = socket.create_connection(("127.0.0.1", container.port), timeout=30)
    conn.sendall(
        b"POST /echo HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n"
        b"Expect: 100-continue\r\nContent-Length: 10\r\n\r\n12345"
    )
    # The server sends 100 Continue when it hands the request to its handler, which
    # then waits for the rest of the body: the request is in flight, as a fact.
    answer = b""
    while b"\r\n\r\n" not in answer:
        chunk = conn.recv(65536)
        assert chunk, f"closed before 100 Continue: {answer!r}"
        answer += chunk
    assert answer.startswith(b"HTTP/1.1 100 Continue\r\n\r\n"), answer
    answer = answer.removeprefix(b"HTTP/1.1 100 Continue\r\n\r\n")
    stopper = stop_and_wait_until_it_begins(container)
    conn.sendall(b"67890")
    try:
        while chunk := conn.recv(65536):
            answer += chunk
    except ConnectionResetError as err:
        raise AssertionError(f"the in-flight request was dropped: {answer!r}") from err
    finally:
        conn.close()
    assert_stopped_cleanly(stopper, container)
    assert answer.startswith(b"HTTP/1.1 200"), answer
    assert answer.endswith(b"1234567890"), answer


@pytest.mark.docker
@pytest.mark.parametrize("cell", RUNTIME_CELLS, ids=cell_id)
def test_docker_stop_reaches_the_service_and_it_exits_cleanly(
    cell, runtime_images, run_container
) -> None:
    """Every image delivers SIGTERM to the service (PID 1 in distroless and scratch)."""
    container = run_container(runtime_images.get(*cell).tag, *STOP_DRAIN)
    assert container.get("/Pete") == (200, "Hello Pete!")
    stopper = stop_and_wait_until_it_begins(container)
    assert_stopped_cleanly(stopper, container)


def docker_cmd() -> list[str]:
    return [docker_cli()]


def extract(image: str, path: str, dest: Path) -> Path:
    """Copy one file (following symlinks) out of an image."""
    name = f"extract-{uuid.uuid4().hex[:8]}"
    docker("create", "--name", name, image)
    try:
        docker("cp", "-L", f"{name}:{path}", str(dest))
    finally:
        docker("rm", name, check=False)
    return dest


def version_needs(binary: Path) -> dict[str, set[str]]:
    """{library: symbol versions the binary requires from it} (.gnu.version_r)."""
    out = subprocess.run(
        [require("readelf"), "-V", "--wide", str(binary)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    needs: dict[str, set[str]] = {}
    section = out.split("Version needs section", 1)[-1] if "Version needs section" in out else ""
    current = None
    for line in section.splitlines():
        if m := re.search(r"File: (\S+)", line):
            current = m.group(1)
            needs[current] = set()
        elif (m := re.search(r"Name: (\S+)", line)) and current:
            needs[current].add(m.group(1))
    return needs


def version_definitions(library: Path) -> set[str]:
    out = subprocess.run(
        [require("readelf"), "-V", "--wide", str(library)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    section = out.split("Version definition section", 1)[-1].split("Version needs section")[0]
    return set(re.findall(r"Name: (\S+)", section))


def dynamic_info(binary: Path) -> tuple[list[str], bool]:
    """(NEEDED libraries, has an ELF interpreter)."""
    readelf = require("readelf")
    dynamic = subprocess.run(
        [readelf, "-d", "--wide", str(binary)], capture_output=True, text=True, check=True
    ).stdout
    headers = subprocess.run(
        [readelf, "-l", "--wide", str(binary)], capture_output=True, text=True, check=True
    ).stdout
    return re.findall(r"\(NEEDED\).*\[(.+?)\]", dynamic), "INTERP" in headers


LIBRARY_DIRS = ("/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu", "/lib64", "/lib", "/usr/lib")


def binary_path(build: Build) -> str:
    entrypoint = json.loads(
        docker("inspect", "--format", "{{json .Config.Entrypoint}}", build.tag).stdout
    )
    return entrypoint[0]


@pytest.mark.docker
@pytest.mark.parametrize("cell", RUNTIME_CELLS, ids=cell_id)
def test_runtime_image_provides_every_glibc_symbol_version_the_binary_needs(
    cell,
    runtime_images,
    tmp_path: Path,
) -> None:
    image = runtime_images.get(*cell)
    binary = extract(image.tag, binary_path(image), tmp_path / "service")
    needed, interpreted = dynamic_info(binary)
    if cell[1] == "scratch":
        assert not needed and not interpreted, f"scratch needs a static binary: {needed}"
        return
    needs = version_needs(binary)
    assert "libc.so.6" in needs, needs
    for library, versions in needs.items():
        copy = None
        for directory in LIBRARY_DIRS:
            probe = docker(
                "create", "--name", f"probe-{uuid.uuid4().hex[:8]}", image.tag, check=False
            )
            name = probe.stdout.strip()
            try:
                if (
                    docker(
                        "cp",
                        "-L",
                        f"{name}:{directory}/{library}",
                        str(tmp_path / library),
                        check=False,
                    ).returncode
                    == 0
                ):
                    copy = tmp_path / library
                    break
            finally:
                docker("rm", name, check=False)
        assert copy, f"{library} (needed by the binary) is missing from {image.tag}"
        missing = versions - version_definitions(copy)
        assert not missing, f"{image.tag}: {library} lacks {sorted(missing)}"


@pytest.mark.docker
def test_one_line_route_change_recompiles_only_the_service_crate(
    runtime_images,
    run_container,
    tmp_path: Path,
    cookies: Any,
) -> None:
    runtime_images.get("bookworm", "debian-slim")  # the cold build fills the cache mounts
    project = render(cookies)
    routes = project / "src" / "routes.rs"
    original = routes.read_text()
    assert '"Hello {name}!"' in original, "the greeting moved: update this test"
    builds = []
    for word in (f"Hi{uuid.uuid4().hex[:6]}", f"Hey{uuid.uuid4().hex[:6]}"):
        routes.write_text(original.replace('"Hello {name}!"', f'"{word} {{name}}!"'))
        builds.append((word, build_image(project, f"template-test/rebuild:{word.lower()}")))
    # The first build may finish a cold cache; the second is the one-line change.
    word, build = builds[-1]
    assert compiled_crates(build.output) == [SLUG], compiled_crates(build.output)
    assert run_container(build.tag).get("/Pete") == (200, f"{word} Pete!")


@pytest.mark.docker
@pytest.mark.parametrize("variant", ["debian-slim", "scratch"])
def test_ci_can_wrap_a_prebuilt_binary_in_the_same_runtime_image(
    runtime_images,
    run_container,
    tmp_path: Path,
    cookies: Any,
    variant: str,
) -> None:
    # scratch takes the static binary that CI's build job makes for that answer.
    built = runtime_images.get("bookworm", variant)
    project = render(cookies, runtime_image=variant)
    (project / "target" / "release").mkdir(parents=True)
    extract(built.tag, binary_path(built), project / "target" / "release" / SLUG)
    build = build_image(
        project, f"template-test/prebuilt:{variant}", "--build-arg", "BINARY=prebuilt"
    )
    assert compiled_crates(build.output) == []
    assert run_container(build.tag).get("/Pete") == (200, "Hello Pete!")


# ---------------------------------------------------------------- dev loop
class Hammer:
    """Sends GET /Pete on a new connection every 100 ms and records each outcome."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.results: list[tuple[str, object]] = []
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()

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


# Building the dev image is the tier's most expensive step (cargo install of the
# watcher); the cargo-watch image joins the matrix only when asked for with
# TEMPLATE_TEST_ALL_WATCHERS=1 (not a skip: CI treats skips as missing prerequisites).
WATCHERS = ["watchexec"] + (
    ["cargo-watch"] if os.environ.get("TEMPLATE_TEST_ALL_WATCHERS") == "1" else []
)


@pytest.mark.docker
@pytest.mark.parametrize("watcher", WATCHERS)
def test_dev_loop_serves_the_edit_without_refusing_a_request(
    watcher: str,
    base_images,
    tmp_path: Path,
    cookies: Any,
) -> None:
    require_compose()
    project = render(cookies, dev_watcher=watcher)
    port = free_port()
    override = host_network_override(tmp_path / "compose.host-network.yaml", ["app"])
    files = [project / "compose.yaml", override]
    name = f"template-dev-{uuid.uuid4().hex[:8]}"
    compose_env = {"PORT": str(port), "RUST_LOG": "info"}
    dev = None
    try:
        dev = compose_up(project, files, name, compose_env, "--build")
        assert dev.networks() == [], "compose created a network"
        wait_for_http(port, "/Pete", timeout=1800, expect="Hello Pete!")

        routes = project / "src" / "routes.rs"
        original = routes.read_text()
        assert '"Hello {name}!"' in original, "the greeting moved: update this test"
        with Hammer(port) as hammer:
            time.sleep(0.5)
            routes.write_text(original.replace('"Hello {name}!"', '"Howdy {name}!"'))
            wait_for_http(port, "/Pete", timeout=600, expect="Howdy Pete!")
            time.sleep(0.5)
        outcomes = [kind for kind, _ in hammer.results]
        assert outcomes.count("refused") == 0, "refused during reload"
        assert set(outcomes) == {"answered"}, [r for r in hammer.results if r[0] != "answered"]
        bodies = {value[1] for kind, value in hammer.results}
        assert bodies <= {"Hello Pete!", "Howdy Pete!"} and "Howdy Pete!" in bodies, bodies
        assert len(outcomes) >= 5

        dev.compose("down")
        assert dev.running_containers() == [], "down left containers behind"

        # The named volumes keep the registry and target/: no dependency is rebuilt.
        dev.compose("up", "-d")
        wait_for_http(port, "/Pete", timeout=600, expect="Howdy Pete!")
        logs = dev.compose("logs", "app").stdout
        assert [c for c in compiled_crates(logs) if c != SLUG] == [], logs[-3000:]
        dev.compose("down")
        assert dev.running_containers() == []
    finally:
        if dev is not None:
            dev.compose("down", "-v", "--remove-orphans", check=False)


@pytest.mark.docker
def test_devcontainer_up_serves_pete_inside_the_dev_container(
    base_images, tmp_path: Path, cookies: Any
) -> None:
    """What an editor does: `devcontainer up` on the generated project, then a request from
    inside the dev container. The loopback-only compose override is added through an
    override configuration (the user's devcontainer.json plus one more compose file)."""
    devcontainer = require("devcontainer")
    require_compose()
    project = render(cookies)
    port = free_port()
    name = f"template-devc-{uuid.uuid4().hex[:8]}"
    resolved = read_devcontainer(project)
    override = host_network_override(tmp_path / "compose.host-network.yaml", ["app"])
    files = [*devcontainer_compose_files(resolved), override]
    user_config = json.loads((project / ".devcontainer" / "devcontainer.json").read_text())
    override_config = tmp_path / "devcontainer.host-network.json"
    override_config.write_text(
        json.dumps(user_config | {"dockerComposeFile": [str(f) for f in files]})
    )
    # The CLI names the compose project after COMPOSE_PROJECT_NAME; PORT reaches compose.
    env = docker_env() | {"PORT": str(port), "COMPOSE_PROJECT_NAME": name}
    check_host_networking(compose_config(project, files, name, env))
    cli = [
        devcontainer,
        "--workspace-folder", str(project),
        "--override-config", str(override_config),
        "--docker-path", docker_cli(),
    ]  # fmt: skip
    compose = ComposeProject(project, files, name, env)
    try:
        up = subprocess.run(
            [cli[0], "up", *cli[1:], "--log-format", "json"],
            capture_output=True, text=True, check=False, env=env, timeout=3600,
        )  # fmt: skip
        outcome = json.loads(up.stdout.strip().splitlines()[-1]) if up.stdout.strip() else {}
        assert outcome.get("outcome") == "success", up.stdout[-3000:] + up.stderr[-3000:]
        assert outcome["composeProjectName"] == name
        assert outcome["remoteWorkspaceFolder"] == resolved["workspace"]["workspaceFolder"]
        assert compose.networks() == [], "compose created a network"
        # The dev loop compiles the service first; then curl inside the container.
        wait_for_http(port, "/Pete", timeout=1800, expect="Hello Pete!")
        # In the text log format, the command's own output is exec's stdout.
        inside = subprocess.run(
            [cli[0], "exec", *cli[1:], "curl", "-sS", f"http://127.0.0.1:{port}/Pete"],
            capture_output=True, text=True, check=False, env=env, timeout=120,
        )  # fmt: skip
        assert (inside.returncode, inside.stdout) == (0, "Hello Pete!"), inside.stderr[-3000:]
    finally:
        compose.compose("down", "-v", "--remove-orphans", check=False)
        label = f"label=com.docker.compose.project={name}"
        for kind in ("container", "volume"):
            left = docker(kind, "ls", "-aq" if kind == "container" else "-q",
                          "--filter", label, check=False).stdout.split()  # fmt: skip
            if left:
                docker(kind, "rm", "-f", *left, check=False)
