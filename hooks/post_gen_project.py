"""Tidy the generated service, then prove it works: build it, start it, ask it to greet Pete.

cookiecutter runs this file after generating; copier runs the same file through
`_tasks` on the first copy only. The `verify` answer picks how: `cargo` builds
and runs the binary, `docker` builds and runs the runtime image, `auto` uses
cargo when it is installed, else Docker, else prints how to verify later, and
`none` does nothing. Each step prints its duration; a failed step prints the
tail of its log and the log's path (outside the project, which the engine
removes when this hook fails) and exits non-zero.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

# Rendered by the engine; tojson escapes quotes, so any answer parses safely.
ANSWERS: dict[str, str] = json.loads(r"""{{ cookiecutter | tojson }}""")
PROJECT = Path.cwd()
SLUG = ANSWERS["slug"]
STARTUP_TIMEOUT_S = 60
STOP_TIMEOUT_S = 15
# Tests on machines whose Docker engine has no bridge network set this to "host".
DOCKER_NETWORK = os.environ.get("TEMPLATE_VERIFY_DOCKER_NETWORK", "")


class StepFailed(Exception):
    """A verification step failed; its message is the one line to show."""


def say(message: str) -> None:
    print(f"[verify] {message}", flush=True)


class Verification:
    """Runs named steps, timing each and keeping every command's output in one log."""

    def __init__(self) -> None:
        self.log_dir = Path(tempfile.mkdtemp(prefix=f"{SLUG}-verify-"))
        self.log = self.log_dir / "verify.log"

    @contextmanager
    def step(self, name: str) -> Iterator[None]:
        started = time.monotonic()
        say(f"{name} ...")
        try:
            yield
        except (StepFailed, OSError, subprocess.CalledProcessError) as failure:
            say(f"FAILED: {name}: {failure}")
            self.show_log_tail()
            raise StepFailed(f"{name} failed") from failure
        say(f"{name}: ok ({time.monotonic() - started:.1f} s)")

    def run(self, command: list[str], env: dict[str, str] | None = None) -> None:
        with self.log.open("a") as log:
            log.write(f"$ {' '.join(command)}\n")
            log.flush()
            result = subprocess.run(
                command, cwd=PROJECT, env=env, stdout=log, stderr=subprocess.STDOUT, check=False
            )
        if result.returncode != 0:
            raise StepFailed(f"`{' '.join(command)}` exited with {result.returncode}")

    def start(self, command: list[str], env: dict[str, str] | None = None) -> subprocess.Popen:
        log = self.log.open("a")
        log.write(f"$ {' '.join(command)} &\n")
        log.flush()
        return subprocess.Popen(command, cwd=PROJECT, env=env, stdout=log, stderr=subprocess.STDOUT)

    def show_log_tail(self, lines: int = 20) -> None:
        if self.log.exists():
            for line in self.log.read_text(errors="replace").splitlines()[-lines:]:
                print(f"    {line}", flush=True)
        say(f"full log: {self.log}")


def free_loopback_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def http_get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode(errors="replace")


def wait_until_serving(base_url: str, process: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise StepFailed(f"the service exited with {process.returncode} before answering")
        try:
            http_get(f"{base_url}/health")
            return
        except OSError:
            time.sleep(0.2)
    raise StepFailed(f"nothing answered on {base_url} within {STARTUP_TIMEOUT_S} s")


def check_answers(base_url: str) -> None:
    expectations = [("/Pete", "Hello Pete!"), ("/", None), ("/health", None)]
    for path, body in expectations:
        status, text = http_get(f"{base_url}{path}")
        if status != 200:
            raise StepFailed(f"GET {path} answered {status}, expected 200")
        if body is not None and text.strip() != body:
            raise StepFailed(f"GET {path} answered {text.strip()!r}, expected {body!r}")
        say(f"GET {path} -> {status} {text.strip()[:40]!r}")


def stop_gracefully(process: subprocess.Popen) -> None:
    process.send_signal(signal.SIGTERM)
    try:
        code = process.wait(timeout=STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        process.kill()
        raise StepFailed(f"the service ignored SIGTERM for {STOP_TIMEOUT_S} s") from None
    if code != 0:
        raise StepFailed(f"the service exited with {code} after SIGTERM, expected 0")


def cargo_binary_path() -> Path:
    metadata = subprocess.run(
        ["cargo", "metadata", "--format-version", "1", "--no-deps", "--locked"],
        cwd=PROJECT,
        capture_output=True,
        text=True,
        check=True,
    )
    return Path(json.loads(metadata.stdout)["target_directory"]) / "debug" / SLUG


def verify_with_cargo(verification: Verification) -> None:
    with verification.step("cargo build --locked"):
        verification.run(["cargo", "build", "--locked"])
    port = free_loopback_port()
    base_url = f"http://127.0.0.1:{port}"
    env = dict(os.environ, HOST="127.0.0.1", PORT=str(port), RUST_LOG="info")
    with verification.step(f"start the service on {base_url}"):
        process = verification.start([str(cargo_binary_path())], env=env)
        try:
            wait_until_serving(base_url, process)
        except StepFailed:
            process.kill()
            raise
    try:
        with verification.step("curl /Pete, / and /health"):
            check_answers(base_url)
    finally:
        with verification.step("stop it with SIGTERM"):
            stop_gracefully(process)


def verify_with_docker(verification: Verification) -> None:
    image = f"{SLUG}:verify"
    network = ["--network", DOCKER_NETWORK] if DOCKER_NETWORK else []
    with verification.step(f"docker build -t {image} ."):
        # Cache mounts need BuildKit, which Docker before 23.0 enables only on request.
        env = dict(os.environ, DOCKER_BUILDKIT="1")
        verification.run(["docker", "build", *network, "-t", image, "."], env=env)
    port = free_loopback_port()
    base_url = f"http://127.0.0.1:{port}"
    container = f"{SLUG}-verify-{port}"
    publish = [] if DOCKER_NETWORK == "host" else ["-p", f"127.0.0.1:{port}:{port}"]
    with verification.step(f"docker run {image} on {base_url}"):
        verification.run(
            [
                "docker",
                "run",
                "-d",
                "--rm",
                "--name",
                container,
                *network,
                *publish,
                "-e",
                f"PORT={port}",
                image,
            ]
        )
        wait_until_serving(base_url)
    try:
        with verification.step("curl /Pete, / and /health"):
            check_answers(base_url)
    finally:
        with verification.step("docker stop"):
            verification.run(["docker", "stop", container])


def docker_engine_running() -> bool:
    if not shutil.which("docker"):
        return False
    probe = subprocess.run(["docker", "info"], capture_output=True, check=False)
    return probe.returncode == 0


def choose_mode(requested: str) -> str | None:
    """The tool to verify with, or None when there is nothing to verify with."""
    if requested in ("cargo", "docker"):
        return requested
    if shutil.which("cargo"):
        return "cargo"
    if docker_engine_running():
        return "docker"
    return None


def updating_with_cruft() -> bool:
    """cruft runs this hook again when it renders templates for update and diff."""
    if "_commit" not in ANSWERS:
        return False
    try:
        parent = Path(f"/proc/{os.getppid()}/cmdline").read_bytes().split(b"\0")
    except OSError:
        parent = subprocess.run(
            ["ps", "-o", "args=", "-p", str(os.getppid())], capture_output=True, check=False
        ).stdout.split()
    return b"create" not in parent


def remove_empty_directories() -> None:
    """cookiecutter cannot skip a directory whose name renders empty, so optional
    directories keep plain names, their files are switched by name, and the
    directories left empty are removed here."""
    directories = sorted((p for p in PROJECT.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts))
    for directory in directories:
        if not any(directory.iterdir()):
            directory.rmdir()


def print_how_to_verify_later() -> None:
    say("nothing to verify with: neither cargo nor a running Docker engine was found.")
    say(f"verify later with: cd {SLUG} && cargo build --locked && cargo run")
    say(f"  then, in another shell: curl http://localhost:{ANSWERS['port']}/Pete")


def main() -> int:
    remove_empty_directories()
    requested = ANSWERS["verify"]
    if requested == "none" or updating_with_cruft():
        return 0
    mode = choose_mode(requested)
    if mode is None:
        print_how_to_verify_later()
        return 0
    verification = Verification()
    say(f"verifying {SLUG} with {mode}; log: {verification.log}")
    started = time.monotonic()
    try:
        if mode == "cargo":
            verify_with_cargo(verification)
        else:
            verify_with_docker(verification)
    except StepFailed as failure:
        say(f"verification failed: {failure}; log: {verification.log}")
        return 1
    say(f"SUCCESS: {SLUG} answered 'Hello Pete!' ({time.monotonic() - started:.1f} s in all)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
