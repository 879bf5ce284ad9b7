"""Tidy the generated service, then prove it works: build it, start it, ask it to greet Pete.

cookiecutter renders this file and runs it after generating. copier runs it
unrendered through `_tasks` on the first copy only, with `--answers-file`
naming the answers it just recorded. The `verify` answer picks how: `cargo`
builds and runs the binary, `docker` builds and runs the runtime image, `auto`
uses cargo when it is installed, else Docker, else prints how to verify later,
and `none` does nothing. Each step prints its duration; a failed step prints
the tail of its log and the log's path (outside the project), then what the
engine does with the project and how to keep it.

With `database=postgres` the check also applies the migrations and POSTs and
GETs /greetings/Pete against a real PostgreSQL: the one DATABASE_URL names when
it is set; else a throwaway server started from PostgreSQL's initdb and pg_ctl
(Debian's /usr/lib/postgresql/<version>/bin, or PATH; TEMPLATE_VERIFY_POSTGRES_BIN
names another folder) in a temporary folder on a free loopback port, stopped and
removed afterwards; else it checks the routes that need no database and prints
what it skipped and how to run the rest. `docker` runs the runtime image next to
the database image compose.yaml names, and removes both containers.
"""

from __future__ import annotations

import argparse
import glob
import hashlib
import json
import os
import pwd
import re
import secrets
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
# The folder holding PostgreSQL's initdb and pg_ctl, when it is not where Debian puts them;
# an empty folder means "no PostgreSQL here" (tests/test_verify.py).
POSTGRES_BIN = os.environ.get("TEMPLATE_VERIFY_POSTGRES_BIN", "")
DEBIAN_POSTGRES_BINS = "/usr/lib/postgresql/*/bin"
# initdb refuses to run as root: as root, the throwaway server runs as this user (Debian's
# postgresql package creates it).
POSTGRES_USER = "postgres"
DATABASE_ROUTES = "/readyz, POST /greetings/Pete and GET /greetings/Pete"
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

    @property
    def postgres(self) -> bool:
        return self.answers.get("database") == "postgres"


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


def http_request(url: str, method: str = "GET") -> tuple[int, str]:
    request = urllib.request.Request(url, method=method, data=b"" if method == "POST" else None)
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode(errors="replace")


def http_get(url: str) -> tuple[int, str]:
    return http_request(url)


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


def check_answers(base_url: str, paths: tuple[str, ...] = ("/Pete", "/", "/health")) -> None:
    expectations = [(path, "Hello Pete!" if path == "/Pete" else None) for path in paths]
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


# ---------------------------------------------------------------- PostgreSQL (database=postgres)

LIVE_PATHS = ("/Pete", "/", "/health", "/livez")


def without_password(url: str) -> str:
    """The URL as it may be printed: its password replaced."""
    return re.sub(r"(://[^:/@]*:)[^@]*@", r"\1***@", url)


def postgres_bin_dir() -> Path | None:
    """The folder with initdb and pg_ctl: TEMPLATE_VERIFY_POSTGRES_BIN when set, else the
    newest of Debian's versioned folders (its package puts neither on PATH), else PATH."""
    if POSTGRES_BIN:
        candidates = [Path(POSTGRES_BIN)]
    else:
        debian = sorted(
            (Path(found) for found in glob.glob(DEBIAN_POSTGRES_BINS)),
            key=lambda path: int(path.parent.name) if path.parent.name.isdigit() else 0,
            reverse=True,
        )
        on_path = shutil.which("initdb")
        candidates = [*debian, *([Path(on_path).resolve().parent] if on_path else [])]
    return next(
        (
            path
            for path in candidates
            if (path / "initdb").is_file() and (path / "pg_ctl").is_file()
        ),
        None,
    )


def as_server_user() -> list[str] | None:
    """The prefix that runs PostgreSQL's tools: none, or runuser to `postgres` as root;
    None when root has no such user to run them as."""
    if os.geteuid() != 0:
        return []
    try:
        pwd.getpwnam(POSTGRES_USER)
    except KeyError:
        return None
    runuser = shutil.which("runuser")
    return [runuser, "-u", POSTGRES_USER, "--"] if runuser else None


def no_postgres_reason() -> str | None:
    """Why no throwaway server can be started here, or None when one can."""
    where = POSTGRES_BIN or f"{DEBIAN_POSTGRES_BINS} or on PATH"
    if postgres_bin_dir() is None:
        return f"DATABASE_URL is unset and PostgreSQL's initdb and pg_ctl are not in {where}"
    if as_server_user() is None:
        return (
            f"DATABASE_URL is unset and initdb refuses to run as root without a "
            f"'{POSTGRES_USER}' user to run it as"
        )
    return None


@contextmanager
def throwaway_postgres(verification: Verification, bin_dir: Path) -> Iterator[str]:
    """A new cluster in a temporary folder on a free loopback port, for this check only;
    yields its URL, then stops it and removes the folder."""
    owner = as_server_user() or []
    root = Path(tempfile.mkdtemp(prefix="verify-postgres-"))
    data = root / "data"
    port = free_loopback_port()
    password = secrets.token_hex(16)
    pg_ctl = [*owner, str(bin_dir / "pg_ctl"), "-D", str(data), "-w", "-t", "30"]
    try:
        with verification.step(f"start a throwaway PostgreSQL ({bin_dir}) on 127.0.0.1:{port}"):
            # The password goes through a file: it never reaches a command line or the log.
            password_file = root / "password"
            password_file.write_text(password + "\n")
            if owner:
                shutil.chown(root, POSTGRES_USER)
                shutil.chown(password_file, POSTGRES_USER)
            verification.run(
                [*owner, str(bin_dir / "initdb"), "-D", str(data), "-U", "postgres",
                 f"--pwfile={password_file}", "--auth=scram-sha-256", "--encoding=UTF8",
                 "--locale=C", "--no-sync"]
            )  # fmt: skip
            options = f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off"
            verification.run([*pg_ctl, "-l", str(root / "server.log"), "-o", options, "start"])
        yield f"postgres://postgres:{password}@127.0.0.1:{port}/postgres"
    finally:
        with verification.step(f"stop PostgreSQL and remove {root}"):
            if (data / "postmaster.pid").exists():
                verification.run([*pg_ctl, "-m", "fast", "stop"])
            shutil.rmtree(root)


@contextmanager
def database_for_the_check(verification: Verification) -> Iterator[str | None]:
    """DATABASE_URL when set, else a throwaway server, else None (no PostgreSQL here)."""
    url = os.environ.get("DATABASE_URL")
    if url:
        say(f"database: DATABASE_URL from the environment, {without_password(url)}")
        say("  (the check applies the migrations there and records one greeting for Pete)")
        yield url
        return
    reason = no_postgres_reason()
    if reason is not None:
        say(f"no PostgreSQL for the check: {reason}")
        yield None
        return
    with throwaway_postgres(verification, postgres_bin_dir()) as url:
        yield url


def unreachable_database_url() -> str:
    """A URL whose port nothing listens on: the service starts without its database
    (its pool connects lazily), as it does when the database is down."""
    return f"postgres://verify@127.0.0.1:{free_loopback_port()}/verify"


def wait_until_ready(base_url: str) -> None:
    """Polls /readyz until 200: the migrations are applied and the database answers."""
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    status, body = 0, ""
    while time.monotonic() < deadline:
        status, body = http_get(f"{base_url}/readyz")
        if status == 200:
            say(f"GET /readyz -> {status} {body.strip()[:40]!r}")
            return
        time.sleep(0.2)
    raise StepFailed(
        f"/readyz answered {status} {body.strip()[:80]!r} for {STARTUP_TIMEOUT_S:.0f} s"
    )


def check_greetings(base_url: str) -> None:
    """POST records one greeting; GET then answers the same count."""
    counts = []
    for method, expected in (("POST", 201), ("GET", 200)):
        status, text = http_request(f"{base_url}/greetings/Pete", method)
        if status != expected:
            raise StepFailed(
                f"{method} /greetings/Pete answered {status} {text!r}, expected {expected}"
            )
        say(f"{method} /greetings/Pete -> {status} {text.strip()[:60]!r}")
        body = json.loads(text)
        if body.get("name") != "Pete" or not isinstance(body.get("count"), int):
            raise StepFailed(f"{method} /greetings/Pete answered {text!r}")
        counts.append(body["count"])
    if counts[0] < 1 or counts[1] != counts[0]:
        raise StepFailed(f"POST then GET /greetings/Pete counted {counts}, expected N >= 1 twice")


def check_service(verification: Verification, base_url: str, run: Run, database: bool) -> None:
    """The routes every service has; with a database, readiness and the greetings too."""
    paths = LIVE_PATHS if run.postgres else LIVE_PATHS[:3]
    shown = ", ".join(paths[:-1]) + f" and {paths[-1]}"
    with verification.step(f"curl {shown}"):
        check_answers(base_url, paths)
    if database:
        with verification.step("wait for /readyz (migrations applied)"):
            wait_until_ready(base_url)
        with verification.step("POST and GET /greetings/Pete"):
            check_greetings(base_url)


def print_what_was_skipped(run: Run) -> None:
    port = run.answers["port"]
    say(f"skipped: {DATABASE_ROUTES} (they need PostgreSQL)")
    say(
        f"run them later: cd {run.slug} && "
        "DATABASE_URL=postgres://USER:PASSWORD@HOST:5432/DATABASE cargo run"
    )
    say(
        f"  then, in another shell: curl -X POST http://localhost:{port}/greetings/Pete "
        f"&& curl http://localhost:{port}/greetings/Pete"
    )


# ---------------------------------------------------------------- verifying with cargo


def verify_with_cargo(verification: Verification, run: Run, database_url: str | None) -> None:
    with verification.step("cargo build --locked"):
        verification.run(["cargo", "build", "--locked"])
    port = free_loopback_port()
    base_url = f"http://127.0.0.1:{port}"
    # No load balancer watches this check: no drain before the stop (DRAIN_SECS).
    env = dict(os.environ, HOST="127.0.0.1", PORT=str(port), RUST_LOG="info", DRAIN_SECS="0")
    if run.postgres:
        env["DATABASE_URL"] = database_url or unreachable_database_url()
    process = verification.start([str(cargo_binary_path(run.slug))], env=env)
    try:
        with verification.step(f"start the service on {base_url}"):
            wait_until_serving(base_url, process.poll)
        check_service(verification, base_url, run, database_url is not None)
    finally:
        if process.poll() is None:
            with verification.step("stop it with SIGTERM"):
                stop_gracefully(process)


# ---------------------------------------------------------------- verifying with Docker


def docker_state(container: str) -> int | None:
    """The container's exit code once it stopped, None while it runs."""
    result = subprocess.run(
        ["docker", "inspect", container], capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        return -1
    state = json.loads(result.stdout)[0]["State"]
    return None if state["Running"] else int(state["ExitCode"])


def compose_database_image() -> str:
    """The PostgreSQL image compose.yaml's db service runs: one pin for both."""
    compose = PROJECT / "compose.yaml"
    text = compose.read_text() if compose.exists() else ""
    match = re.search(r"^\s+image:\s*[\"']?(postgres:[^\s\"']+)", text, re.MULTILINE)
    if not match:
        raise StepFailed("compose.yaml names no postgres image for its db service")
    return match.group(1)


@dataclass
class DockerDatabase:
    """The database container next to the service's, and how the service reaches it."""

    image: str
    container: str
    network: str | None  # a network of their own, unless they share the host's
    url: str


def start_docker_database(verification: Verification, slug: str, port: int) -> DockerDatabase:
    """The db image of compose.yaml, on a network shared with the service's container (or
    on the host's, on a free loopback port); the password passes through the environment."""
    image = compose_database_image()
    container = f"{slug}-verify-db-{port}"
    password = secrets.token_hex(16)
    env = dict(os.environ, POSTGRES_PASSWORD=password)
    if DOCKER_NETWORK == "host":
        db_port = free_loopback_port()
        network, host, where = None, "127.0.0.1", ["--network", "host"]
        options = ["-p", str(db_port), "-c", "listen_addresses=127.0.0.1"]
    else:
        db_port = 5432
        network = f"{slug}-verify-{port}"
        host, where, options = container, ["--network", network], []
        verification.run(["docker", "network", "create", network])
    url = f"postgres://postgres:{password}@{host}:{db_port}/postgres"
    database = DockerDatabase(image, container, network, url)
    verification.run(
        ["docker", "run", "-d", "--name", container, *where, "-e", "POSTGRES_PASSWORD",
         image, *options],
        env=env,
    )  # fmt: skip
    return database


def remove_docker_database(database: DockerDatabase) -> str:
    """Removes the database container with its volume, and its network; says what went."""
    subprocess.run(
        ["docker", "rm", "-f", "-v", database.container], capture_output=True, check=False
    )
    removed = f"the database container {database.container} and its volume"
    if database.network:
        subprocess.run(
            ["docker", "network", "rm", database.network], capture_output=True, check=False
        )
        removed += f", the network {database.network}"
    return removed


def verify_with_docker(verification: Verification, run: Run) -> None:
    image = f"{run.slug}:verify"
    network = ["--network", DOCKER_NETWORK] if DOCKER_NETWORK else []
    with verification.step(f"docker build -t {image} ."):
        # Cache mounts need BuildKit, which Docker before 23.0 enables only on request.
        env = dict(os.environ, DOCKER_BUILDKIT="1")
        verification.run(["docker", "build", *network, "-t", image, "."], env=env)
    port = free_loopback_port()
    base_url = f"http://127.0.0.1:{port}"
    container = f"{run.slug}-verify-{port}"
    publish = [] if DOCKER_NETWORK == "host" else ["-p", f"127.0.0.1:{port}:{port}"]
    database: DockerDatabase | None = None
    passed = False
    try:
        app_env = dict(os.environ)
        if run.postgres:
            with verification.step("docker run the database image that compose.yaml names"):
                database = start_docker_database(verification, run.slug, port)
                say(f"database: {database.image} as {database.container}")
            if database.network:
                network = ["--network", database.network]
            app_env["DATABASE_URL"] = database.url
        with verification.step(f"docker run {image} on {base_url}"):
            verification.run(
                ["docker", "run", "-d", "--name", container, *network, *publish,
                 "-e", f"PORT={port}", "-e", "DRAIN_SECS=0",
                 *(["-e", "DATABASE_URL"] if database else []), image],
                env=app_env,
            )  # fmt: skip
            wait_until_serving(base_url, lambda: docker_state(container))
        check_service(verification, base_url, run, database is not None)
        with verification.step("docker stop"):
            verification.run(["docker", "stop", container])
        passed = True
    finally:
        # Whatever failed, nothing is left running; a failed image is not left behind.
        subprocess.run(["docker", "rm", "-f", container], capture_output=True, check=False)
        if database is not None:
            say(f"removed {remove_docker_database(database)}")
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
    database_checked = False
    try:
        if mode == "cargo" and run.postgres:
            with database_for_the_check(verification) as database_url:
                verify_with_cargo(verification, run, database_url)
                database_checked = database_url is not None
        elif mode == "cargo":
            verify_with_cargo(verification, run, None)
        else:
            verify_with_docker(verification, run)
            database_checked = run.postgres
    except StepFailed as failure:
        say(f"verification failed: {failure}; log: {verification.log}")
        explain_failure(run, verification, answers_file)
        return 1
    if run.postgres and not database_checked:
        print_what_was_skipped(run)
    counted = " and counted Pete's greeting in PostgreSQL" if database_checked else ""
    say(
        f"SUCCESS: {run.slug} answered 'Hello Pete!'{counted} "
        f"({time.monotonic() - started:.1f} s in all)"
    )
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
