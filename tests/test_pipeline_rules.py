"""Which GitLab pipelines are created and which jobs they run, as gitlab-ci-local evaluates
the rules.

`--list-json` on the repository of tests/conftest.py's `ci_repo` fixture (a bare origin,
since `rules:changes` compares with origin/main); no job runs. Each kind of pipeline is
told to gitlab-ci-local through GitLab's predefined variables (harness.pipeline.PIPELINES,
which is also the table under "GitLab: which pipeline runs which jobs" in
docs/pipeline.md). gitlab-ci-local applies `workflow:rules` only for their variables, so
harness.pipeline.pipeline_jobs evaluates them with a probe job carrying the same rules.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from harness import TEMPLATE_DIR
from harness.pipeline import (
    BRANCH_PIPELINE,
    PIPELINES,
    Source,
    list_jobs,
    pipeline_jobs,
    selected_jobs,
)

DOCS = TEMPLATE_DIR / "docs" / "pipeline.md"


@pytest.mark.parametrize("source", PIPELINES.values(), ids=PIPELINES.keys())
def test_pipeline_runs_exactly_the_jobs_of_the_contract(ci_repo: Path, source: Source) -> None:
    assert pipeline_jobs(ci_repo, source) == source.jobs


def test_the_docs_table_is_the_expected_pipelines() -> None:
    """docs/pipeline.md shows PIPELINES row for row (regenerate it from Source.row)."""
    table = "\n".join(source.row() for source in PIPELINES.values())
    assert table in DOCS.read_text(), f"docs/pipeline.md should have these rows:\n{table}"


def test_gitlab_ci_local_alone_ignores_the_workflow(ci_repo: Path) -> None:
    """Why the probe exists: without it, a push to a branch with an open merge request
    would list check and test, where GitLab creates no branch pipeline at all."""
    source = PIPELINES["push-to-branch-with-merge-request"]
    assert selected_jobs(ci_repo, source.ref, *source.args()) == BRANCH_PIPELINE
    assert pipeline_jobs(ci_repo, source) == {}


def test_jobs_in_the_builder_image_wait_for_the_builder_image_job(ci_repo: Path) -> None:
    """check and the deny jobs start once builder-image has found or built $BUILDER_IMAGE;
    build and test are in later stages."""
    jobs = {job["name"]: job for job in list_jobs(ci_repo, "lock")}
    for name in ("check", "deny", "deny-advisories"):
        assert jobs[name]["needs"] == [
            {"job": "builder-image", "artifacts": True, "optional": False}
        ], name
