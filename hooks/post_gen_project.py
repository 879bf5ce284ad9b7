"""Tidy the generated service, then prove it works: build it, start it, ask it to greet Pete.

cookiecutter renders this file and runs it after generating. copier runs it
unrendered through `_tasks` on the first copy only, with `--answers-file`
naming the answers it just recorded. The `verify` answer picks how: `cargo`
builds and runs the binary, `docker` builds and runs the runtime image, `auto`
uses cargo when it is installed, else Docker, else prints how to verify later,
and `none` does nothing. Each step prints its duration; a failed step prints
the tail of its log and the log's path (outside the project), then what the
engine does with the project and how to keep it.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

# cookiecutter renders this; under copier it stays as written and is not read.
RENDERED_ANSWERS = r"""{{ cookiecutter | tojson }}"""
PROJECT = Path.cwd()
# The generated tree's folder name, spelled so that rendering this file leaves it alone.
TEMPLATE_TREE = "{" * 2 + "cookiecutter.slug" + "}" * 2
STARTUP_TIMEOUT_S = float(os.environ.get("TEMPLATE_VERIFY_STARTUP_TIMEOUT", "60"))
STOP_TIMEOUT_S = 15
# Tests on machines whose Docker engine has no bridge network set this to "host".
DOCKER_NETWORK = os.environ.get("TEMPLATE_VERIFY_DOCKER_NETWORK", "")
# Folders that hold only optional files. cookiecutter creates them even when every
# file inside is switched off; copier skips them (`_exclude` in copier.yml). Each folder
# comes before its parent: they are removed in this order, each only once empty.
OPTIONAL_DIRECTORIES = tuple(
    ".github/workflows .github ci deploy/base deploy/overlays/staging deploy/overlays/production"
    " deploy/overlays deploy .cargo .sqlx migrations".split()
)
# What a failed step's log says, and the cause to name for it (first match wins).
LIKELY_CAUSES = (
    (
        r"failed to download|Unable to update registry|failed to get .* as a dependency"
        r"|--offline was specified|Couldn't resolve host|failed to query replaced source"
        r"|spurious network error|no matching package named",
        "cargo could not fetch crates: no network to the crates registry "
        "(or a proxy it is not configured for)",
    ),
    (
        r"Cannot connect to the Docker daemon|docker daemon is not running"
        r"|permission denied while trying to connect to the Docker daemon",
        "no Docker engine answers (start one, or use verify=cargo)",
    ),
    (r"Address already in use|port is already allocated", "the port is already in use"),
    (r"could not compile|error\[E\d+\]|error: could not", "the service does not build"),
)


@dataclass(frozen=True)
class Run:
    """What this run was asked for, and by which engine."""

    answers: dict[str, str]
    engine: str  # "cookiecutter" or "copier"

    @property
    def slug(self) -> str:
        return self.answers["slug"]


class StepFailed(Exception):
    """A verification step failed; its message is the one line to show."""


def say(message: str) -> None:
    print(f"[verify] {message}", flush=True)


class Verification:
    """Runs named steps, timing each and keeping every command's output in one log."""

    def __init__(self, slug: str) -> None:
        self.log = Path(tempfile.mkdtemp(prefix=f"{slug}-verify-")) / "verify.log"

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

    def likely_cause(self) -> str | None:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return next((cause for pattern, cause in LIKELY_CAUSES if re.search(pattern, text)), None)


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


def wait_until_serving(base_url: str, exited: Callable[[], int | None]) -> None:
    """Polls /health until it answers; `exited()` returns an exit code once the service died."""
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        code = exited()
        if code is not None:
            raise StepFailed(f"the service exited with {code} before answering")
        try:
            http_get(f"{base_url}/health")
            return
        except OSError:
            time.sleep(0.2)
    raise StepFailed(f"nothing answered on {base_url} within {STARTUP_TIMEOUT_S:.0f} s")


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


def cargo_binary_path(slug: str) -> Path:
    metadata = subprocess.run(
        ["cargo", "metadata", "--format-version", "1", "--no-deps", "--locked"],
        cwd=PROJECT,
        capture_output=True,
        text=True,
        check=True,
    )
    return Path(json.loads(metadata.stdout)["target_directory"]) / "debug" / slug


def verify_with_cargo(verification: Verification, slug: str) -> None:
    with verification.step("cargo build --locked"):
        verification.run(["cargo", "build", "--locked"])
    port = free_loopback_port()
    base_url = f"http://127.0.0.1:{port}"
    # No load balancer watches this check: no drain before the stop (DRAIN_SECS).
    env = dict(os.environ, HOST="127.0.0.1", PORT=str(port), RUST_LOG="info", DRAIN_SECS="0")
    process = verification.start([str(cargo_binary_path(slug))], env=env)
    try:
        with verification.step(f"start the service on {base_url}"):
            wait_until_serving(base_url, process.poll)
        with verification.step("curl /Pete, / and /health"):
            check_answers(base_url)
    finally:
        if process.poll() is None:
            with verification.step("stop it with SIGTERM"):
                stop_gracefully(process)


def docker_state(container: str) -> int | None:
    """The container's exit code once it stopped, None while it runs."""
    result = subprocess.run(
        ["docker", "inspect", container], capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        return -1
    state = json.loads(result.stdout)[0]["State"]
    return None if state["Running"] else int(state["ExitCode"])


def verify_with_docker(verification: Verification, slug: str) -> None:
    image = f"{slug}:verify"
    network = ["--network", DOCKER_NETWORK] if DOCKER_NETWORK else []
    with verification.step(f"docker build -t {image} ."):
        # Cache mounts need BuildKit, which Docker before 23.0 enables only on request.
        env = dict(os.environ, DOCKER_BUILDKIT="1")
        verification.run(["docker", "build", *network, "-t", image, "."], env=env)
    port = free_loopback_port()
    base_url = f"http://127.0.0.1:{port}"
    container = f"{slug}-verify-{port}"
    publish = [] if DOCKER_NETWORK == "host" else ["-p", f"127.0.0.1:{port}:{port}"]
    passed = False
    try:
        with verification.step(f"docker run {image} on {base_url}"):
            verification.run(
                ["docker", "run", "-d", "--name", container, *network, *publish,
                 "-e", f"PORT={port}", "-e", "DRAIN_SECS=0", image]
            )  # fmt: skip
            wait_until_serving(base_url, lambda: docker_state(container))
        with verification.step("curl /Pete, / and /health"):
            check_answers(base_url)
        with verification.step("docker stop"):
            verification.run(["docker", "stop", container])
        passed = True
    finally:
        # Whatever failed, nothing is left running; a failed image is not left behind.
        subprocess.run(["docker", "rm", "-f", container], capture_output=True, check=False)
        if passed:
            say(f"the image {image} is kept (remove it with: docker rmi {image})")
        else:
            subprocess.run(["docker", "rmi", "-f", image], capture_output=True, check=False)
            say(f"removed the container {container} and the image {image}")


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


def updating_with_cruft(answers: dict[str, str]) -> bool:
    """cruft runs this hook again when it renders templates for update and diff."""
    if "_commit" not in answers:
        return False
    try:
        parent = Path(f"/proc/{os.getppid()}/cmdline").read_bytes().split(b"\0")
    except OSError:
        parent = subprocess.run(
            ["ps", "-o", "args=", "-p", str(os.getppid())], capture_output=True, check=False
        ).stdout.split()
    return b"create" not in parent


def preexisting_record() -> Path:
    """Where hooks/pre_gen_project.py noted the optional folders the project already had."""
    digest = hashlib.sha256(str(PROJECT).encode()).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / f"template-preexisting-{digest}.json"


def remove_optional_directories_left_empty() -> None:
    """Only the optional folders this run created, only when empty; nothing else."""
    record = preexisting_record()
    had = set(json.loads(record.read_text())) if record.exists() else set()
    record.unlink(missing_ok=True)
    for name in OPTIONAL_DIRECTORIES:
        directory = PROJECT / name
        if name not in had and directory.is_dir() and not any(directory.iterdir()):
            directory.rmdir()


def files_the_template_wrote(answers: dict[str, str]) -> set[Path]:
    """The project's files as the template names them for these answers (copier only)."""
    import jinja2  # copier's own dependency

    environment = jinja2.Environment(undefined=jinja2.StrictUndefined)
    # copier runs this file from the template it rendered.
    tree = Path(__file__).resolve().parents[1] / TEMPLATE_TREE
    written = set()
    for source in tree.rglob("*"):
        if source.is_file():
            parts = [
                environment.from_string(part).render(cookiecutter=answers, _copier_conf={})
                for part in source.relative_to(tree).parts
            ]
            if all(parts):
                written.add(PROJECT.joinpath(*parts))
    return written


def birth_time(path: Path) -> float | None:
    """When the file or folder was created, where the system records it."""
    born = getattr(path.stat(), "st_birthtime", None)  # macOS, BSD
    if born is None:
        result = subprocess.run(["stat", "-c", "%.9W", str(path)], capture_output=True, text=True)
        born = float(result.stdout) if result.returncode == 0 and result.stdout.strip() else 0
    return born or None


def copier_started() -> float | None:
    """Start of the copier process that runs this task (Linux), as a Unix time. The
    kernel counts it in clock ticks since boot; /proc/stat's boot time is whole seconds,
    too coarse, so the boot clock gives the offset."""
    try:
        fields = Path(f"/proc/{os.getppid()}/stat").read_text().rsplit(")", 1)[1].split()
        since_boot = int(fields[19]) / os.sysconf("SC_CLK_TCK")
        return time.time() - time.clock_gettime(time.CLOCK_BOOTTIME) + since_boot
    except (OSError, IndexError, ValueError, AttributeError):
        return None


# copier imports for far longer than this before it writes anything, and the kernel
# rounds a process's start down to 10 ms: a folder born this soon after the start
# estimate is the user's.
STARTUP_MARGIN_S = 0.05


def created_by_this_run(directory: Path, started: float | None) -> bool:
    """Unknown counts as the user's: nothing the user had is ever removed."""
    born = birth_time(directory)
    return started is not None and born is not None and born > started + STARTUP_MARGIN_S


def undo_copier_files(answers: dict[str, str], answers_file: Path) -> int:
    """copier removes a destination it created, but not what it wrote into an existing
    folder: remove the template's files and folders that this run created (a user's file
    of the same name, kept at copier's overwrite prompt, stays), folders once empty."""
    started = copier_started()
    removed = 0
    for path in sorted(files_the_template_wrote(answers) | {PROJECT / answers_file}):
        if path.is_file() and PROJECT in path.parents and created_by_this_run(path, started):
            path.unlink()
            removed += 1
            for parent in path.parents:
                if parent == PROJECT or any(parent.iterdir()):
                    break
                if not created_by_this_run(parent, started):
                    break
                parent.rmdir()
    return removed


def explain_failure(run: Run, verification: Verification, answers_file: Path | None) -> None:
    """The last lines: what happened to the project, why, and how to keep it."""
    cause = verification.likely_cause()
    if cause:
        say(f"likely cause: {cause}")
    if run.engine == "copier" and answers_file is not None:
        removed = undo_copier_files(run.answers, answers_file)
        say(
            f"the project was removed because verification failed: copier deletes {PROJECT} "
            f"if it created it; in a folder that already existed, this check removed the "
            f"{removed} files the template wrote and left everything else as it was."
        )
        say(
            "to keep the project, run again with --data verify=none (verify later), or --skip-tasks"
        )
    else:
        say(
            f"the project {run.slug} is being removed by cookiecutter because verification "
            "failed (unless you passed --keep-project-on-failure)."
        )
        say("to keep it, run again with verify=none (verify later), or --keep-project-on-failure")


def print_how_to_verify_later(run: Run) -> None:
    say("nothing to verify with: neither cargo nor a running Docker engine was found.")
    say(f"verify later with: cd {run.slug} && cargo build --locked && cargo run")
    say(f"  then, in another shell: curl http://localhost:{run.answers['port']}/Pete")


def verify(run: Run, answers_file: Path | None) -> int:
    mode = choose_mode(run.answers["verify"])
    if mode is None:
        print_how_to_verify_later(run)
        return 0
    verification = Verification(run.slug)
    say(f"verifying {run.slug} with {mode}; log: {verification.log}")
    started = time.monotonic()
    try:
        if mode == "cargo":
            verify_with_cargo(verification, run.slug)
        else:
            verify_with_docker(verification, run.slug)
    except StepFailed as failure:
        say(f"verification failed: {failure}; log: {verification.log}")
        explain_failure(run, verification, answers_file)
        return 1
    say(f"SUCCESS: {run.slug} answered 'Hello Pete!' ({time.monotonic() - started:.1f} s in all)")
    return 0


def read_run(argv: list[str]) -> tuple[Run, Path | None]:
    parser = argparse.ArgumentParser(description="Verify a freshly generated service.")
    parser.add_argument("--answers-file", type=Path, help="copier's answers file (copier runs)")
    args = parser.parse_args(argv)
    if args.answers_file is None:
        return Run(json.loads(RENDERED_ANSWERS), "cookiecutter"), None
    import yaml  # copier's own dependency

    recorded = yaml.safe_load((PROJECT / args.answers_file).read_text())
    answers = {key: str(value) for key, value in recorded.items() if not key.startswith("_")}
    return Run(answers, "copier"), args.answers_file


def main(argv: list[str]) -> int:
    run, answers_file = read_run(argv)
    if run.engine == "cookiecutter":
        remove_optional_directories_left_empty()
    if run.answers["verify"] == "none" or updating_with_cruft(run.answers):
        return 0
    return verify(run, answers_file)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
