"""`copier update -d deploy_target=kubernetes`: an existing service switches its deploys over.

The service was generated with the default answer (placeholder deploy jobs) and a team
edited it since; updating to the same template release with the new answer adds deploy/
and switches the deploy jobs to kubectl, and keeps the team's edits, also in the files it
changes (.gitlab-ci.yml, README.md).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from harness import TEMPLATE_DIR
from harness.git import GIT_ENV, commit_all, git, init_repo
from harness.pipeline import GITLAB_CI, load_ci
from harness.processes import run
from harness.render import default_answers, render_copier

pytestmark = pytest.mark.update

RELEASE = "v1.0.0"
TEAM_TIMEOUT = "45 minutes"
TEAM_NOTES = "On-call for this service: team Pete. Written by the team."
CONFLICT_MARKER = re.compile(r"^(<<<<<<<|>>>>>>>) ", re.MULTILINE)


@pytest.fixture(scope="module")
def git_identity() -> Iterator[None]:
    """copier commits in its own temporary clones: the suite's git identity, for this
    process and for copier's git (plumbum copies the environment when it is imported)."""
    from plumbum import local

    with pytest.MonkeyPatch.context() as patch, local.env(**GIT_ENV):
        for name, value in GIT_ENV.items():
            patch.setenv(name, value)
        yield


@pytest.fixture(scope="module")
def template_release(tmp_path_factory: pytest.TempPathFactory, git_identity: None) -> Path:
    """The template's working tree (tracked and new files) as a repository tagged RELEASE."""
    listed = run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=TEMPLATE_DIR
    ).stdout.split("\0")
    repo = tmp_path_factory.mktemp("template") / "rust-service-template"
    for name in listed:
        if name and (TEMPLATE_DIR / name).is_file():
            (repo / name).parent.mkdir(parents=True, exist_ok=True)
            (repo / name).write_bytes((TEMPLATE_DIR / name).read_bytes())
            (repo / name).chmod((TEMPLATE_DIR / name).stat().st_mode)
    init_repo(repo, f"Template {RELEASE}")
    git(repo, "tag", RELEASE)
    return repo


@pytest.fixture(scope="module")
def switched(template_release: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Generated with placeholder deploys, edited by the team, updated to kubernetes."""
    import copier

    project = tmp_path_factory.mktemp("service") / "svc"
    render_copier(project, template=template_release, vcs_ref=RELEASE, **default_answers())
    init_repo(project, f"Generated from the template {RELEASE}")
    ci = project / GITLAB_CI
    ci.write_text(ci.read_text().replace("\ntest:\n", f"\ntest:\n  timeout: {TEAM_TIMEOUT}\n", 1))
    readme = project / "README.md"
    readme.write_text(readme.read_text() + f"\n## Team notes\n\n{TEAM_NOTES}\n")
    commit_all(project, "Team edits")
    copier.run_update(
        str(project),
        vcs_ref=RELEASE,
        data={"deploy_target": "kubernetes"},
        defaults=True,
        overwrite=True,
        unsafe=True,
        quiet=True,
    )
    return project


def test_the_update_adds_the_manifests_and_switches_the_deploy_jobs(switched: Path) -> None:
    answers = yaml.safe_load((switched / ".copier-answers.yml").read_text())
    assert answers["deploy_target"] == "kubernetes"
    assert (switched / "deploy/rollout.sh").is_file()
    for directory in ("base", "overlays/staging", "overlays/production"):
        assert (switched / "deploy" / directory / "kustomization.yaml").is_file(), directory
    ci = load_ci(switched / GITLAB_CI)
    assert ci[".deploy"]["image"] == "alpine/k8s:$KUBECTL_VERSION"
    for environment in ("staging", "production"):
        assert ci[f"deploy-{environment}"]["script"][-1].startswith(
            f"sh deploy/rollout.sh {environment} "
        )
    assert "## Deploying to Kubernetes" in (switched / "README.md").read_text()


def test_the_update_keeps_the_teams_edits_without_conflicts(switched: Path) -> None:
    assert load_ci(switched / GITLAB_CI)["test"]["timeout"] == TEAM_TIMEOUT
    assert TEAM_NOTES in (switched / "README.md").read_text()
    assert not git(switched, "ls-files", "--unmerged").stdout
    for path in switched.rglob("*"):
        if path.is_file() and ".git" not in path.parts:
            assert not CONFLICT_MARKER.search(path.read_text(errors="replace")), path
