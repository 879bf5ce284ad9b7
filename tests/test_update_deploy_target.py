"""The `deploy_target` question reaching services that exist, through `copier update`.

The template at BEFORE (the last commit without the question) is release v1.0.0, the
working tree v1.1.0. A service generated at v1.0.0 and edited by its team is updated to
v1.1.0 with `--defaults`: it keeps its placeholder deploys and gains no deploy/ (the
question's default). Then `copier update -d deploy_target=kubernetes` at the same release
adds deploy/ and switches the deploy jobs to kubectl, keeping the team's edits, also in
the files it changes (.gitlab-ci.yml, README.md).
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from harness import TEMPLATE_DIR
from harness.git import GIT_ENV, commit_all, git, init_repo
from harness.pipeline import GITLAB_CI, load_ci
from harness.render import default_answers, render_copier

pytestmark = pytest.mark.update

# The template before deploy_target: its copier.yml has no such question.
BEFORE = "d9e8375bc68ecf02eb0b720cd7c54ea90cade36c"
V_A, V_B = "v1.0.0", "v1.1.0"
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
def template_releases(tmp_path_factory: pytest.TempPathFactory, git_identity: None) -> Path:
    """The template at BEFORE tagged V_A, the working tree (tracked and new files) V_B."""
    repo = tmp_path_factory.mktemp("template") / "rust-service-template"
    repo.mkdir()
    archive = subprocess.run(
        ["git", "archive", BEFORE], cwd=TEMPLATE_DIR, capture_output=True, check=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(repo)], input=archive, check=True)
    init_repo(repo, f"Template at {BEFORE[:7]}")
    git(repo, "tag", V_A)
    git(repo, "rm", "-rq", ".")
    listed = git(TEMPLATE_DIR, "ls-files", "-z", "--cached", "--others", "--exclude-standard")
    for name in listed.stdout.split("\0"):
        if name and (TEMPLATE_DIR / name).is_file():
            (repo / name).parent.mkdir(parents=True, exist_ok=True)
            (repo / name).write_bytes((TEMPLATE_DIR / name).read_bytes())
            (repo / name).chmod((TEMPLATE_DIR / name).stat().st_mode)
    commit_all(repo, "Template as in the working tree")
    git(repo, "tag", V_B)
    return repo


def copier_update(project: Path, **data: str) -> None:
    import copier

    copier.run_update(
        str(project), vcs_ref=V_B, data=data, defaults=True, overwrite=True, unsafe=True, quiet=True
    )


@pytest.fixture(scope="module")
def updated(template_releases: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Generated at V_A (before the question), edited by the team, updated to V_B."""
    project = tmp_path_factory.mktemp("service") / "svc"
    render_copier(project, template=template_releases, vcs_ref=V_A, **default_answers())
    init_repo(project, f"Generated from the template {V_A}")
    ci = project / GITLAB_CI
    ci.write_text(ci.read_text().replace("\ntest:\n", f"\ntest:\n  timeout: {TEAM_TIMEOUT}\n", 1))
    readme = project / "README.md"
    readme.write_text(readme.read_text() + f"\n## Team notes\n\n{TEAM_NOTES}\n")
    commit_all(project, "Team edits")
    copier_update(project)
    return project


@pytest.fixture(scope="module")
def switched(updated: Path) -> Path:
    """The updated service, then `copier update -d deploy_target=kubernetes`."""
    commit_all(updated, f"Update to the template {V_B}")
    copier_update(updated, deploy_target="kubernetes")
    return updated


def answers(project: Path) -> dict:
    return yaml.safe_load((project / ".copier-answers.yml").read_text())


def assert_team_edits_kept_without_conflicts(project: Path) -> None:
    assert load_ci(project / GITLAB_CI)["test"]["timeout"] == TEAM_TIMEOUT
    assert TEAM_NOTES in (project / "README.md").read_text()
    assert not git(project, "ls-files", "--unmerged").stdout
    for path in project.rglob("*"):
        if path.is_file() and ".git" not in path.parts:
            assert not CONFLICT_MARKER.search(path.read_text(errors="replace")), path


def test_an_update_from_before_the_question_keeps_the_placeholder_deploys(updated: Path) -> None:
    assert answers(updated)["_commit"] == V_B
    assert answers(updated)["deploy_target"] == "placeholder"
    assert not (updated / "deploy").exists()
    assert load_ci(updated / GITLAB_CI)["deploy-staging"]["script"] == [
        'echo "would deploy $RELEASE_IMAGE to the staging environment"'
    ]
    assert_team_edits_kept_without_conflicts(updated)


def test_the_kubernetes_answer_adds_the_manifests_and_switches_the_deploy_jobs(
    switched: Path,
) -> None:
    assert answers(switched)["deploy_target"] == "kubernetes"
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
    assert_team_edits_kept_without_conflicts(switched)
