"""The `database` question reaching services that exist, through `copier update`.

The template at BEFORE (the last commit without the question) is release V_A, the working
tree V_B (harness/releases.py `since_commit`). A service generated at V_A and edited by its
team (a route in src/routes.rs, a README section) is updated to V_B with `--defaults`: it
stays without a database, its Cargo.lock without sqlx. Then `copier update -d
database=postgres` at the same release adds the database pieces (src/database.rs,
migrations/, .sqlx/, .cargo/config.toml, the postgres Cargo.lock), keeps the team's edits,
and the result builds from the committed query metadata, with no database.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from harness.git import commit_all
from harness.processes import require, run
from harness.releases import V_B
from harness.render import add_route
from harness.update import (
    TEAM_NOTES,
    assert_merged_cleanly,
    copier_update,
    generated_before_and_updated,
    recorded_answers,
)

pytestmark = [pytest.mark.update, pytest.mark.usefixtures("isolated_update_tools")]

# The template before the database question: its copier.yml has no such question.
BEFORE = "8848893d734daf7b72d9cd06fe471aeb47f57d92"
TEAM_ROUTE = """
/// Added by the team: template updates must keep it.
#[get("/team")]
async fn team() -> &'static str {
    "team Pete"
}
"""
DATABASE_PIECES = ("src/database.rs", "src/greetings.rs", ".cargo/config.toml")


def lock_has_sqlx(project: Path) -> bool:
    return 'name = "sqlx"' in (project / "Cargo.lock").read_text()


@pytest.fixture(scope="module")
def updated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Generated before the question, edited by the team, updated to V_B."""

    def team_edit(project: Path) -> None:
        add_route(project, "team", TEAM_ROUTE)

    return generated_before_and_updated(BEFORE, tmp_path_factory, team_edit)


@pytest.fixture(scope="module")
def switched(updated: Path) -> Path:
    """The updated service, then `copier update -d database=postgres`."""
    commit_all(updated, f"Update to the template {V_B}")
    copier_update(updated, database="postgres")
    return updated


def assert_team_edits_kept_without_conflicts(project: Path) -> None:
    routes = (project / "src/routes.rs").read_text()
    assert '#[get("/team")]' in routes and ".service(team).service(greet)" in routes, routes
    assert TEAM_NOTES in (project / "README.md").read_text()
    assert_merged_cleanly(project)


def test_an_update_from_before_the_question_adds_no_database(updated: Path) -> None:
    assert recorded_answers(updated)["_commit"] == V_B
    assert recorded_answers(updated)["database"] == "none"
    for piece in (*DATABASE_PIECES, "migrations", ".sqlx"):
        assert not (updated / piece).exists(), piece
    assert not lock_has_sqlx(updated)
    assert_team_edits_kept_without_conflicts(updated)


def test_the_postgres_answer_adds_the_database_pieces(switched: Path) -> None:
    assert recorded_answers(switched)["database"] == "postgres"
    for piece in DATABASE_PIECES:
        assert (switched / piece).is_file(), piece
    assert list((switched / "migrations").glob("*.sql")), "no migration"
    assert list((switched / ".sqlx").glob("query-*.json")), "no query metadata"
    assert lock_has_sqlx(switched), "Cargo.lock is still the lock without a database"
    assert "SQLX_OFFLINE" in (switched / ".cargo/config.toml").read_text()
    assert_team_edits_kept_without_conflicts(switched)


@pytest.mark.slow
def test_the_switched_service_builds_from_its_query_metadata(
    switched: Path, cargo_env: dict[str, str]
) -> None:
    """No DATABASE_URL: the build reads .sqlx/ (SQLX_OFFLINE in .cargo/config.toml)."""
    cargo = require("cargo")
    env = {key: value for key, value in cargo_env.items() if key != "DATABASE_URL"}
    started = time.monotonic()
    result = run([cargo, "build", "--locked", "--all-targets"], cwd=switched, env=env)
    print(f"cargo build --locked of the switched service: {time.monotonic() - started:.1f} s")
    assert result.returncode == 0, result.stdout + result.stderr
