"""The `deploy_target` question reaching services that exist, through `copier update`.

The template at BEFORE (the last commit without the question) is release V_A, the working
tree V_B (harness/releases.py `since_commit`). A service generated at V_A and edited by its
team is updated to V_B with `--defaults`: it keeps its placeholder deploys and gains no
deploy/ (the question's default). Then `copier update -d deploy_target=kubernetes` at the
same release adds deploy/ and switches the deploy jobs to kubectl, keeping the team's
edits, also in the files it changes (.gitlab-ci.yml, README.md).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.git import commit_all
from harness.pipeline import GITLAB_CI, load_ci
from harness.releases import V_B
from harness.update import (
    TEAM_NOTES,
    assert_merged_cleanly,
    copier_update,
    generated_before_and_updated,
    recorded_answers,
)

pytestmark = [pytest.mark.update, pytest.mark.usefixtures("isolated_update_tools")]

# The template before deploy_target: its copier.yml has no such question.
BEFORE = "d9e8375bc68ecf02eb0b720cd7c54ea90cade36c"
TEAM_TIMEOUT = "45 minutes"


@pytest.fixture(scope="module")
def updated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Generated before the question, edited by the team, updated to V_B."""

    def team_edit(project: Path) -> None:
        ci = project / GITLAB_CI
        ci.write_text(
            ci.read_text().replace("\ntest:\n", f"\ntest:\n  timeout: {TEAM_TIMEOUT}\n", 1)
        )

    return generated_before_and_updated(BEFORE, tmp_path_factory, team_edit)


@pytest.fixture(scope="module")
def switched(updated: Path) -> Path:
    """The updated service, then `copier update -d deploy_target=kubernetes`."""
    commit_all(updated, f"Update to the template {V_B}")
    copier_update(updated, deploy_target="kubernetes")
    return updated


def assert_team_edits_kept_without_conflicts(project: Path) -> None:
    assert load_ci(project / GITLAB_CI)["test"]["timeout"] == TEAM_TIMEOUT
    assert TEAM_NOTES in (project / "README.md").read_text()
    assert_merged_cleanly(project)


def test_an_update_from_before_the_question_keeps_the_placeholder_deploys(updated: Path) -> None:
    assert recorded_answers(updated)["_commit"] == V_B
    assert recorded_answers(updated)["deploy_target"] == "placeholder"
    assert not (updated / "deploy").exists()
    assert load_ci(updated / GITLAB_CI)["deploy-staging"]["script"] == [
        'echo "would deploy $RELEASE_IMAGE to the staging environment"'
    ]
    assert_team_edits_kept_without_conflicts(updated)


def test_the_kubernetes_answer_adds_the_manifests_and_switches_the_deploy_jobs(
    switched: Path,
) -> None:
    assert recorded_answers(switched)["deploy_target"] == "kubernetes"
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
