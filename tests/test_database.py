"""The `database` answer.

Fast tier: `database=none` generates nothing of the database (no sqlx in the lock, no
migrations/, .sqlx/, .cargo/, build.rs or ci/sqlx-metadata.sh) under both engines, and
`postgres` keeps ci/sqlx-metadata.sh even without a CI provider.

Slow tier, against real PostgreSQL servers (harness/postgres.py): the postgres service
passes cargo fmt, clippy and its tests (`#[sqlx::test]` on the session's server); the
committed .sqlx/ is current and ci/sqlx-metadata.sh notices a changed query, then
rewrites the metadata; a missing or malformed DATABASE_URL stops the binary with one
line; the service starts while the database is down and becomes ready once it is up;
it answers 503 while the database is stopped under it and recovers without a restart;
two instances starting together on a fresh database apply each migration once.
Disruptive tests get a server of their own (`postgres_server()`), not the session's.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import pytest

from harness.postgres import Postgres, postgres_server
from harness.processes import free_port, http_get, http_post, require, run, wait_until
from harness.render import bake, default_answers, render_copier
from harness.service import Server, service_env

POSTGRES = {"database": "postgres"}
# Files only the postgres answer generates (folders are removed when left empty).
POSTGRES_ONLY = [
    "migrations",
    ".sqlx",
    ".cargo",
    "build.rs",
    "ci/sqlx-metadata.sh",
    "src/database.rs",
    "src/greetings.rs",
    "tests/greetings.rs",
]
READY_TIMEOUT_S = 30


# ---------------------------------------------------------------- helpers


def database_env(port: int, url: str) -> dict[str, str]:
    # A short acquire timeout keeps the "database stopped" answers quick.
    return service_env(
        port,
        RUST_LOG="info",
        DRAIN_SECS="0",
        DATABASE_URL=url,
        DATABASE_ACQUIRE_TIMEOUT_SECS="1",
    )


@contextmanager
def service(binary: Path, url: str, log: Path) -> Iterator[Server]:
    """The binary on a free loopback port against `url`, once `/livez` answers."""
    port = free_port()
    with Server([str(binary)], port, log, env=database_env(port, url)) as server:
        server.wait_until_answering("/livez")
        yield server


def wait_ready(server: Server) -> None:
    wait_until(
        lambda: True if http_get(server.port, "/readyz", timeout=5)[0] == 200 else None,
        READY_TIMEOUT_S,
        f"/readyz 200 on port {server.port}",
        details=server.output,
    )


def levels(log: Path) -> set[str]:
    """The levels of the service's JSON log lines."""
    return {
        json.loads(line)["level"] for line in log.read_text().splitlines() if line.startswith("{")
    }


# ---------------------------------------------------------------- fast tier


def rendered_by_both(tmp_path: Path, cookies: Any, **answers: str) -> list[Path]:
    answers = default_answers(**answers)
    return [bake(cookies, **answers), render_copier(tmp_path / "copier", **answers)]


def test_database_none_generates_nothing_of_the_database(tmp_path: Path, cookies: Any) -> None:
    for project in rendered_by_both(tmp_path, cookies, database="none", ci_provider="none"):
        assert not re.search(r'^name = "sqlx', (project / "Cargo.lock").read_text(), re.M)
        assert "sqlx" not in (project / "Cargo.toml").read_text()
        present = [name for name in POSTGRES_ONLY if (project / name).exists()]
        assert present == [], f"{project}: {present}"
        assert not (project / "ci").exists()


def test_database_postgres_generates_its_files_without_a_ci_provider(
    tmp_path: Path, cookies: Any
) -> None:
    for project in rendered_by_both(tmp_path, cookies, database="postgres", ci_provider="none"):
        missing = [name for name in POSTGRES_ONLY if not (project / name).exists()]
        assert missing == [], f"{project}: {missing}"
        assert os.access(project / "ci" / "sqlx-metadata.sh", os.X_OK)
        assert re.search(r'^name = "sqlx"', (project / "Cargo.lock").read_text(), re.M)
        assert list((project / ".sqlx").glob("query-*.json"))


# ---------------------------------------------------------------- slow tier


@pytest.fixture(scope="module")
def postgres_project(rendered: Callable[..., Path]) -> Path:
    return rendered(**POSTGRES)


@pytest.fixture(scope="module")
def postgres_binary(postgres_project: Path, cargo_env: dict[str, str]) -> Path:
    require("cargo")
    run(["cargo", "build", "--locked"], cwd=postgres_project, env=cargo_env)
    binary = Path(cargo_env["CARGO_TARGET_DIR"]) / "debug" / postgres_project.name
    assert binary.is_file()
    return binary


CARGO_CHECKS = [
    pytest.param(["fmt", "--check"], [], id="rustfmt-clean"),
    pytest.param(
        ["clippy", "--all-targets", "--locked", "--", "-D", "warnings"],
        [],
        id="clippy-warnings-denied",
    ),
    # The database tests ran (a renamed or emptied tests/greetings.rs would pass silently).
    pytest.param(
        ["test", "--locked"],
        [
            ("stderr", "Running tests/greetings.rs"),
            ("stdout", "test a_failed_count_update_leaves_no_greeting_row ... ok"),
            ("stdout", "test posts_are_counted_per_name ... ok"),
        ],
        id="tests-pass",
    ),
]


@pytest.mark.slow
@pytest.mark.parametrize(("cargo_args", "expected"), CARGO_CHECKS)
def test_postgres_code_passes_cargo(
    cargo_args: list[str],
    expected: list[tuple[str, str]],
    postgres_project: Path,
    postgres: Postgres,
    cargo_env: dict[str, str],
) -> None:
    env = {**cargo_env, "DATABASE_URL": postgres.url}
    result = run([require("cargo"), *cargo_args], cwd=postgres_project, env=env)
    for stream, text in expected:
        assert text in getattr(result, stream), getattr(result, stream)[-3000:]


@pytest.mark.slow
def test_sqlx_metadata_check_notices_a_changed_query_and_rewrites(
    postgres_project: Path, postgres: Postgres, cargo_env: dict[str, str], tmp_path: Path
) -> None:
    project = tmp_path / postgres_project.name
    shutil.copytree(postgres_project, project)
    env = {**cargo_env, "DATABASE_URL": postgres.create_database("sqlx_metadata")}
    script = str(project / "ci" / "sqlx-metadata.sh")

    def metadata(*args: str) -> subprocess.CompletedProcess[str]:
        return run([script, *args], cwd=project, env=env, check=False, timeout=900)

    first = metadata("--check")
    assert first.returncode == 0, first.stderr[-3000:]
    assert ".sqlx/ is up to date" in first.stderr

    greetings = project / "src" / "greetings.rs"
    query = "SELECT count FROM greeting_counts WHERE name = $1"
    assert query in greetings.read_text()
    greetings.write_text(greetings.read_text().replace(query, query + " LIMIT 1"))
    stale = metadata("--check")
    assert stale.returncode == 1, stale.stderr[-3000:]
    assert ".sqlx/ is out of date" in stale.stderr

    rewrite = metadata()
    assert rewrite.returncode == 0, rewrite.stderr[-3000:]
    assert any("LIMIT 1" in path.read_text() for path in (project / ".sqlx").glob("*.json"))
    again = metadata("--check")
    assert again.returncode == 0, again.stderr[-3000:]


@pytest.mark.slow
@pytest.mark.parametrize(
    "url",
    [None, "postgres://user:s3cret@:notaport/db", "mysql://user:s3cret@db/app"],
    ids=["unset", "malformed", "not-postgres"],
)
def test_a_bad_database_url_stops_with_one_line_and_no_password(
    postgres_binary: Path, url: str | None
) -> None:
    env = {k: v for k, v in service_env(free_port()).items() if k != "DATABASE_URL"}
    if url is not None:
        env["DATABASE_URL"] = url
    for args in ([], ["migrate"]):
        result = subprocess.run(
            [str(postgres_binary), *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
        assert result.returncode == 2, result
        lines = result.stderr.splitlines()
        assert len(lines) == 1 and "DATABASE_URL" in lines[0], result.stderr
        assert "s3cret" not in result.stderr + result.stdout


@pytest.mark.slow
def test_the_service_starts_while_the_database_is_down_and_becomes_ready(
    postgres_binary: Path, tmp_path: Path
) -> None:
    with postgres_server() as pg:
        pg.stop()
        with service(postgres_binary, pg.url, tmp_path / "service.log") as server:
            assert http_get(server.port, "/livez")[0] == 200
            status, body = http_get(server.port, "/readyz")
            assert status == 503, body
            assert http_post(server.port, "/greetings/Pete")[0] == 503
            pg.start()
            wait_ready(server)
            assert http_post(server.port, "/greetings/Pete") == (
                201,
                '{"name":"Pete","count":1}',
            )
            assert server.poll() is None


@pytest.mark.slow
def test_a_database_stopped_under_the_service_gives_503_then_recovers(
    postgres_binary: Path, tmp_path: Path
) -> None:
    with (
        postgres_server() as pg,
        service(postgres_binary, pg.url, tmp_path / "service.log") as server,
    ):
        wait_ready(server)
        assert http_post(server.port, "/greetings/Pete")[0] == 201
        pg.stop()
        unavailable = (503, '{"error":"database unavailable"}')
        assert http_post(server.port, "/greetings/Pete") == unavailable
        assert http_get(server.port, "/greetings/Pete") == unavailable
        assert http_get(server.port, "/readyz")[0] == 503
        assert http_get(server.port, "/livez")[0] == 200
        assert server.poll() is None, server.output()
        pg.start()
        wait_until(
            lambda: True if http_post(server.port, "/greetings/Pete")[0] == 201 else None,
            READY_TIMEOUT_S,
            "POST /greetings/Pete 201 after the database restarted",
            details=server.output,
        )
        assert http_get(server.port, "/greetings/Pete") == (
            200,
            '{"name":"Pete","count":2}',
        )
        wait_ready(server)
        assert server.poll() is None


@pytest.mark.slow
def test_two_instances_starting_together_apply_each_migration_once(
    postgres_binary: Path, postgres_project: Path, postgres: Postgres, tmp_path: Path
) -> None:
    url = postgres.create_database("two_instances")
    logs = [tmp_path / "first.log", tmp_path / "second.log"]
    with ExitStack() as stack:
        servers = []
        for log in logs:
            port = free_port()
            env = database_env(port, url)
            servers.append(stack.enter_context(Server([str(postgres_binary)], port, log, env=env)))
        for server in servers:
            server.wait_until_answering("/livez")
            wait_ready(server)
    migrations = list((postgres_project / "migrations").glob("*.sql"))
    assert migrations
    rows = postgres.psql(
        "SELECT count(*), count(DISTINCT version), bool_and(success) FROM _sqlx_migrations",
        "two_instances",
    )
    assert rows == f"{len(migrations)}|{len(migrations)}|t"
    for log in logs:
        assert levels(log) <= {"INFO", "DEBUG", "TRACE"}, log.read_text()[-3000:]
