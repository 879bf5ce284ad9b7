"""An update from the release existing services were generated from, to the working tree.

PREVIOUS_RELEASE (commit d2fd421, "README, CHANGELOG: the suite's own engine, the tests
that changed") is the template before the production service pieces (JSON logs through
tracing, /livez, /readyz, /metrics, the drain on SIGTERM, the healthcheck subcommand): its
service logs with env_logger and, besides the greeting, answers /health only. It already
derives the slug from the project name. A team's route in src/routes.rs must survive
`copier update` to the working tree, and the new pieces must arrive.
"""

from __future__ import annotations

import pytest

from harness.git import commit_all, git
from harness.processes import require, run
from harness.releases import replace_once, since_commit
from harness.update import (
    CONFLICT_MARKER,
    Updated,
    copier_update,
    generate_with_copier,
    read,
    stray_rejects,
    unmerged,
)

pytestmark = [pytest.mark.update, pytest.mark.usefixtures("isolated_update_tools")]

PREVIOUS_RELEASE = "d2fd42184b0b6dce257bfda745a0a505cba2b230"
TEAM_HANDLER = """
/// Added by the team: must survive template updates.
#[get("/team/version")]
async fn team_version() -> &'static str {
    env!("CARGO_PKG_VERSION")
}
"""
NEW_SERVICE_FILES = (
    "src/healthcheck.rs",
    "src/metrics.rs",
    "src/middleware.rs",
    "src/operations.rs",
    "src/telemetry.rs",
    "monitoring/prometheus.yml",
)


@pytest.fixture(scope="module")
def from_previous_release(tmp_path_factory: pytest.TempPathFactory) -> Updated:
    """A service generated with copier from PREVIOUS_RELEASE, its src/routes.rs edited by
    the team, then updated to this working tree."""
    repo = since_commit(
        tmp_path_factory.mktemp("release") / "rust-service-template", PREVIOUS_RELEASE
    )
    project = generate_with_copier(repo, tmp_path_factory.mktemp("previous"))
    routes = project / "src" / "routes.rs"
    text = replace_once(
        routes.read_text(), ".service(greet);", ".service(greet).service(team_version);", "routes"
    )
    routes.write_text(text + TEAM_HANDLER)
    commit_all(project, "Team route")
    return copier_update(project)


def test_an_update_from_the_previous_release_keeps_routes_and_brings_the_service_pieces(
    from_previous_release: Updated,
) -> None:
    project = from_previous_release.path
    routes = read(project, "src/routes.rs")
    assert '#[get("/team/version")]' in routes and ".service(team_version)" in routes
    assert not unmerged(project) and not stray_rejects(project)
    for name in git(project, "ls-files").stdout.split():
        assert not CONFLICT_MARKER.search(read(project, name)), name
    for name in NEW_SERVICE_FILES:
        assert (project / name).is_file(), name
    cargo_toml = read(project, "Cargo.toml")
    assert "tracing-subscriber" in cargo_toml and "env_logger" not in cargo_toml
    assert 'name = "tracing-subscriber"' in read(project, "Cargo.lock")
    assert "HEALTHCHECK" in read(project, "Dockerfile")


@pytest.mark.slow
def test_the_service_updated_from_the_previous_release_builds_and_serves_the_team_route(
    from_previous_release: Updated, cargo_env: dict[str, str]
) -> None:
    cargo = require("cargo")
    project = from_previous_release.path
    run([cargo, "test", "--locked"], cwd=project, env=cargo_env)
    team_test = """
#[actix_web::test]
async fn the_team_route_answers_through_the_template_middleware() {
    let app = actix_web::test::init_service(app(AppState::default())).await;
    let request = actix_web::test::TestRequest::get().uri("/team/version").to_request();
    let response = actix_web::test::call_service(&app, request).await;
    assert_eq!(response.status(), 200);
    assert!(response.headers().contains_key("x-request-id"));
}
"""
    api = project / "tests" / "api.rs"
    api.write_text(api.read_text() + team_test)
    result = run(
        [cargo, "test", "--locked", "--test", "api", "team_route"], cwd=project, env=cargo_env
    )
    assert "test the_team_route_answers_through_the_template_middleware ... ok" in result.stdout
