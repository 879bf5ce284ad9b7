"""The generated Rust service.

Fast tier: the committed Cargo.lock matches Cargo.toml and renders in cargo's own
order for any slug (cargo resolves, nothing compiles).

Slow tier: cargo fmt, clippy, test and the release build of the default project; the
release binary answering on HOST:PORT, logging JSON lines with request ids and stopping
on SIGTERM; SIGTERM under load (readiness 503 during the drain, every accepted request
answered, exit 0 in time); the `healthcheck` subcommand; a real Prometheus scraping
`/metrics`; the binary serving on a socket that systemfd passes in, and requests made
while it restarts under systemfd answered instead of refused; one non-default answer
set checked the same way.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from harness.processes import free_port, http_get, require, run, sample, wait_until
from harness.render import add_route, bake, default_answers
from harness.service import LISTENFD_LOG, Server, service_env, systemfd_command

# Started under systemfd: restarts the binary ("$0") each time it exits, once the
# test creates the file `go`, and records the running binary's pid in `pid`.
RESTART_LOOP = """
while :; do
  "$0" & echo $! > pid.tmp && mv pid.tmp pid
  wait $!
  until [ -e go ]; do sleep 0.05; done
  rm -f go
done
"""
NON_DEFAULT = {"project_name": "Svc 42 Demo", "slug": "svc-42-demo", "port": "8080"}


# ---------------------------------------------------------------- helpers


def env_for(port: int | None = None, **variables: str) -> dict[str, str]:
    """No drain by default: the tests that restart the service need no load balancer."""
    return service_env(port, **{"RUST_LOG": "info", "DRAIN_SECS": "0", **variables})


@contextmanager
def serving(
    binary: Path, tmp_path: Path, port: int | None = None, env: dict[str, str] | None = None
) -> Iterator[Server]:
    """The binary bound to a loopback port (a free one unless given; env_for(port) unless
    `env` is given), logging to tmp_path/service.log, once it answers; stopped afterwards."""
    port = port or free_port()
    log = tmp_path / "service.log"
    with Server([str(binary)], port, log, env=env or env_for(port)) as server:
        server.wait_until_answering()
        yield server


def get_with_request_id(port: int, path: str, request_id: str) -> tuple[int, str | None]:
    """GET with an X-Request-Id header: (status, the X-Request-Id of the answer)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path, headers={"X-Request-Id": request_id})
        response = conn.getresponse()
        response.read()
        return response.status, response.getheader("X-Request-Id")
    finally:
        conn.close()


def stops_on_sigterm(server: Server) -> None:
    """SIGTERM; the idle service exits 0 well before Docker and Kubernetes kill (10 s)."""
    server.send_signal(signal.SIGTERM)
    assert server.wait(timeout=10) == 0, server.output()


def json_lines(log: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 30) -> None:
    wait_until(lambda: condition() or None, timeout, what, interval=0.02)


def lock_after_cargo_resolves(project: Path, *flags: str) -> str:
    run([require("cargo"), "metadata", "--format-version", "1", *flags], cwd=project)
    return (project / "Cargo.lock").read_text()


# ---------------------------------------------------------------- fast tier


def test_committed_lock_matches_cargo_toml(default_project: Path) -> None:
    """`--locked` fails when Cargo.toml needs a lock change (maintainer/refresh_cargo_lock.py)."""
    lock_after_cargo_resolves(default_project, "--locked")


@pytest.mark.parametrize("slug", ["aa", "hello-service", "zz-top-9"])
def test_rendered_lock_is_exactly_what_cargo_writes(slug: str, cookies: Any) -> None:
    """The service's own entry sorts where cargo puts it, so no cargo command rewrites the
    lock of a fresh project (slugs sorting first, in the middle and last)."""
    project = bake(cookies, **default_answers(slug=slug))
    rendered = (project / "Cargo.lock").read_text()
    assert f'[[package]]\nname = "{slug}"\nversion = "0.1.0"\n' in rendered
    assert lock_after_cargo_resolves(project) == rendered


# ---------------------------------------------------------------- slow tier


@pytest.fixture(scope="module")
def release_binary(default_project: Path, cargo_env: dict[str, str]) -> Path:
    require("cargo")
    run(["cargo", "build", "--release", "--locked"], cwd=default_project, env=cargo_env)
    binary = Path(cargo_env["CARGO_TARGET_DIR"]) / "release" / default_project.name
    assert binary.is_file()
    return binary


@pytest.fixture(scope="module")
def non_default_project(cookies_session: Any) -> Path:
    return bake(cookies_session, **default_answers(**NON_DEFAULT))


# cargo's checks of a generated project: (arguments, texts its output must hold as
# (stream, text)).
CARGO_CHECKS = [
    pytest.param(["fmt", "--check"], [], id="rustfmt-clean"),
    pytest.param(
        ["clippy", "--all-targets", "--locked", "--", "-D", "warnings"],
        [],
        id="clippy-warnings-denied",
    ),
    # The integration tests ran (a renamed or emptied tests/ would pass silently).
    pytest.param(
        ["test", "--locked"],
        [("stderr", "Running tests/api.rs"), ("stdout", "test a_name_is_greeted ... ok")],
        id="tests-pass",
    ),
]


@pytest.mark.slow
@pytest.mark.parametrize("project_name", ["default_project", "non_default_project"])
@pytest.mark.parametrize(("cargo_args", "expected"), CARGO_CHECKS)
def test_generated_code_passes_cargo(
    cargo_args: list[str],
    expected: list[tuple[str, str]],
    project_name: str,
    request: pytest.FixtureRequest,
    cargo_env: dict[str, str],
) -> None:
    project = request.getfixturevalue(project_name)
    result = run([require("cargo"), *cargo_args], cwd=project, env=cargo_env)
    for stream, text in expected:
        assert text in getattr(result, stream), getattr(result, stream)[-3000:]


@pytest.mark.slow
def test_binary_answers_on_host_and_port_and_stops_on_sigterm(
    release_binary: Path, tmp_path: Path
) -> None:
    with serving(release_binary, tmp_path) as proc:
        port, log = proc.port, tmp_path / "service.log"
        assert http_get(port, "/Pete") == (200, "Hello Pete!")
        assert http_get(port, "/") == (200, "Hello World!")
        assert http_get(port, "/health") == (200, '{"status":"ok"}')
        assert http_get(port, "/Pete/and/friends")[0] == 404
        assert get_with_request_id(port, "/Paul", "trace-7") == (200, "trace-7")
        stops_on_sigterm(proc)
    output = log.read_text()
    assert f"listening on http://127.0.0.1:{port} (bound HOST:PORT)" in output
    assert "SIGTERM received: readiness 503" in output
    # One JSON line per request, with the matched route template and the request id.
    requests = [line for line in json_lines(log) if line.get("message") == "request"]
    paul = [line for line in requests if line.get("request_id") == "trace-7"]
    assert len(paul) == 1, requests
    assert paul[0]["method"] == "GET" and paul[0]["route"] == "/{name}", paul
    assert paul[0]["status"] == 200 and isinstance(paul[0]["latency_us"], int), paul
    assert {line["route"] for line in requests} >= {"/{name}", "/", "/health", "unmatched"}


# A route the generated service does not have, added to a copy for the panic test.
PANIC_ROUTE = """
#[get("/fail/now")]
async fn fail() -> &'static str {
    panic!("handler failed on purpose")
}
"""


@pytest.fixture(scope="module")
def panicking_binary(cookies_session: Any, cargo_env: dict[str, str]) -> Path:
    """A debug build of the default project plus PANIC_ROUTE, under its own slug so that
    its binary does not replace the default project's in the shared target dir."""
    project = bake(cookies_session, **default_answers(slug="panic-probe"))
    add_route(project, "fail", PANIC_ROUTE)
    run([require("cargo"), "build", "--locked"], cwd=project, env=cargo_env)
    return Path(cargo_env["CARGO_TARGET_DIR"]) / "debug" / project.name


@pytest.mark.slow
def test_a_panicking_handler_is_logged_with_its_request_id_and_the_binary_keeps_serving(
    panicking_binary: Path, tmp_path: Path
) -> None:
    with serving(panicking_binary, tmp_path) as proc:
        assert get_with_request_id(proc.port, "/fail/now", "panic-7") == (500, "panic-7")
        for _ in range(20):  # every worker still serves
            assert http_get(proc.port, "/Pete") == (200, "Hello Pete!")
        stops_on_sigterm(proc)
    logged = json_lines(tmp_path / "service.log")
    lines = [line for line in logged if line.get("request_id") == "panic-7"]
    panics = [line for line in lines if "handler failed on purpose" in str(line["message"])]
    assert len(panics) == 1 and panics[0]["level"] == "ERROR", lines
    requests = [line for line in lines if line["message"] == "request"]
    assert len(requests) == 1 and requests[0]["status"] == 500, lines


@pytest.mark.slow
def test_sigterm_under_load_drains_then_finishes_every_accepted_request(
    release_binary: Path, tmp_path: Path
) -> None:
    """Readiness is 503 at once while requests are still served for DRAIN_SECS; then the
    service stops accepting, answers what it accepted and exits 0 within drain + timeout."""
    port, drain, timeout = free_port(), 2.0, 5
    log = tmp_path / "service.log"
    env = env_for(port, DRAIN_SECS=str(int(drain)), SHUTDOWN_TIMEOUT_SECS=str(timeout))
    stop = threading.Event()
    results: list[tuple[float, object]] = []

    def load() -> None:
        while not stop.is_set():
            try:
                answer: object = http_get(port, "/Pete", timeout=20)
            except (ConnectionRefusedError, ConnectionResetError) as err:
                # Refused once the listener is closed; reset when the stop closes it
                # with the connection still in the kernel's queue, never accepted.
                answer = type(err).__name__
            except OSError as err:
                answer = err
            results.append((time.monotonic(), answer))

    with serving(release_binary, tmp_path, port, env) as proc:
        clients = [threading.Thread(target=load) for _ in range(8)]
        for thread in clients:
            thread.start()
        wait_for(lambda: len(results) > 200, "load before the signal")
        signalled = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        readiness = sample(lambda: http_get(port, "/readyz")[0], drain - 0.5, start=signalled)
        healthcheck = [str(release_binary), "healthcheck"]
        ready_probe = subprocess.run(healthcheck, env=env, capture_output=True, check=False)
        live_probe = subprocess.run(
            [*healthcheck, "live"], env=env, capture_output=True, check=False
        )
        code = proc.wait(timeout=drain + timeout + 5)
        stopped = time.monotonic()
        stop.set()
        for thread in clients:
            thread.join(timeout=30)
    assert code == 0, log.read_text()
    assert stopped - signalled < drain + timeout, "the service outlived drain + timeout"
    # 503 within moments of the signal (the signal task may run after a request or
    # two), then for the rest of the drain.
    first_503 = next(i for i, (_, status) in enumerate(readiness) if status == 503)
    assert readiness[first_503][0] < 0.5, readiness
    assert {status for _, status in readiness[first_503:]} == {503}, readiness
    assert ready_probe.returncode == 1 and live_probe.returncode == 0
    during_drain = [a for t, a in results if signalled <= t <= signalled + drain - 0.2]
    assert len(during_drain) > 50 and all(a == (200, "Hello Pete!") for a in during_drain)
    ok = (200, "Hello Pete!")
    not_accepted = ("ConnectionRefusedError", "ConnectionResetError")
    failures = [
        a for t, a in results if a != ok and not (a in not_accepted and t > signalled + drain)
    ]
    assert not failures, f"{len(failures)} requests failed: {failures[:5]}"
    # Every request the service handled reached its client.
    handled = [
        line
        for line in json_lines(log)
        if line.get("message") == "request" and line.get("route") == "/{name}"
    ]
    assert len(handled) == sum(1 for _, a in results if a == ok)


@pytest.mark.slow
def test_healthcheck_subcommand_probes_the_running_service(
    release_binary: Path, tmp_path: Path
) -> None:
    port = free_port()
    env = env_for(port)

    def healthcheck(*args: str) -> int:
        cmd = [str(release_binary), "healthcheck", *args]
        return subprocess.run(cmd, env=env, capture_output=True, check=False).returncode

    assert healthcheck() == 1, "nothing listens yet"
    with serving(release_binary, tmp_path, port, env):
        assert healthcheck() == 0
        assert healthcheck("live") == 0
        assert healthcheck(f"http://localhost:{port}/readyz") == 0  # a name, resolved
        assert healthcheck(f"http://localhost:{port}/nowhere/at/all") == 1
        assert healthcheck("bogus") == 1


PROMETHEUS_CONFIG = """
global:
  scrape_interval: 1s
scrape_configs:
  - job_name: service
    static_configs:
      - targets: ["127.0.0.1:{port}"]
"""


@pytest.mark.slow
def test_a_real_prometheus_scrapes_requests_by_route_template(
    release_binary: Path, tmp_path: Path
) -> None:
    prometheus = require("prometheus")
    port, prometheus_port = free_port(), free_port()
    config = tmp_path / "prometheus.yml"
    config.write_text(PROMETHEUS_CONFIG.replace("{port}", str(port)))
    prometheus_cmd = [
        prometheus,
        f"--config.file={config}",
        f"--storage.tsdb.path={tmp_path / 'tsdb'}",
        f"--web.listen-address=127.0.0.1:{prometheus_port}",
    ]

    def query(expression: str) -> list[dict[str, object]] | None:
        """The result, or None while Prometheus starts (503 until its storage is ready)."""
        path = "/api/v1/query?" + urllib.parse.urlencode({"query": expression})
        try:
            status, body = http_get(prometheus_port, path)
        except OSError:
            return None
        return json.loads(body)["data"]["result"] if status == 200 else None

    def series_value(expression: str) -> float:
        result = query(expression)
        return float(result[0]["value"][1]) if result and len(result) == 1 else -1

    prometheus_log = tmp_path / "prometheus.log"
    with (
        serving(release_binary, tmp_path, port),
        Server(prometheus_cmd, prometheus_port, prometheus_log) as prometheus_proc,
    ):
        for name in ("Pete", "Paul", "Mary"):
            assert http_get(port, f"/{name}")[0] == 200
        greeted = 'http_requests_total{job="service",method="GET",route="/{name}",status="200"}'
        wait_for(lambda: series_value(greeted) == 3, "Prometheus to scrape 3 greetings", 60)
        assert prometheus_proc.poll() is None, prometheus_log.read_text()
        # The raw paths are never labels: one series for every name.
        assert query('{__name__=~"http_.*", route=~".*(Pete|Paul|Mary).*"}') == []
        buckets = query('http_request_duration_seconds_bucket{route="/{name}",le="+Inf"}')
        assert [float(b["value"][1]) for b in buckets] == [3.0]
        assert series_value('process_resident_memory_bytes{job="service"}') > 0


@pytest.mark.slow
def test_binary_serves_on_the_socket_systemfd_passes(release_binary: Path, tmp_path: Path) -> None:
    systemfd = require("systemfd")
    port, unused_port = free_port(), free_port()
    log = tmp_path / "systemfd.log"
    # PORT names another port: the service must use the inherited socket instead.
    cmd = systemfd_command(systemfd, port, str(release_binary))
    with Server(cmd, port, log, env=env_for(unused_port)) as proc:
        proc.wait_until_answering()
        assert http_get(port, "/Pete") == (200, "Hello Pete!")
    assert f"listening on http://127.0.0.1:{port} ({LISTENFD_LOG})" in log.read_text()


@pytest.mark.slow
@pytest.mark.parametrize(
    ("backlog", "waiting_clients"),
    # systemfd's default listen backlog is 1: the kernel queues two connections and
    # drops further SYNs, whose clients retry after 1 s, 3 s, ... (late, not refused).
    # A larger --backlog queues a browser's parallel requests at once.
    [(None, 1), (128, 5)],
    ids=["default-backlog", "backlog-128"],
)
def test_requests_during_a_restart_under_systemfd_are_answered(
    release_binary: Path, tmp_path: Path, backlog: int | None, waiting_clients: int
) -> None:
    """systemfd keeps the socket open while no process accepts: connections wait in its
    backlog and the next process answers them, as in the dev container's hot reload."""
    systemfd = require("systemfd")
    port = free_port()
    log = tmp_path / "systemfd.log"
    pid_file, go_file = tmp_path / "pid", tmp_path / "go"
    cmd = systemfd_command(
        systemfd, port, "sh", "-c", RESTART_LOOP, str(release_binary), backlog=backlog
    )

    def current_pid() -> int:
        return int(pid_file.read_text())

    def restart_and_wait_for_new_pid(old: int) -> int:
        go_file.touch()
        wait_for(lambda: pid_file.exists() and current_pid() != old, "the restarted binary")
        return current_pid()

    with Server(cmd, port, log, cwd=tmp_path, env=env_for()) as proc:
        proc.wait_until_answering()
        old = current_pid()

        # 1. Requests sent while no process runs at all are answered after the restart.
        os.kill(old, signal.SIGTERM)
        wait_for(lambda: not Path(f"/proc/{old}").exists(), "the binary to exit")
        results: list[object] = []
        sent = threading.Semaphore(0)

        def client() -> None:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            try:
                conn.request("GET", "/Pete")  # connects: the socket still listens
                sent.release()
                response = conn.getresponse()
                results.append((response.status, response.read().decode()))
            except OSError as err:
                sent.release()
                results.append(err)
            finally:
                conn.close()

        clients = [threading.Thread(target=client) for _ in range(waiting_clients)]
        for thread in clients:
            thread.start()
        for _ in clients:
            assert sent.acquire(timeout=30)
        assert current_pid() == old, "the binary restarted before the requests were sent"
        new = restart_and_wait_for_new_pid(old)
        for thread in clients:
            thread.join(timeout=60)
        assert results == [(200, "Hello Pete!")] * waiting_clients

        # 2. A client that keeps sending requests across three restarts sees no error.
        stop = threading.Event()
        answers: list[object] = []

        def steady_client() -> None:
            while not stop.is_set() and len(answers) < 5000:
                try:
                    answers.append(http_get(port, "/Pete", timeout=30))
                except OSError as err:
                    answers.append(err)

        steady = threading.Thread(target=steady_client)
        steady.start()
        try:
            for restart in range(3):
                wait_for(lambda: len(answers) >= 5, "requests before the restart")
                os.kill(new, signal.SIGTERM)
                new = restart_and_wait_for_new_pid(new)
                # Answered by the new process: the old one may still answer a few in its
                # hand-over delay, and the test may not end before the new one logs.
                starts = restart + 3  # the first, the gated restart, and this one
                wait_for(
                    lambda k=starts: log.read_text().count(f"({LISTENFD_LOG})") >= k,
                    "the restarted binary to take the socket",
                )
                answers_before = len(answers)
                wait_for(lambda n=answers_before: len(answers) > n + 5, "requests after it")
        finally:
            stop.set()
            steady.join(timeout=60)
        failures = [answer for answer in answers if answer != (200, "Hello Pete!")]
        assert not failures, f"{len(failures)} of {len(answers)} failed: {failures[:5]}"

    output = log.read_text()
    # Every start (the first, the gated restart, three more) took systemfd's socket.
    assert output.count(f"({LISTENFD_LOG})") == 5, output
