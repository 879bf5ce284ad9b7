"""The post-generation check: it builds and curls for real, and says plainly when it cannot."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import jinja2
import pytest

from harness import TEMPLATE_DIR
from harness.containers import ensure_base_images
from harness.engine import docker, docker_env
from harness.postgres import Postgres, postgres_bin_dir
from harness.processes import refuses_connections, require
from harness.render import DEFAULT_SLUG, cookiecutter_cli, copier_cli, default_answers

STEP_DONE = re.compile(r"^\[verify\] (.+): ok \((\d+\.\d) s\)$", re.MULTILINE)


def render_hook(answers: dict[str, str]) -> str:
    """The hook as cookiecutter renders it for these answers (the slug as the engines derive it)."""
    answers = {"slug": DEFAULT_SLUG, **answers}
    source = (TEMPLATE_DIR / "hooks/post_gen_project.py").read_text()
    environment = jinja2.Environment(keep_trailing_newline=True, undefined=jinja2.StrictUndefined)
    return environment.from_string(source).render(cookiecutter=answers)


def generated_with_main_rs_changed(tmp_path: Path, change: Callable[[str], str]) -> Path:
    """The default project, generated without the check, its src/main.rs changed."""
    generated = cookiecutter_cli(tmp_path / "out", default_answers(verify="none"))
    assert generated.returncode == 0, generated.stderr
    project = tmp_path / "out" / DEFAULT_SLUG
    main_rs = project / "src/main.rs"
    main_rs.write_text(change(main_rs.read_text()))
    return project


def run_hook(
    project: Path, answers: dict[str, str], env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """The post-generation hook rendered for `answers`, run in `project` as the engines do."""
    return subprocess.run(
        [sys.executable, "-c", render_hook(answers)],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )


def assert_answered(output: str, slug: str = DEFAULT_SLUG) -> None:
    """The check curled /Pete and reported success."""
    assert "[verify] GET /Pete -> 200 'Hello Pete!'" in output
    assert f"[verify] SUCCESS: {slug} answered 'Hello Pete!'" in output


def test_verify_none_builds_nothing_and_prints_nothing(tmp_path: Path) -> None:
    result = cookiecutter_cli(tmp_path / "out", default_answers(verify="none"))
    assert result.returncode == 0, result.stderr
    assert "[verify]" not in result.stdout
    assert (tmp_path / "out/hello-service/Cargo.toml").exists()


def test_auto_without_cargo_or_docker_says_so_and_prints_the_command(tmp_path: Path) -> None:
    # Only the Python interpreter's folder stays on PATH: no cargo, no docker.
    env = dict(os.environ, PATH=str(Path(sys.executable).parent))
    result = cookiecutter_cli(tmp_path / "out", default_answers(verify="auto"), env=env)
    assert result.returncode == 0, result.stderr
    assert "nothing to verify with: neither cargo nor a running Docker engine" in result.stdout
    assert "cd hello-service && cargo build --locked && cargo run" in result.stdout
    assert "curl http://localhost:5000/Pete" in result.stdout
    assert (tmp_path / "out/hello-service/Cargo.toml").exists()


def test_optional_directories_left_empty_are_removed(tmp_path: Path) -> None:
    result = cookiecutter_cli(tmp_path / "out", default_answers(ci_provider="none"))
    assert result.returncode == 0, result.stderr
    project = tmp_path / "out/hello-service"
    assert not (project / ".github").exists()
    assert [p for p in project.rglob("*") if p.is_dir() and not any(p.iterdir())] == []


@pytest.mark.slow
def test_default_answers_are_built_and_curled_by_the_hook(tmp_path: Path) -> None:
    require("cargo")
    result = cookiecutter_cli(tmp_path / "out", default_answers(verify="auto"))
    assert result.returncode == 0, result.stdout + result.stderr
    steps = [name for name, _ in STEP_DONE.findall(result.stdout)]
    assert steps[0] == "cargo build --locked"
    assert "curl /Pete, / and /health" in steps
    assert steps[-1] == "stop it with SIGTERM"
    assert_answered(result.stdout)


@pytest.mark.slow
def test_copier_runs_the_same_check_for_non_default_answers(tmp_path: Path) -> None:
    require("cargo")
    answers = default_answers(
        project_name="Order Desk",
        slug="order-desk",
        port="8081",
        debian_release="trixie",
        runtime_image="distroless",
        dev_watcher="cargo-watch",
        ci_provider="both",
        verify="cargo",
    )
    result = copier_cli(tmp_path / "order-desk", answers)
    assert result.returncode == 0, result.stdout + result.stderr
    assert_answered(result.stdout, "order-desk")


@pytest.mark.slow
def test_a_failing_build_names_the_step_shows_the_log_and_exits_non_zero(tmp_path: Path) -> None:
    require("cargo")
    project = generated_with_main_rs_changed(
        tmp_path, lambda source: source + '\nfn broken() -> u32 { "not a number" }\n'
    )
    result = run_hook(project, default_answers(verify="cargo"))
    assert result.returncode == 1
    assert "[verify] FAILED: cargo build --locked:" in result.stdout
    assert "mismatched types" in result.stdout  # the tail of cargo's output
    log = re.search(r"^\[verify\] full log: (\S+)$", result.stdout, re.MULTILINE)
    assert log, result.stdout
    assert Path(log.group(1)).is_file()
    assert not Path(log.group(1)).is_relative_to(project)


@pytest.mark.docker
def test_docker_mode_builds_the_runtime_image_and_curls_the_container(
    tmp_path: Path, base_images: None
) -> None:
    # The engine here has no bridge network, so the check runs the container on the host's.
    env = dict(os.environ, TEMPLATE_VERIFY_DOCKER_NETWORK="host", DOCKER_BUILDKIT="1")
    result = cookiecutter_cli(tmp_path / "out", default_answers(verify="docker"), env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    steps = [name for name, _ in STEP_DONE.findall(result.stdout)]
    assert steps[0] == "docker build -t hello-service:verify ."
    assert steps[-1] == "docker stop"
    assert_answered(result.stdout)


@pytest.mark.docker
def test_docker_mode_leaves_nothing_running_when_the_service_never_answers(
    tmp_path: Path, base_images: None
) -> None:
    # A service that starts and never listens: the check must give up and clean up.
    entry = "fn main() -> ExitCode {"

    def never_listening(source: str) -> str:
        assert source.count(entry) == 1, "src/main.rs changed: update this test"
        return source.replace(entry, entry + "\n    std::thread::sleep(std::time::Duration::MAX);")

    project = generated_with_main_rs_changed(tmp_path, never_listening)
    env = docker_env() | {
        "TEMPLATE_VERIFY_DOCKER_NETWORK": "host",
        "TEMPLATE_VERIFY_STARTUP_TIMEOUT": "5",
    }
    result = run_hook(project, default_answers(verify="docker"), env)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "nothing answered on http://127.0.0.1:" in result.stdout
    assert re.search(r"removed the container hello-service-verify-\d+ and the image", result.stdout)
    leftovers = docker("ps", "-a", "-q", "--filter", "name=hello-service-verify-").stdout
    assert not leftovers.strip(), leftovers
    assert docker("image", "inspect", "hello-service:verify", check=False).returncode != 0


# ---------------------------------------------------------------- database=postgres

POSTGRES = default_answers(database="postgres", verify="cargo")
GREETED_ONCE = '\'{"name":"Pete","count":1}\''
POSTGRES_STEPS = ("curl /Pete, /, /health and /livez", "wait for /readyz (migrations applied)",
                  "POST and GET /greetings/Pete")  # fmt: skip


def without_database_url() -> dict[str, str]:
    return {key: value for key, value in os.environ.items() if key != "DATABASE_URL"}


@pytest.fixture(scope="module")
def postgres_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """database=postgres generated without the check; each test runs the check on it."""
    out = tmp_path_factory.mktemp("postgres") / "out"
    generated = cookiecutter_cli(out, default_answers(database="postgres"))
    assert generated.returncode == 0, generated.stderr
    return out / DEFAULT_SLUG


@pytest.mark.slow
def test_postgres_check_uses_database_url_and_counts_a_greeting(
    postgres_project: Path, postgres: Postgres
) -> None:
    require("cargo")
    url = postgres.create_database("verify_given_url")
    env = without_database_url() | {"DATABASE_URL": url}
    result = run_hook(postgres_project, POSTGRES, env)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert (
        f"[verify] database: DATABASE_URL from the environment, "
        f"postgres://postgres:***@127.0.0.1:{postgres.port}/verify_given_url\n"
    ) in result.stdout
    assert url not in output and ":postgres@" not in output, "the password was printed"
    steps = [name for name, _ in STEP_DONE.findall(result.stdout)]
    assert [step for step in steps if step in POSTGRES_STEPS] == list(POSTGRES_STEPS)
    assert f"[verify] POST /greetings/Pete -> 201 {GREETED_ONCE}" in result.stdout
    assert f"[verify] GET /greetings/Pete -> 200 {GREETED_ONCE}" in result.stdout
    assert "answered 'Hello Pete!' and counted Pete's greeting in PostgreSQL" in result.stdout
    # The check wrote where it said: migrations applied, one greeting recorded.
    assert postgres.psql("SELECT count FROM greeting_counts", "verify_given_url") == "1"
    assert postgres.psql("SELECT count(*) FROM greetings", "verify_given_url") == "1"


@pytest.mark.slow
def test_postgres_check_starts_a_throwaway_server_and_removes_it(tmp_path: Path) -> None:
    require("cargo")
    postgres_bin_dir()  # the check finds PostgreSQL where this does (fails under CI=true)
    # copier, end to end: its task runs the same check.
    result = copier_cli(tmp_path / DEFAULT_SLUG, POSTGRES, env=without_database_url())
    assert result.returncode == 0, result.stdout + result.stderr
    started = re.search(
        r"^\[verify\] start a throwaway PostgreSQL \((\S+)\) on 127\.0\.0\.1:(\d+): ok",
        result.stdout,
        re.MULTILINE,
    )
    assert started, result.stdout
    assert (Path(started.group(1)) / "initdb").is_file()
    removed = re.search(
        r"^\[verify\] stop PostgreSQL and remove (\S+): ok", result.stdout, re.MULTILINE
    )
    assert removed, result.stdout
    assert f"[verify] POST /greetings/Pete -> 201 {GREETED_ONCE}" in result.stdout
    assert f"[verify] GET /greetings/Pete -> 200 {GREETED_ONCE}" in result.stdout
    assert "counted Pete's greeting in PostgreSQL" in result.stdout
    # Nothing left behind: the server's folder is gone and its port refuses connections.
    assert not Path(removed.group(1)).exists()
    assert refuses_connections(int(started.group(2)))
    assert "skipped" not in result.stdout


@pytest.mark.slow
def test_postgres_check_without_postgresql_says_what_it_skipped(
    postgres_project: Path, tmp_path: Path
) -> None:
    require("cargo")
    no_postgres = tmp_path / "no-postgres-here"
    no_postgres.mkdir()
    env = without_database_url() | {"TEMPLATE_VERIFY_POSTGRES_BIN": str(no_postgres)}
    result = run_hook(postgres_project, POSTGRES, env)
    assert result.returncode == 0, result.stdout + result.stderr
    lines = [line for line in result.stdout.splitlines() if " ..." not in line]
    expected = [
        f"[verify] no PostgreSQL for the check: DATABASE_URL is unset and PostgreSQL's initdb "
        f"and pg_ctl are not in {no_postgres}",
        "[verify] GET /livez -> 200",
        "[verify] skipped: /readyz, POST /greetings/Pete and GET /greetings/Pete "
        "(they need PostgreSQL)",
        "[verify] run them later: cd hello-service && "
        "DATABASE_URL=postgres://USER:PASSWORD@HOST:5432/DATABASE cargo run",
        "[verify]   then, in another shell: curl -X POST http://localhost:5000/greetings/Pete "
        "&& curl http://localhost:5000/greetings/Pete",
        "[verify] SUCCESS: hello-service answered 'Hello Pete!' (",
    ]
    found = [next((i for i, line in enumerate(lines) if line.startswith(e)), -1) for e in expected]
    assert -1 not in found and found == sorted(found), result.stdout
    assert_answered(result.stdout)
    assert "/greetings/Pete ->" not in result.stdout
    assert "throwaway" not in result.stdout


def anonymous_volumes() -> set[str]:
    """Volumes no container uses whose names Docker made up (64 hex digits)."""
    listed = docker("volume", "ls", "-q", "--filter", "dangling=true").stdout.split()
    return {name for name in listed if re.fullmatch(r"[0-9a-f]{64}", name)}


@pytest.mark.docker
def test_docker_mode_with_postgres_runs_the_db_image_next_to_the_runtime_image(
    tmp_path: Path, base_images: None
) -> None:
    out = tmp_path / "out"
    generated = cookiecutter_cli(out, default_answers(database="postgres"))
    assert generated.returncode == 0, generated.stderr
    project = out / DEFAULT_SLUG
    image = re.search(r"image: (postgres:\S+)", (project / "compose.yaml").read_text()).group(1)
    ensure_base_images([image])
    volumes_before = anonymous_volumes()
    env = docker_env() | {"TEMPLATE_VERIFY_DOCKER_NETWORK": "host"}
    env.pop("DATABASE_URL", None)
    result = run_hook(project, default_answers(database="postgres", verify="docker"), env)
    assert result.returncode == 0, result.stdout + result.stderr
    steps = [name for name, _ in STEP_DONE.findall(result.stdout)]
    assert steps[:2] == [
        "docker build -t hello-service:verify .",
        "docker run the database image that compose.yaml names",
    ]
    assert "POST and GET /greetings/Pete" in steps and steps[-1] == "docker stop"
    db = re.search(rf"^\[verify\] database: {re.escape(image)} as (\S+)$", result.stdout, re.M)
    assert db, result.stdout
    assert f"[verify] POST /greetings/Pete -> 201 {GREETED_ONCE}" in result.stdout
    assert f"[verify] removed the database container {db.group(1)} and its volume" in (
        result.stdout
    )
    assert "counted Pete's greeting in PostgreSQL" in result.stdout
    # Both containers and the database's volume are gone; only the kept image stays.
    leftovers = docker("ps", "-a", "-q", "--filter", "name=hello-service-verify-").stdout
    assert not leftovers.strip(), leftovers
    assert anonymous_volumes() <= volumes_before
    docker("rmi", "hello-service:verify")
