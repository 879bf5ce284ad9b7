"""The generated container files: statically correct for every answer, and real.

Unmarked tests are the fast tier: hadolint on every Dockerfile for every relevant
answer, the compose file against the compose spec (and `docker compose config`),
devcontainer.json. Tests marked `docker` build and run the images with a real
engine on host networking (see tests/docker_harness.py and docs/containers.md).
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

import pytest

pytest.register_assert_rewrite("docker_harness")

from docker_harness import (  # noqa: E402
    RUNTIME_CELLS,
    Build,
    NotHostNetworking,
    build_image,
    check_host_networking,
    compiled_crates,
    compose_available,
    compose_config,
    compose_up,
    docker,
    docker_cli,
    docker_env,
    host_network_override,
    http_get,
    render,
    require_compose,
    wait_for_http,
)
from support import TEMPLATE_DIR, default_answers, free_port, require  # noqa: E402

# Session fixtures: docker_engine, base_images, runtime_images, run_container.
pytest_plugins = ["docker_harness"]

SLUG = default_answers()["slug"]
STANDIN_SCRIPT = TEMPLATE_DIR / "scripts" / "standin-images.py"

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
def rendered_variants(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    root = tmp_path_factory.mktemp("container-files")
    return [render(root / answer_id(answers), **answers) for answers in CONTAINER_ANSWERS]


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
    listing = subprocess.run(
        [
            "python3",
            "-c",
            "import importlib.util,sys;"
            f"s=importlib.util.spec_from_file_location('s','{STANDIN_SCRIPT}');"
            "m=importlib.util.module_from_spec(s);s.loader.exec_module(m);"
            f"print('\\n'.join(m.all_images('{default_answers()['rust_version']}')))",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert named, "no FROM lines found"
    assert named <= set(listing), f"images without a stand-in: {named - set(listing)}"


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
    if not compose_available():
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


# The part of the Dev Container spec (containers.dev, devContainer.base.schema.json)
# that a compose-based configuration uses; no schema file ships offline.
DEVCONTAINER_COMPOSE_SCHEMA = {
    "type": "object",
    "required": ["dockerComposeFile", "service", "workspaceFolder"],
    "properties": {
        "name": {"type": "string"},
        "dockerComposeFile": {
            "type": ["string", "array"],
            "items": {"type": "string"},
            "minItems": 1,
        },
        "service": {"type": "string", "minLength": 1},
        "runServices": {"type": "array", "items": {"type": "string"}},
        "workspaceFolder": {"type": "string", "pattern": "^/"},
        "overrideCommand": {"type": "boolean"},
        "shutdownAction": {"enum": ["none", "stopCompose"]},
        "forwardPorts": {
            "type": "array",
            "items": {"type": ["integer", "string"], "minimum": 0, "maximum": 65535},
        },
        "postCreateCommand": {"type": ["string", "array", "object"]},
        "customizations": {"type": "object"},
    },
    "additionalProperties": False,
}


def test_devcontainer_opens_the_compose_service(rendered_variants: list[Path]) -> None:
    import jsonschema

    for project in rendered_variants:
        config = json.loads((project / ".devcontainer" / "devcontainer.json").read_text())
        jsonschema.validate(config, DEVCONTAINER_COMPOSE_SCHEMA)
        # What VS Code needs to open a compose-based dev container.
        for key, kind in (
            ("dockerComposeFile", (str, list)),
            ("service", str),
            ("workspaceFolder", str),
        ):
            assert isinstance(config.get(key), kind), key
        files = config["dockerComposeFile"]
        for file in [files] if isinstance(files, str) else files:
            assert (project / ".devcontainer" / file).resolve().is_file(), file
        compose = (project / "compose.yaml").read_text()
        assert re.search(rf"^  {re.escape(config['service'])}:$", compose, flags=re.M)
        assert re.search(rf"- \.:{re.escape(config['workspaceFolder'])}$", compose, flags=re.M)
        assert config["forwardPorts"] == [int(default_answers()["port"])]


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
    if compose_available():
        project = rendered_variants[0]
        with pytest.raises(NotHostNetworking):
            compose_up(project, [project / "compose.yaml"], "refused-check")


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


def wait_until_stop_begins(container: str, port: int, timeout: float = 10) -> None:
    """SIGTERM reached the service: it stopped accepting or logged its shutdown."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
        except ConnectionRefusedError:
            return
        except OSError:
            pass
        if "graceful shutdown" in docker("logs", container, check=False).stdout:
            return
        time.sleep(0.05)
    raise AssertionError("docker stop did not reach the service (no shutdown seen)")


@pytest.mark.docker
@pytest.mark.parametrize("cell", RUNTIME_CELLS, ids=cell_id)
def test_docker_stop_finishes_the_in_flight_request_and_exits_by_itself(
    cell,
    runtime_images,
    run_container,
) -> None:
    image = runtime_images.get(*cell)
    # A short drain: readiness turns 503 but requests are still accepted for a second.
    container = run_container(image.tag, "-e", "DRAIN_SECS=1")
    # A request in flight: its body is still being uploaded when SIGTERM arrives.
    conn = socket.create_connection(("127.0.0.1", container.port), timeout=30)
    conn.sendall(
        b"GET /Pete HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n"
        b"Content-Length: 10\r\n\r\n12345"
    )
    time.sleep(0.3)
    # Five seconds of grace, more than the drain plus this request: a service that
    # ignores SIGTERM is killed (exit 137).
    stopper = subprocess.Popen(
        [*docker_cmd(), "stop", "-t", "5", container.name],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    wait_until_stop_begins(container.name, container.port)
    conn.sendall(b"67890")
    answer = b""
    while chunk := conn.recv(65536):
        answer += chunk
    conn.close()
    assert stopper.wait(timeout=60) == 0
    assert answer.startswith(b"HTTP/1.1 200"), answer
    assert answer.endswith(b"Hello Pete!"), answer
    state = json.loads(docker("inspect", "--format", "{{json .State}}", container.name).stdout)
    assert state["ExitCode"] == 0, f"not a clean exit on SIGTERM: {state}"
    assert not state["OOMKilled"]


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
) -> None:
    runtime_images.get("bookworm", "debian-slim")  # the cold build fills the cache mounts
    project = render(tmp_path / "rebuild")
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
    variant: str,
) -> None:
    # scratch takes the static binary that CI's build job makes for that answer.
    built = runtime_images.get("bookworm", variant)
    project = render(tmp_path / "prebuilt", runtime_image=variant)
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
) -> None:
    require_compose()
    project = render(tmp_path / "dev", dev_watcher=watcher)
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
