"""The generated GitLab pipeline run for real (marker ``pipeline``).

gitlab-ci-local runs it with the docker executor on the suite's own engine, in the
builder image built from the generated ci/builder.Dockerfile and a helper image
(harness/pipeline.py builds both); docs/pipeline.md lists what each test shows.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from harness.containers import Container
from harness.engine import docker, suite_engine_socket
from harness.git import git
from harness.pipeline import (
    ENGINE_IN_JOB,
    SLUG,
    TEST_REGISTRY,
    Pipeline,
    build_builder_image,
    build_helper_image,
    output_of,
    pipeline_for,
    sccache_stats,
    tag_args,
    tag_pipeline_override,
)
from harness.processes import require
from harness.redis import redis_server as start_redis_server

# The container tier's engine, base images and container fixtures.
Render = Callable[..., Path]  # the `rendered` fixture (tests/conftest.py)


@pytest.fixture(scope="session")
def pipeline_engine(docker_engine: str, base_images: None) -> str:
    """The container tier's engine and stand-in base images, and gitlab-ci-local's tools."""
    require("gitlab-ci-local")
    require("rsync")
    require("git")
    return docker_engine


@pytest.fixture(scope="session")
def builder_image(pipeline_engine: str, tmp_path_factory: pytest.TempPathFactory) -> str:
    return build_builder_image(tmp_path_factory.mktemp("builder"))


@pytest.fixture(scope="session")
def helper_image(pipeline_engine: str, tmp_path_factory: pytest.TempPathFactory) -> str:
    return build_helper_image(tmp_path_factory.mktemp("helper"))


@pytest.fixture(scope="module")
def default_pipeline(
    builder_image: str,
    helper_image: str,
    rendered: Render,
    tmp_path_factory: pytest.TempPathFactory,
) -> Pipeline:
    root = tmp_path_factory.mktemp("pipeline")
    return pipeline_for(rendered(), root, builder_image, helper_image)


@pytest.fixture
def redis_server() -> Iterator[str]:
    with start_redis_server() as url:
        yield url


@pytest.mark.pipeline
def test_branch_pipeline_runs_check_and_test_and_the_warm_run_hits_the_cache(
    default_pipeline: Pipeline, record_property: Callable[[str, object], None]
) -> None:
    """Cold, then warm from GitLab's cache (.gitlab-ci-local/cache): same jobs, both green.

    Times are printed and recorded, not asserted; benchmarks/pipeline.py measures them
    properly.
    """
    repo = default_pipeline.repo
    git(repo, "checkout", "-q", "-B", "feature", "main")
    times = {}
    outputs = {}
    for run_name in ("cold", "warm"):
        started = time.monotonic()
        result = default_pipeline.run()
        times[run_name] = time.monotonic() - started
        outputs[run_name] = output_of(result)
        assert default_pipeline.result(outputs[run_name]) == {"check": "PASS", "test": "PASS"}
    # Warm: target/ came back from the cache, so nothing is compiled and sccache, asked
    # nothing, misses nothing (the Redis test below shows sccache's own hits).
    for job in ("check", "test"):
        stats = sccache_stats(outputs["warm"], job)
        assert int(stats["Cache misses"]) == 0, stats
    assert "Compiling actix-web" in outputs["cold"]
    assert "Compiling actix-web" not in outputs["warm"]
    ratio = times["warm"] / times["cold"]
    record_property("pipeline_cold_s", round(times["cold"], 1))
    record_property("pipeline_warm_s", round(times["warm"], 1))
    print(
        f"\nbranch pipeline: cold {times['cold']:.0f} s, warm {times['warm']:.0f} s, "
        f"ratio {ratio:.2f}"
    )


@pytest.mark.pipeline
def test_check_job_fails_on_a_formatting_error(default_pipeline: Pipeline) -> None:
    repo = default_pipeline.repo
    git(repo, "checkout", "-q", "-B", "badly-formatted", "main")
    main_rs = repo / "src" / "main.rs"
    main_rs.write_text(main_rs.read_text() + "\nfn   badly_formatted( ) {}\n")
    git(repo, "commit", "-q", "-am", "bad format")
    try:
        result = default_pipeline.run("check", check=False)
    finally:
        git(repo, "checkout", "-q", "main")
    output = output_of(result)
    assert default_pipeline.result(output) == {"check": "FAIL"}
    assert "Diff in" in output and "badly_formatted" in output


@pytest.mark.pipeline
def test_tag_pipeline_builds_publishes_an_image_that_answers_and_writes_release_notes(
    default_pipeline: Pipeline, run_container: Callable[..., Container]
) -> None:
    """The release job's script for real: the notes are v1.0.0's CHANGELOG.md section."""
    repo = default_pipeline.repo
    git(repo, "checkout", "-q", "main")
    changelog = repo / "CHANGELOG.md"
    section = "## [1.0.0] - 2025-05-01\n\n- The first release of the service.\n\n"
    changelog.write_text(changelog.read_text().replace("## Unreleased", section + "## Unreleased"))
    git(repo, "commit", "-q", "-am", "changelog for 1.0.0")
    git(repo, "push", "-q", "origin", "main")
    git(repo, "tag", "-f", "v1.0.0")
    git(repo, "checkout", "-q", "v1.0.0")
    image = f"{TEST_REGISTRY}/{SLUG}:v1.0.0"
    docker("image", "rm", "-f", image, check=False)
    override = tag_pipeline_override(repo)
    origin = str(repo.parent / "origin.git")
    result = default_pipeline.run(
        "--file",
        override.name,
        *tag_args("v1.0.0"),
        "--volume",
        f"{suite_engine_socket()}:{ENGINE_IN_JOB}",
        "--volume",
        f"{origin}:{origin}",
    )
    output = output_of(result)
    assert default_pipeline.result(output) == {
        "build": "PASS",
        "test": "PASS",
        "publish": "PASS",
        "release": "PASS",
    }
    binary = repo / ".gitlab-ci-local" / "artifacts" / "build" / "target" / "release" / SLUG
    assert binary.read_bytes()[:4] == b"\x7fELF"
    container = run_container(image)
    assert container.get("/Pete") == (200, "Hello Pete!")
    # The job prints the notes it wrote for the release keyword (job output: "release > ").
    printed = [
        line.split(" > ", 1)[1]
        for line in output.splitlines()
        if line.startswith("release ") and " > " in line
    ]
    assert "- The first release of the service." in printed, output[-3000:]
    assert not any(line.startswith("Changes") for line in printed), printed


@pytest.mark.pipeline
@pytest.mark.parametrize(
    ("on_default_branch", "verdict"),
    [(True, "PASS"), (False, "FAIL")],
    ids=["tag-on-default-branch", "tag-off-default-branch"],
)
def test_production_deploy_only_for_tags_on_the_default_branch(
    default_pipeline: Pipeline, on_default_branch: bool, verdict: str
) -> None:
    repo = default_pipeline.repo
    tag = "v1.0.1" if on_default_branch else "v1.0.1-topic"
    git(repo, "checkout", "-q", "-B", "main" if on_default_branch else "topic", "main")
    if on_default_branch:
        git(repo, "commit", "-q", "--allow-empty", "-m", "release 1.0.1")
        git(repo, "push", "-q", "origin", "main")
    else:
        git(repo, "commit", "-q", "--allow-empty", "-m", "unreleased work")
    git(repo, "tag", "-f", tag)
    git(repo, "checkout", "-q", tag)
    origin = str(repo.parent / "origin.git")
    result = default_pipeline.run(
        "--manual",
        "deploy-production",
        "deploy-production",
        *tag_args(tag),
        "--volume",
        f"{origin}:{origin}",
        check=False,
    )
    git(repo, "checkout", "-q", "main")
    output = output_of(result)
    assert default_pipeline.result(output) == {"deploy-production": verdict}
    if on_default_branch:
        assert f"would deploy {TEST_REGISTRY}/{SLUG}:{tag} to the production environment" in output
    else:
        assert f"refusing to deploy {tag}" in output


@pytest.mark.pipeline
def test_redis_backend_shares_the_cache_with_a_second_fresh_runner(
    builder_image: str,
    helper_image: str,
    redis_server: str,
    rendered: Render,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """Two runners, each with an empty cargo home, target dir and GitLab cache."""
    project = rendered(sccache_backend="redis")
    stats = {}
    for runner in ("first", "second"):
        pipeline = pipeline_for(
            project, tmp_path_factory.mktemp(f"runner-{runner}"), builder_image, helper_image
        )
        result = pipeline.run("check", "--variable", f"SCCACHE_REDIS_ENDPOINT={redis_server}")
        output = output_of(result)
        assert pipeline.result(output) == {"check": "PASS"}
        stats[runner] = sccache_stats(output, "check")
    for runner in stats:
        print(
            f"\nredis, {runner} runner: hits {stats[runner]['Cache hits']}, "
            f"misses {stats[runner]['Cache misses']}"
        )
        assert "redis" in stats[runner]["Cache location"].lower(), stats[runner]
    assert int(stats["first"]["Cache misses"]) > 0, stats["first"]
    assert int(stats["second"]["Cache hits"]) > 0, stats["second"]
    assert int(stats["second"]["Cache misses"]) == 0, stats["second"]
