"""The generated runtime images, built and run on the suite's engine (docker tier).

Each (Debian release, runtime variant) cell of harness/containers.py RUNTIME_CELLS is
built once per session: it answers curl as a non-root user, probes itself without a
shell, provides every glibc symbol version its binary needs, and stops cleanly on
`docker stop`, finishing a request in flight. A one-line change recompiles only the
service crate, and CI can wrap a prebuilt binary in the same image. Containers run on
host networking (harness/containers.py, docs/containers.md).
"""

from __future__ import annotations

import json
import re
import socket
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from harness.containers import (
    RUNTIME_CELLS,
    Build,
    Container,
    ContainerRunner,
    RuntimeImages,
    build_image,
    compiled_crates,
    container_logs,
    render,
)
from harness.engine import docker, docker_cli, docker_env
from harness.processes import free_port, http_post, refuses_connections, require, wait_until
from harness.render import DEFAULT_SLUG, add_route

pytestmark = pytest.mark.docker

LIBRARY_DIRS = ("/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu", "/lib64", "/lib", "/usr/lib")


def cell_id(cell: tuple[str, str]) -> str:
    return "-".join(cell)


def extract(image: str, path: str, dest: Path) -> Path:
    """Copy one file (following symlinks) out of an image."""
    name = f"extract-{uuid.uuid4().hex[:8]}"
    docker("create", "--name", name, image)
    try:
        docker("cp", "-L", f"{name}:{path}", str(dest))
    finally:
        docker("rm", name, check=False)
    return dest


def binary_path(build: Build) -> str:
    entrypoint = json.loads(
        docker("inspect", "--format", "{{json .Config.Entrypoint}}", build.tag).stdout
    )
    return entrypoint[0]


def readelf(*args: str) -> str:
    return subprocess.run(
        [require("readelf"), *args], capture_output=True, text=True, check=True
    ).stdout


def version_needs(binary: Path) -> dict[str, set[str]]:
    """{library: symbol versions the binary requires from it} (.gnu.version_r)."""
    out = readelf("-V", "--wide", str(binary))
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
    out = readelf("-V", "--wide", str(library))
    section = out.split("Version definition section", 1)[-1].split("Version needs section")[0]
    return set(re.findall(r"Name: (\S+)", section))


def dynamic_info(binary: Path) -> tuple[list[str], bool]:
    """(NEEDED libraries, has an ELF interpreter)."""
    dynamic = readelf("-d", "--wide", str(binary))
    headers = readelf("-l", "--wide", str(binary))
    return re.findall(r"\(NEEDED\).*\[(.+?)\]", dynamic), "INTERP" in headers


def library_from_image(image: str, library: str, dest: Path) -> Path | None:
    """The first of LIBRARY_DIRS/<library> in the image, copied to `dest`; None if none."""
    name = docker("create", "--name", f"probe-{uuid.uuid4().hex[:8]}", image).stdout.strip()
    try:
        for directory in LIBRARY_DIRS:
            copied = docker("cp", "-L", f"{name}:{directory}/{library}", str(dest), check=False)
            if copied.returncode == 0:
                return dest
        return None
    finally:
        docker("rm", name, check=False)


# ---------------------------------------------------------------- every cell
@pytest.mark.parametrize("cell", RUNTIME_CELLS, ids=cell_id)
def test_runtime_image_answers_curl_as_a_non_root_user(
    cell: tuple[str, str], runtime_images: RuntimeImages, run_container: ContainerRunner
) -> None:
    image = runtime_images.get(*cell)
    container = run_container(image.tag)
    assert container.get("/Pete") == (200, "Hello Pete!")
    assert container.get("/health")[0] == 200
    rows = docker("top", container.name, "-eo", "pid,uid").stdout.splitlines()[1:]
    uids = [row.split()[1] for row in rows]
    assert uids and all(uid != "0" for uid in uids), uids
    user = docker("inspect", "--format", "{{.Config.User}}", image.tag).stdout.strip()
    assert user and not user.startswith(("0", "root")), user


@pytest.mark.parametrize("cell", RUNTIME_CELLS, ids=cell_id)
def test_healthcheck_works_without_a_shell_and_names_resolve_from_etc_hosts(
    cell: tuple[str, str],
    runtime_images: RuntimeImages,
    run_container: ContainerRunner,
    tmp_path: Path,
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


@pytest.mark.parametrize("cell", RUNTIME_CELLS, ids=cell_id)
def test_runtime_image_provides_every_glibc_symbol_version_the_binary_needs(
    cell: tuple[str, str], runtime_images: RuntimeImages, tmp_path: Path
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
        copy = library_from_image(image.tag, library, tmp_path / library)
        assert copy, f"{library} (needed by the binary) is missing from {image.tag}"
        missing = versions - version_definitions(copy)
        assert not missing, f"{image.tag}: {library} lacks {sorted(missing)}"


# ---------------------------------------------------------------- docker stop
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
    started = time.monotonic()
    wait_until(
        lambda: STOP_BEGINS_LOG in docker("logs", container, check=False).stdout or None,
        timeout,
        "docker stop did not reach the service",
        interval=0.05,
        details=lambda: container_logs(container),
    )

    wait_until(
        lambda: refuses_connections(port),
        max(timeout - (time.monotonic() - started), 0),
        f"127.0.0.1:{port} still listens after SIGTERM",
        interval=0.02,
    )


# A route the generated service does not have, added to a copy for the in-flight test:
# its handler is observably busy (it answers only once the whole body has arrived).
BUSY_ROUTE = """
#[actix_web::post("/echo")]
async fn echo(body: web::Bytes) -> web::Bytes {
    body
}
"""


@pytest.fixture(scope="module")
def busy_image(runtime_images: RuntimeImages, cookies_session: Any) -> Build:
    """The default cell's image, built from a copy with BUSY_ROUTE (on the warm cache)."""
    runtime_images.get("bookworm", "debian-slim")
    project = render(cookies_session)
    add_route(project, "echo", BUSY_ROUTE)
    return build_image(project, f"template-test/busy-{DEFAULT_SLUG}:bookworm-debian-slim")


def stop_and_wait_until_it_begins(container: Container) -> subprocess.Popen:
    """`docker stop` with STOP_GRACE seconds of grace, more than STOP_DRAIN plus a short
    request (a service that ignores SIGTERM is killed, exit 137), returned once the
    service has really begun to stop: drained, and no longer listening."""
    stopper = subprocess.Popen(
        [docker_cli(), "stop", "-t", STOP_GRACE, container.name],
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


def test_docker_stop_finishes_the_in_flight_request_and_exits_by_itself(
    busy_image: Build, run_container: ContainerRunner
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


@pytest.mark.parametrize("cell", RUNTIME_CELLS, ids=cell_id)
def test_docker_stop_reaches_the_service_and_it_exits_cleanly(
    cell: tuple[str, str], runtime_images: RuntimeImages, run_container: ContainerRunner
) -> None:
    """Every image delivers SIGTERM to the service (PID 1 in distroless and scratch)."""
    container = run_container(runtime_images.get(*cell).tag, *STOP_DRAIN)
    assert container.get("/Pete") == (200, "Hello Pete!")
    stopper = stop_and_wait_until_it_begins(container)
    assert_stopped_cleanly(stopper, container)


# ---------------------------------------------------------------- rebuilds
def test_one_line_route_change_recompiles_only_the_service_crate(
    runtime_images: RuntimeImages, run_container: ContainerRunner, cookies: Any
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
    try:
        assert compiled_crates(build.output) == [DEFAULT_SLUG], compiled_crates(build.output)
        assert run_container(build.tag).get("/Pete") == (200, f"{word} Pete!")
    finally:
        run_container.remove_all()  # its containers first, then the per-run image tags
        docker("image", "rm", *(each.tag for _, each in builds), check=False)


@pytest.mark.parametrize("variant", ["debian-slim", "scratch"])
def test_ci_can_wrap_a_prebuilt_binary_in_the_same_runtime_image(
    runtime_images: RuntimeImages, run_container: ContainerRunner, cookies: Any, variant: str
) -> None:
    # scratch takes the static binary that CI's build job makes for that answer.
    built = runtime_images.get("bookworm", variant)
    project = render(cookies, runtime_image=variant)
    (project / "target" / "release").mkdir(parents=True)
    extract(built.tag, binary_path(built), project / "target" / "release" / DEFAULT_SLUG)
    build = build_image(
        project, f"template-test/prebuilt:{variant}", "--build-arg", "BINARY=prebuilt"
    )
    assert compiled_crates(build.output) == []
    assert run_container(build.tag).get("/Pete") == (200, "Hello Pete!")


def image_size(tag: str) -> int:
    return int(docker("image", "inspect", "--format", "{{.Size}}", tag).stdout)


def test_postgres_image_is_live_without_a_database_and_not_ready_until_one_answers(
    runtime_images: RuntimeImages,
    cookies: Any,
    run_container: ContainerRunner,
    record_property: Any,
) -> None:
    """database=postgres, default runtime: without DATABASE_URL the binary stops with one
    line naming it; with a database that refuses connections it starts, /livez is 200,
    /readyz 503, a greeting 503, and the password never reaches the log."""
    project = render(cookies, database="postgres")
    tag = f"template-test/{project.name}:postgres"
    build_image(project, tag)
    unset = docker("run", "--rm", "--network", "host", tag, check=False)
    assert unset.returncode == 2, unset
    assert "DATABASE_URL" in unset.stderr and len(unset.stderr.strip().splitlines()) == 1, unset

    password = "never-printed-7f3a"
    closed = free_port()  # nothing listens there: the database is down
    container = run_container(
        tag, "-e", f"DATABASE_URL=postgres://postgres:{password}@127.0.0.1:{closed}/app"
    )
    assert container.get("/livez")[0] == 200
    assert container.get("/readyz")[0] == 503
    assert container.get("/Pete") == (200, "Hello Pete!")
    assert http_post(container.port, "/greetings/Pete", timeout=30) == (
        503,
        '{"error":"database unavailable"}',
    )
    assert password not in container_logs(container.name, tail=100_000)

    sizes = {
        "none": image_size(runtime_images.get("bookworm", "debian-slim").tag),
        "postgres": image_size(tag),
    }
    for database, size in sizes.items():
        record_property(f"image_size_{database}_mb", round(size / 1e6, 1))
    print(f"\nbookworm debian-slim image: {sizes['none'] / 1e6:.1f} MB without a database, "
          f"{sizes['postgres'] / 1e6:.1f} MB with postgres")  # fmt: skip
    assert sizes["postgres"] > sizes["none"], sizes
