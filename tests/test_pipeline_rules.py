"""Which GitLab jobs each kind of push runs, as gitlab-ci-local itself evaluates the rules.

`--list-json` on the repository of tests/conftest.py's `ci_repo` fixture (a bare origin,
since `rules:changes` compares with origin/main); no job runs. The expected sets are the
table under "GitLab: the contract" in docs/pipeline.md.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.pipeline import (
    BRANCH_PIPELINE,
    TAG_ARGS,
    TAG_PIPELINE,
    list_jobs,
    selected_jobs,
    tag_args,
)

WITH_BUILDER_IMAGE = {"builder-image": "on_success", **BRANCH_PIPELINE}


@pytest.mark.parametrize(
    ("ref", "args", "expected"),
    [
        pytest.param("feature", [], BRANCH_PIPELINE, id="push-to-feature-branch"),
        pytest.param("main", [], BRANCH_PIPELINE, id="push-to-default-branch"),
        pytest.param("v1.0.0", TAG_ARGS, TAG_PIPELINE, id="tag"),
        pytest.param("builder", [], WITH_BUILDER_IMAGE, id="builder-dockerfile-changed"),
        pytest.param(
            "main",
            ["--variable", "BUILD_BUILDER_IMAGE=true"],
            WITH_BUILDER_IMAGE,
            id="builder-image-on-demand",
        ),
        pytest.param(
            "v1.1.0-builder",
            tag_args("v1.1.0-builder"),
            TAG_PIPELINE,
            id="tag-never-rebuilds-builder-image",
        ),
    ],
)
def test_pipeline_runs_exactly_the_jobs_of_the_contract(
    ci_repo: Path, ref: str, args: list[str], expected: dict[str, str]
) -> None:
    assert selected_jobs(ci_repo, ref, *args) == expected


def test_check_waits_for_a_builder_image_built_in_the_same_pipeline(ci_repo: Path) -> None:
    check = next(job for job in list_jobs(ci_repo, "builder") if job["name"] == "check")
    assert check["needs"] == [{"job": "builder-image", "artifacts": True, "optional": True}]
