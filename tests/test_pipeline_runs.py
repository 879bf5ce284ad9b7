"""The generated GitLab pipeline run for real (marker ``pipeline``).

gitlab-ci-local runs it with the docker executor on the suite's own engine, in the
builder image built from the generated ci/builder.Dockerfile and a helper image
(harness/pipeline.py builds both); docs/pipeline.md lists what each test shows.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import os
import re
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from xml.etree import ElementTree

import pytest
import yaml

from harness.advisories import (
    FIXTURE_ADVISORY,
    advisory_db_variables,
    git_daemon,
    write_advisory_db,
)
from harness.containers import Container, ensure_base_images
from harness.engine import docker
from harness.git import git, init_repo
from harness.kubernetes import closed_port_kubeconfig
from harness.pipeline import (
    BUILDER_DOCKERFILE,
    COVERAGE_REPORT,
    GITLAB_CI,
    JUNIT_REPORT,
    SLUG,
    TEST_REGISTRY,
    Pipeline,
    build_builder_image,
    build_helper_image,
    expand,
    job_service,
    job_service_override,
    load_ci,
    make_ci_repo,
    output_of,
    pipeline_for,
    project_registry,
    run_tag_pipeline,
    runner_docker,
    sccache_stats,
    tag_args,
)
from harness.processes import free_port, require, run
from harness.redis import redis_server as start_redis_server
from harness.registry import Registry

# The container tier's engine, base images and container fixtures.
Render = Callable[..., Path]  # the `rendered` fixture (tests/conftest.py)
# A branch pipeline of the default answers, all green.
BRANCH_RESULT = {"builder-image": "PASS", "check": "PASS", "deny": "PASS", "test": "PASS"}


# Appended to the generated tests/api.rs to make the test job fail.
FAILING_TEST = """
#[test]
fn deliberately_failing() {
    assert_eq!(1 + 1, 3, "deliberately failing");
}
"""


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
def ci_registry(pipeline_engine: str, rendered: Render) -> Iterator[Registry]:
    """The project's registry (harness.pipeline.project_registry): builder-image asks it
    for $BUILDER_IMAGE, publish pushes to it."""
    with project_registry(rendered()) as started:
        yield started


@pytest.fixture(scope="module")
def buildah_runner(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The docker CLI of a runner that lets Buildah's RUN steps unshare (README, "CI")."""
    return runner_docker(tmp_path_factory.mktemp("runner"))


@pytest.fixture(scope="module")
def default_pipeline(
    builder_image: str,
    helper_image: str,
    ci_registry: Registry,
    buildah_runner: str,
    rendered: Render,
    tmp_path_factory: pytest.TempPathFactory,
) -> Pipeline:
    """The default answers' pipeline, its builder image in the registry already."""
    root = tmp_path_factory.mktemp("pipeline")
    return pipeline_for(rendered(), root, builder_image, helper_image, ci_registry, buildah_runner)


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
        assert default_pipeline.result(outputs[run_name]) == BRANCH_RESULT
    # builder-image found $BUILDER_IMAGE in the registry, and the jobs that need it started
    # after it finished.
    cold = outputs["cold"].splitlines()
    builder = default_pipeline.builder_image_name()
    assert f"{builder} is in the registry: nothing to build" in job_lines(
        outputs["cold"], "builder-image"
    )
    finished = line_index(cold, r"builder-image +finished in ")
    for job in ("check", "deny"):
        assert line_index(cold, rf"{job} +starting {re.escape(builder)} ") > finished, job
    # Warm: target/ came back from the cache without the service crate (the cargo jobs'
    # after_script cleans it), so only that crate is compiled, and sccache, which cached
    # it in the cold run, misses nothing (the Redis test below shows sccache's own hits).
    for job in ("check", "test"):
        stats = sccache_stats(outputs["warm"], job)
        assert int(stats["Cache misses"]) == 0, stats
        assert "actix-web" in built_crates(outputs["cold"], job)
        assert built_crates(outputs["warm"], job) == {SLUG}, job
    ratio = times["warm"] / times["cold"]
    record_property("pipeline_cold_s", round(times["cold"], 1))
    record_property("pipeline_warm_s", round(times["warm"], 1))
    print(
        f"\nbranch pipeline: cold {times['cold']:.0f} s, warm {times['warm']:.0f} s, "
        f"ratio {ratio:.2f}"
    )


# A team's own builder Dockerfile, small enough to build in seconds: it writes down the
# build arguments it got, as the real one installs the versions they name.
TEAM_BUILDER = """ARG DEBIAN_RELEASE
FROM debian:${DEBIAN_RELEASE}-slim
ARG RUST_VERSION
ARG SCCACHE_VERSION
ARG SCCACHE_FEATURES=""
ARG NEXTEST_VERSION
ARG DENY_VERSION
ARG TARPAULIN_VERSION
RUN echo "rust $RUST_VERSION nextest $NEXTEST_VERSION deny $DENY_VERSION" \
    "tarpaulin $TARPAULIN_VERSION" > /builder-inputs
"""


def set_variable(repo: Path, name: str, value: str, message: str) -> None:
    """Change one of .gitlab-ci.yml's `variables:` and commit, as a team does."""
    ci = repo / GITLAB_CI
    text, count = re.subn(rf'^  {name}: ".*"$', f'  {name}: "{value}"', ci.read_text(), flags=re.M)
    assert count == 1, name
    ci.write_text(text)
    git(repo, "commit", "-q", "-am", message)


@pytest.mark.pipeline
def test_builder_image_job_builds_a_missing_tag_once_reuses_it_and_rebuilds_it_if_deleted(
    default_pipeline: Pipeline, ci_registry: Registry
) -> None:
    """The builder-image job as generated, on a branch with a team's own builder Dockerfile
    (small: the real one takes 15 minutes in Buildah here; docs/pipeline.md), against the
    project's registry on loopback."""
    pipeline, repo = default_pipeline, default_pipeline.repo

    def builder_job() -> tuple[str, list[str]]:
        output = output_of(pipeline.run("builder-image", check=False))
        verdict = pipeline.result(output).get("builder-image", "none")
        return verdict, job_lines(output, "builder-image")

    with on_branch(repo, "team-builder"):
        dockerfile = repo / BUILDER_DOCKERFILE
        dockerfile.write_text(TEAM_BUILDER)
        git(repo, "commit", "-q", "-am", "our own builder")
        # The edited Dockerfile is refused until its hash is in `variables:`.
        verdict, lines = builder_job()
        digest = hashlib.sha256(dockerfile.read_bytes()).hexdigest()[:12]
        assert verdict == "FAIL", lines
        expected = f'{BUILDER_DOCKERFILE} changed: set BUILDER_DOCKERFILE_SHA256 to "{digest}"'
        assert f"{expected} in .gitlab-ci.yml" in lines, lines
        set_variable(repo, "BUILDER_DOCKERFILE_SHA256", digest, "the builder's new hash")
        first = pipeline.builder_image_name()
        assert digest in first and not ci_registry.has(first)
        # Missing: built and pushed.
        verdict, lines = builder_job()
        assert verdict == "PASS", lines
        assert f"{first} is not in the registry: building it" in lines, lines
        pushed = ci_registry.digest(first)
        # Present: reused, not rebuilt, not pushed again.
        verdict, lines = builder_job()
        assert verdict == "PASS", lines
        assert f"{first} is in the registry: nothing to build" in lines, lines
        assert not any(line.startswith("STEP ") for line in lines), lines
        assert ci_registry.digest(first) == pushed
        # A version bump is a new tag, built; the old tag keeps its image.
        set_variable(repo, "NEXTEST_VERSION", "0.9.999", "a newer nextest")
        second = pipeline.builder_image_name()
        assert second != first and "nextest-0.9.999" in second
        verdict, lines = builder_job()
        assert verdict == "PASS", lines
        assert f"{second} is not in the registry: building it" in lines, lines
        assert ci_registry.has(second) and ci_registry.digest(first) == pushed
        # Deleted by a cleanup: the next pipeline builds it again.
        ci_registry.delete(second)
        assert not ci_registry.has(second)
        verdict, lines = builder_job()
        assert verdict == "PASS", lines
        assert f"{second} is not in the registry: building it" in lines, lines
        assert ci_registry.has(second)


def line_index(lines: list[str], pattern: str) -> int:
    """The index of the first line that `pattern` matches at its start."""
    return next(i for i, line in enumerate(lines) if re.match(pattern, line))


@contextlib.contextmanager
def on_branch(repo: Path, branch: str) -> Iterator[None]:
    """A branch made from main, checked out for the block; main checked out again after."""
    git(repo, "checkout", "-q", "-B", branch, "main")
    try:
        yield
    finally:
        git(repo, "checkout", "-q", "main")


def built_crates(output: str, job: str) -> set[str]:
    """The crates cargo compiled or checked in a job: `Compiling actix-web v4.18.1`."""
    verbs = ("Compiling ", "Checking ")
    lines = [line.split(" > ", 1)[1].strip() for line in output.splitlines()
             if line.startswith(f"{job} ") and " > " in line]  # fmt: skip
    return {line.split()[1] for line in lines if line.startswith(verbs)}


@pytest.mark.pipeline
def test_the_cached_target_dirs_hold_no_artifact_of_the_service_crate(
    default_pipeline: Pipeline,
) -> None:
    """The cargo jobs' after_script (`cargo clean --package <slug>`) runs before the cache
    is saved: check's and test's target/ caches keep the dependencies and nothing of the
    service's own lib, binary, test binaries or fingerprints (a fresh clone on GitLab
    rebuilds those anyway)."""
    repo = default_pipeline.repo
    git(repo, "checkout", "-q", "-B", "feature", "main")
    output = output_of(default_pipeline.run())
    assert default_pipeline.result(output) == BRANCH_RESULT, output[-3000:]
    crate = SLUG.replace("-", "_")
    test_targets = [path.stem for path in (repo / "tests").glob("*.rs")]
    own = (SLUG, crate, f"lib{crate}", *test_targets)

    def is_own(name: str) -> bool:
        return any(name == stem or name.startswith((f"{stem}-", f"{stem}.")) for stem in own)

    for job in ("check", "test"):
        [cache] = (repo / ".gitlab-ci-local" / "cache").glob(f"*target-{job}-*")
        debug = cache / "target" / "debug"
        folders = [debug, *(debug / name for name in ("deps", ".fingerprint", "build"))]
        kept = [path for folder in folders if folder.is_dir() for path in folder.iterdir()]
        assert any(path.name.startswith("libactix_web-") for path in kept), (job, kept)
        leftovers = sorted(str(path.relative_to(debug)) for path in kept if is_own(path.name))
        assert leftovers == [], job


@pytest.mark.pipeline
def test_test_job_fails_on_a_failing_test_and_its_junit_report_names_it(
    default_pipeline: Pipeline,
) -> None:
    """cargo nextest's JUnit report (.config/nextest.toml) is kept although the job failed
    (`artifacts: when: always`); gitlab-ci-local keeps artifacts in its state dir."""
    repo = default_pipeline.repo
    report = repo / ".gitlab-ci-local" / "artifacts" / "test" / JUNIT_REPORT
    report.unlink(missing_ok=True)  # a previous test job's
    # gitlab-ci-local imports the cache again before after_script (GitLab restores it once):
    # an earlier run's report in the cached target/ would replace this run's. A runner whose
    # cache holds no report shows what GitLab keeps (docs/pipeline.md).
    for cached in (repo / ".gitlab-ci-local" / "cache").glob("*target-test-*"):
        shutil.rmtree(cached / "target" / "nextest", ignore_errors=True)
    with on_branch(repo, "failing-test"):
        api = repo / "tests" / "api.rs"
        api.write_text(api.read_text() + FAILING_TEST)
        git(repo, "commit", "-q", "-am", "a failing test")
        output = output_of(default_pipeline.run("test", check=False))
    assert default_pipeline.result(output) == {"test": "FAIL"}, output[-3000:]
    cases = {
        case.get("name"): case.find("failure") is None
        for case in ElementTree.parse(report).getroot().iter("testcase")
    }
    assert cases.get("deliberately_failing") is False, (cases, output[-3000:])
    assert {name for name, passed in cases.items() if not passed} == {"deliberately_failing"}
    assert cases["a_name_is_greeted"] is True, cases


@pytest.mark.pipeline
def test_coverage_job_writes_a_cobertura_report_and_the_percentage_its_regex_reads(
    default_pipeline: Pipeline,
) -> None:
    """The coverage job as a default-branch pipeline runs it: cargo-tarpaulin's LLVM engine
    in the builder image (no llvm-tools component), a Cobertura report of the service's
    sources, and a summary line whose percentage, as the job's `coverage:` regex reads it
    from the log (GitLab's RE2 and Python's re agree on it), is the report's line rate."""
    repo = default_pipeline.repo
    git(repo, "checkout", "-q", "main")
    report = repo / ".gitlab-ci-local" / "artifacts" / "coverage" / COVERAGE_REPORT
    report.unlink(missing_ok=True)
    output = output_of(default_pipeline.run("coverage", check=False))
    assert default_pipeline.result(output) == {"coverage": "PASS"}, output[-3000:]
    root = ElementTree.parse(report).getroot()
    assert root.tag == "coverage", root.tag
    files = {element.get("filename") for element in root.iter("class")}
    assert {"src/lib.rs", "src/routes.rs"} <= files, files
    regex = re.compile(load_ci(repo / GITLAB_CI)["coverage"]["coverage"].strip("/"))
    found = [match[0] for line in job_lines(output, "coverage") if (match := regex.search(line))]
    assert found, output[-3000:]
    percent = float(found[-1].split("%")[0])
    assert percent == pytest.approx(float(root.get("line-rate", "0")) * 100, abs=0.01)
    assert 20 < percent < 100, percent


@pytest.mark.pipeline
def test_check_job_fails_on_a_formatting_error(default_pipeline: Pipeline) -> None:
    repo = default_pipeline.repo
    with on_branch(repo, "badly-formatted"):
        main_rs = repo / "src" / "main.rs"
        main_rs.write_text(main_rs.read_text() + "\nfn   badly_formatted( ) {}\n")
        git(repo, "commit", "-q", "-am", "bad format")
        output = output_of(default_pipeline.run("check", check=False))
    assert default_pipeline.result(output) == {"check": "FAIL"}
    assert "Diff in" in output and "badly_formatted" in output


# A crate of the team's, beside the service: licensed outside deny.toml's list.
GPL_CRATE = """[package]
name = "gpl-helper"
version = "0.1.0"
edition = "2021"
license = "GPL-3.0-only"
"""
# A crate from a git repository (served on loopback): a source deny.toml does not allow.
GIT_CRATE = """[package]
name = "git-helper"
version = "0.1.0"
edition = "2021"
license = "MIT"
"""


def write_crate(folder: Path, manifest: str) -> Path:
    """An empty library crate at `folder` with this Cargo.toml."""
    (folder / "src").mkdir(parents=True)
    (folder / "Cargo.toml").write_text(manifest)
    (folder / "src" / "lib.rs").write_text("")
    return folder


@pytest.mark.pipeline
def test_deny_job_refuses_a_license_and_a_git_source_outside_the_policy(
    default_pipeline: Pipeline, tmp_path: Path
) -> None:
    """The deny job as generated, on a branch that adds a GPL path dependency and a git
    dependency: it fails and names both (the branch pipelines above show it passing)."""
    repo = default_pipeline.repo
    served = tmp_path / "served"
    init_repo(write_crate(served / "git-helper", GIT_CRATE))
    with git_daemon(served) as url, on_branch(repo, "outside-the-policy"):
        write_crate(repo / "gpl-helper", GPL_CRATE)
        manifest = repo / "Cargo.toml"
        manifest.write_text(
            manifest.read_text().replace(
                "[dependencies]\n",
                '[dependencies]\ngpl-helper = { path = "gpl-helper" }\n'
                f'git-helper = {{ git = "{url}git-helper" }}\n',
                1,
            )
        )
        # Cargo.lock gains the two crates and nothing else changes (no --locked here).
        run([require("cargo"), "metadata", "--format-version", "1"], cwd=repo)
        git(repo, "add", "-A")
        git(repo, "commit", "-q", "-m", "two dependencies outside deny.toml")
        output = output_of(default_pipeline.run("deny", check=False))
    assert default_pipeline.result(output) == {"deny": "FAIL"}, output[-3000:]
    lines = "\n".join(job_lines(output, "deny"))
    assert "GPL-3.0-only" in lines and "rejected" in lines, lines[-3000:]
    assert "git-helper" in lines and "source" in lines, lines[-3000:]
    assert "licenses FAILED" in lines and "sources FAILED" in lines, lines[-3000:]


@pytest.mark.pipeline
def test_deny_advisories_fails_on_an_advisory_against_the_graph_and_passes_without(
    default_pipeline: Pipeline, tmp_path: Path
) -> None:
    """The scheduled deny-advisories job against RustSec-shaped databases on loopback (git
    config in the job's variables redirects cargo-deny's clone; harness/advisories.py):
    one advisory against itoa, which actix-web pulls in, fails it with the advisory's id;
    one against a crate outside the graph lets it pass."""
    served = tmp_path / "served"
    write_advisory_db(served / "affected", "itoa")
    write_advisory_db(served / "unrelated", "left-pad")
    repo = default_pipeline.repo
    git(repo, "checkout", "-q", "main")
    results = {}
    with git_daemon(served) as url:
        for database in ("affected", "unrelated"):
            redirect = [
                f"--variable={name}={value}"
                for name, value in advisory_db_variables(f"{url}{database}").items()
            ]
            result = default_pipeline.run(
                "deny-advisories", "--variable=CI_PIPELINE_SOURCE=schedule", *redirect, check=False
            )
            results[database] = output_of(result)
    affected, unrelated = results["affected"], results["unrelated"]
    assert default_pipeline.result(affected) == {"deny-advisories": "FAIL"}, affected[-3000:]
    lines = "\n".join(job_lines(affected, "deny-advisories"))
    assert FIXTURE_ADVISORY in lines and "itoa" in lines, lines[-3000:]
    assert default_pipeline.result(unrelated) == {"deny-advisories": "PASS"}, unrelated[-3000:]
    assert "advisories ok" in unrelated, unrelated[-3000:]


def job_lines(output: str, job: str) -> list[str]:
    """What `job` printed (gitlab-ci-local's lines "<job>   > <text>")."""
    return [
        line.split(" > ", 1)[1]
        for line in output.splitlines()
        if line.startswith(f"{job} ") and " > " in line
    ]


@pytest.mark.pipeline
def test_tag_pipeline_builds_publishes_an_image_that_answers_and_writes_release_notes(
    default_pipeline: Pipeline, ci_registry: Registry, run_container: Callable[..., Container]
) -> None:
    """Build, test and publish as written: publish logs in to a registry, builds with
    Buildah and pushes; the image pulled back by digest answers. The release job's script
    for real: the notes are v1.0.0's CHANGELOG.md section."""
    repo = default_pipeline.repo
    git(repo, "checkout", "-q", "main")
    changelog = repo / "CHANGELOG.md"
    section = "## [1.0.0] - 2025-05-01\n\n- The first release of the service.\n\n"
    changelog.write_text(changelog.read_text().replace("## Unreleased", section + "## Unreleased"))
    git(repo, "commit", "-q", "-am", "changelog for 1.0.0")
    git(repo, "push", "-q", "origin", "main")
    git(repo, "tag", "-f", "v1.0.0")
    git(repo, "checkout", "-q", "v1.0.0")
    output = run_tag_pipeline(default_pipeline)
    assert default_pipeline.result(output) == {
        "builder-image": "PASS",
        "deny": "PASS",
        "build": "PASS",
        "test": "PASS",
        "publish": "PASS",
        "release": "PASS",
    }, output[-4000:]
    assert "Login Succeeded!" in job_lines(output, "publish"), output[-4000:]
    binary = repo / ".gitlab-ci-local" / "artifacts" / "build" / "target" / "release" / SLUG
    assert binary.read_bytes()[:4] == b"\x7fELF"
    # The pushed image, by its digest, into an engine that has no copy of it.
    pushed = f"{ci_registry.host}/group/{SLUG}"
    digest = ci_registry.digest(f"{pushed}:v1.0.0")
    image = f"{TEST_REGISTRY}/{SLUG}:v1.0.0"
    docker("image", "rm", "-f", image, check=False)
    ci_registry.copy_to_engine(f"{pushed}@{digest}", image)
    container = run_container(image)
    assert container.get("/Pete") == (200, "Hello Pete!")
    # The job prints the notes it wrote for the release keyword (job output: "release > ").
    printed = job_lines(output, "release")
    assert "- The first release of the service." in printed, output[-3000:]
    assert not any(line.startswith("Changes") for line in printed), printed


@pytest.mark.pipeline
def test_publish_with_a_wrong_registry_password_fails_at_the_login(
    default_pipeline: Pipeline, ci_registry: Registry
) -> None:
    """The registry refuses the login, and nothing is built: the job stops at its
    before_script with Buildah's message."""
    repo = default_pipeline.repo
    git(repo, "tag", "-f", "v1.0.0")
    git(repo, "checkout", "-q", "v1.0.0")
    wrong = dataclasses.replace(ci_registry, password="not-the-password")
    output = run_tag_pipeline(default_pipeline, "publish", registry=wrong)
    git(repo, "checkout", "-q", "main")
    assert default_pipeline.result(output) == {"publish": "FAIL"}, output[-3000:]
    refused = f'Error: logging into "{wrong.host}": invalid username/password'
    assert refused in job_lines(output, "publish"), output[-3000:]
    assert "STEP 1/" not in output, output[-3000:]


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
        image = f"{default_pipeline.registry_image}:{tag}"
        assert f"would deploy {image} to the production environment" in output
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


# ------------------------------------------------------------------ deploy_target=kubernetes
@pytest.fixture(scope="module")
def kubectl_image(pipeline_engine: str, rendered: Render) -> str:
    """The deploy jobs' image (a stand-in where it cannot be pulled: harness/standins.py)."""
    variables = load_ci(rendered(deploy_target="kubernetes") / GITLAB_CI)["variables"]
    image = f"alpine/k8s:{variables['KUBECTL_VERSION']}"
    ensure_base_images([image])
    return image


def job_output(output: str, job: str) -> str:
    return "\n".join(line for line in output.splitlines() if line.startswith(f"{job} "))


@pytest.mark.pipeline
def test_kubernetes_deploy_jobs_render_the_release_and_stop_where_no_cluster_answers(
    kubectl_image: str, helper_image: str, rendered: Render, tmp_path: Path
) -> None:
    """Both deploy jobs as generated, in their image, with the GitLab agent's kind of
    KUBECONFIG (a file variable, no current context) whose cluster is a closed loopback
    port, and KUBE_CONTEXT scoped per environment: everything before the cluster call runs
    for real, then the job fails on the refused connection."""
    # The deploy jobs run in the kubectl image, not the builder.
    pipeline = Pipeline(
        make_ci_repo(rendered(deploy_target="kubernetes"), tmp_path), "", helper_image
    )
    repo, tag = pipeline.repo, "v1.0.0"
    git(repo, "tag", tag)
    git(repo, "checkout", "-q", tag)
    contexts = {
        environment: f"group/agents:{environment}" for environment in ("staging", "production")
    }
    kubeconfig = closed_port_kubeconfig(tmp_path / "kubeconfig", list(contexts.values()))
    variables = tmp_path / "variables.yml"
    variables.write_text(
        yaml.safe_dump(
            {
                "KUBECONFIG": {"type": "file", "values": {"*": kubeconfig.read_text()}},
                "KUBE_CONTEXT": {"values": contexts},
            }
        )
    )
    origin = str(repo.parent / "origin.git")
    jobs = ["deploy-staging", "deploy-production"]
    result = pipeline.run(
        *jobs,
        *(option for job in jobs for option in ("--manual", job)),
        *tag_args(tag),
        # gitlab-ci-local reads it relative to the repository.
        "--variables-file",
        os.path.relpath(variables, repo),
        "--volume",
        f"{origin}:{origin}",
        check=False,
    )
    output = output_of(result)
    assert pipeline.result(output) == dict.fromkeys(jobs, "FAIL"), output[-3000:]
    for job, (environment, context) in zip(jobs, contexts.items(), strict=True):
        log = job_output(output, job)
        assert f'Switched to context "{context}".' in log, log
        assert f"rendering deploy/overlays/{environment} with the image" in log, log
        assert f"image: {TEST_REGISTRY}/{SLUG}:{tag}" in log, log
        assert f"applying to namespace {SLUG}-{environment}, context {context}" in log, log
        assert "connection refused" in log, log
        assert "kubectl apply failed: nothing was rolled out" in log, log
        assert "waiting up to" not in log


# ------------------------------------------------------------------ database=postgres
@pytest.mark.pipeline
def test_postgres_test_job_runs_the_tests_and_the_metadata_check_against_its_service(
    builder_image: str, helper_image: str, rendered: Render, tmp_path: Path
) -> None:
    """The test job's `services:` entry, started as GitLab starts it (its image, the job's
    variables) beside the job; the job as written otherwise: nextest with #[sqlx::test]
    databases on that server, then ci/sqlx-metadata.sh --check, which passes, and fails
    once .sqlx/ holds a query the code does not have. The deny job passes here too."""
    pipeline = pipeline_for(rendered(database="postgres"), tmp_path, builder_image, helper_image)
    repo = pipeline.repo
    ci = load_ci(repo / GITLAB_CI)
    job, variables = ci[".postgres"], ci["variables"]
    assert ".postgres" in ci["test"]["extends"]
    (service,) = job["services"]
    assert service["alias"] == "postgres"
    image = expand(service["name"], variables)
    ensure_base_images([image])
    # The job reaches the service by its alias on GitLab; here, on loopback.
    url = job["variables"]["DATABASE_URL"]
    assert "@postgres:5432/" in url, url
    port = free_port()
    override = job_service_override(
        repo, "test", {"DATABASE_URL": url.replace("@postgres:5432/", f"@127.0.0.1:{port}/")}
    )
    service_env = {"POSTGRES_PASSWORD": job["variables"]["POSTGRES_PASSWORD"]}
    with job_service(image, service_env, port):
        output = output_of(pipeline.run("--file", override.name, "test", check=False))
        assert pipeline.result(output) == {"test": "PASS"}, output[-4000:]
        printed = job_lines(output, "test")
        assert ".sqlx/ is up to date" in printed, output[-4000:]
        assert any("greetings" in line and "PASS" in line for line in printed), output[-4000:]
        # deny.toml's policy holds for this graph too (sqlx and what it pulls in).
        output = output_of(pipeline.run("deny", check=False))
        assert pipeline.result(output) == {"deny": "PASS"}, output[-4000:]

        # A query the code no longer has: the check fails and names the file.
        sqlx = repo / ".sqlx"
        stale = sqlx / ("query-" + "0" * 64 + ".json")
        stale.write_text(next(sqlx.glob("query-*.json")).read_text())
        git(repo, "add", ".sqlx")
        git(repo, "commit", "-q", "-m", "a stale query")
        output = output_of(pipeline.run("--file", override.name, "test", check=False))
    assert pipeline.result(output) == {"test": "FAIL"}, output[-4000:]
    printed = job_lines(output, "test")
    assert ".sqlx/ is out of date: run ci/sqlx-metadata.sh and commit .sqlx/" in printed, output[
        -4000:
    ]
    assert any(stale.name in line for line in printed), output[-4000:]
