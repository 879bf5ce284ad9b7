"""The generated CI files, and the generated GitLab pipeline run by gitlab-ci-local.

gitlab-ci-local runs the pipeline with its docker executor on the suite's own engine
(harness/engine.py; every command here gets its DOCKER_HOST): host networking only, the
builder image built from the generated ci/builder.Dockerfile, and a helper image (sh,
bash, rsync, git, docker CLI) built from the Debian stand-in. Each image is built once
per session; the engine's layer cache makes a later build instant.

docs/pipeline.md describes the contract the generated pipeline keeps and how the tests
and benchmarks/pipeline.py run it.
"""

from __future__ import annotations

import contextlib
import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import yaml

from harness.containers import ensure_base_images, ensure_engine
from harness.engine import docker, docker_cli, docker_env
from harness.git import git, git_env, init_repo, push_to_bare_origin
from harness.processes import free_port, require, run, wait_until
from harness.registry import Registry
from harness.registry import registry as registry_server
from harness.render import DEFAULT_SLUG, default_answers, render_cookiecutter

GITLAB_CI = ".gitlab-ci.yml"
GITHUB_WORKFLOW = ".github/workflows/ci.yml"
BUILDER_DOCKERFILE = "ci/builder.Dockerfile"
BUILDER_SCRIPT = "ci/builder-image.sh"
RELEASE_NOTES = "ci/release-notes.sh"
# The test jobs' JUnit report: the path .config/nextest.toml's ci profile gives it.
NEXTEST_CONFIG = ".config/nextest.toml"
JUNIT_REPORT = "target/nextest/ci/junit.xml"
# The coverage job's Cobertura report (cargo tarpaulin --out Xml --output-dir ...).
COVERAGE_REPORT = "target/coverage/cobertura.xml"
RENOVATE = "renovate.json"
STAGES = ["check", "build", "test", "publish", "release", "deploy"]
CARGO_JOBS = ["check", "build", "test", "coverage"]
# cargo-deny against deny.toml: no compiling, in the builder image too.
DENY_JOBS = ["deny", "deny-advisories"]
SLUG = DEFAULT_SLUG

# What each kind of pipeline runs, and how ("manual" waits for a click): PIPELINES below
# says which pipeline runs which.
# builder-image runs in every pipeline: it builds $BUILDER_IMAGE only when the registry
# has no such tag.
BRANCH_PIPELINE = {
    "builder-image": "on_success",
    "check": "on_success",
    "deny": "on_success",
    "test": "on_success",
}
# Schedules, Run pipeline and changes to Cargo.lock check RustSec's advisories too.
WITH_ADVISORIES = {**BRANCH_PIPELINE, "deny-advisories": "on_success"}
# Merge requests and the default branch measure the tests' coverage too.
COVERAGE = {"coverage": "on_success"}
# A release tag's pipeline (vX.Y.Z, vX.Y.Z-<pre-release>).
TAG_PIPELINE = {
    "builder-image": "on_success",
    "deny": "on_success",
    "build": "on_success",
    "test": "on_success",
    "publish": "on_success",
    "release": "on_success",
    "deploy-staging": "manual",
    "deploy-production": "manual",
}
NO_PIPELINE: dict[str, str] = {}

# Images the pipeline runs in are tagged under this name: CI_REGISTRY_IMAGE is
# template-test/<slug>, so $BUILDER_IMAGE and the release image land here too.
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
# The image jobs' Buildah reads the registries' settings here (registry_args).
REGISTRIES_CONF_IN_JOB = "/etc/containers/registries.conf"
# The runner's `security_opt = ["seccomp:unconfined"]` (config.toml, docker executor),
# which the generated README asks for and gitlab-ci-local has no option for: its
# --container-executable, a docker CLI that adds the option to every container it creates.
RUNNER_DOCKER = """#!/bin/sh
if [ "$1" = create ]; then
  shift
  exec {docker} create --security-opt seccomp=unconfined "$@"
fi
exec {docker} "$@"
"""
# Predefined variables gitlab-ci-local must leave alone: the command line sets them.
REF_VARIABLES = ("CI_COMMIT_REF_NAME", "CI_COMMIT_TAG", "CI_COMMIT_BRANCH", "CI_PIPELINE_SOURCE")
REGISTRY_VARIABLES = (
    "CI_REGISTRY_IMAGE",
    "CI_REGISTRY",
    "CI_REGISTRY_USER",
    "CI_REGISTRY_PASSWORD",
)


# ---------------------------------------------------------------- the CI files
class CiYamlLoader(yaml.SafeLoader):
    """Safe YAML plus GitLab's `!reference [job, key]` tag."""


CiYamlLoader.add_constructor(
    "!reference",
    lambda loader, node: ["!reference", *loader.construct_sequence(node)],  # type: ignore[arg-type]
)


def load_ci(path: Path) -> dict:
    return yaml.load(path.read_text(), Loader=CiYamlLoader)


def tag_args(tag: str) -> list[str]:
    """gitlab-ci-local options for a pipeline of the tag `tag` (no branch)."""
    return [
        "--variable",
        f"CI_COMMIT_TAG={tag}",
        "--variable",
        f"CI_COMMIT_REF_NAME={tag}",
        "--unset-variable",
        "CI_COMMIT_BRANCH",
    ]


# ---------------------------------------------------------------- which pipelines GitLab creates
@dataclass(frozen=True)
class Source:
    """One kind of pipeline, told to gitlab-ci-local through GitLab's predefined variables.

    `ref` is what the repository of tests/conftest.py's `ci_repo` fixture checks out;
    `variables` what GitLab sets for such a pipeline, `unset` what it leaves unset.
    """

    pipeline: str
    ref: str
    variables: dict[str, str]
    unset: tuple[str, ...]
    jobs: dict[str, str]

    def args(self) -> list[str]:
        args = [f"--variable={name}={value}" for name, value in self.variables.items()]
        return args + [f"--unset-variable={name}" for name in self.unset]

    def row(self) -> str:
        """This pipeline's row of the table in docs/pipeline.md."""
        told = ", ".join(
            [f"`{name}={value}`" for name, value in self.variables.items()]
            + [f"no `{name}`" for name in self.unset]
        )
        jobs = ", ".join(
            f"*{name}*" if when == "manual" else name for name, when in self.jobs.items()
        )
        return f"| {self.pipeline} | `{self.ref}`: {told} | {jobs or 'no pipeline'} |"


OPEN_MERGE_REQUEST = {"CI_OPEN_MERGE_REQUESTS": f"group/{SLUG}!1"}


def push(**variables: str) -> dict[str, str]:
    return {"CI_PIPELINE_SOURCE": "push", **variables}


def merge_request() -> dict[str, str]:
    return {
        "CI_PIPELINE_SOURCE": "merge_request_event",
        "CI_MERGE_REQUEST_IID": "1",
        **OPEN_MERGE_REQUEST,
    }


def tag_push(name: str) -> dict[str, str]:
    return push(CI_COMMIT_TAG=name)


NO_BRANCH = ("CI_COMMIT_BRANCH",)
# Every pipeline GitLab may be asked for, and the jobs it runs: the table under "GitLab:
# which pipeline runs which jobs" in docs/pipeline.md (tests/test_pipeline_rules.py checks
# both). `lock` is a branch that changes Cargo.lock.
PIPELINES = {
    "push-to-branch": Source(
        "push to a branch, no merge request open", "feature", push(), (), BRANCH_PIPELINE
    ),
    "push-to-branch-with-merge-request": Source(
        "push to a branch with a merge request open",
        "feature",
        push(**OPEN_MERGE_REQUEST),
        (),
        NO_PIPELINE,
    ),
    "merge-request": Source(
        "merge request pipeline (the same push)",
        "feature",
        merge_request(),
        NO_BRANCH,
        {**BRANCH_PIPELINE, **COVERAGE},
    ),
    "push-to-default-branch": Source(
        "push to the default branch", "main", push(), (), {**BRANCH_PIPELINE, **COVERAGE}
    ),
    "release-tag": Source("release tag", "v1.0.0", tag_push("v1.0.0"), NO_BRANCH, TAG_PIPELINE),
    "pre-release-tag": Source(
        "pre-release tag", "v1.1.0-rc.1", tag_push("v1.1.0-rc.1"), NO_BRANCH, TAG_PIPELINE
    ),
    "other-tag": Source(
        "other tag", "release/1.0", tag_push("release/1.0"), NO_BRANCH, NO_PIPELINE
    ),
    "other-tag-no-version": Source("other tag", "foo", tag_push("foo"), NO_BRANCH, NO_PIPELINE),
    "schedule": Source(
        "schedule", "main", {"CI_PIPELINE_SOURCE": "schedule"}, (), {**WITH_ADVISORIES, **COVERAGE}
    ),
    "web": Source(
        "*Run pipeline* (web)", "feature", {"CI_PIPELINE_SOURCE": "web"}, (), WITH_ADVISORIES
    ),
    "push-changing-lock": Source(
        "push to a branch that changes `Cargo.lock` (its first push too)",
        "lock",
        push(),
        (),
        WITH_ADVISORIES,
    ),
    "merge-request-changing-lock": Source(
        "merge request pipeline of that branch",
        "lock",
        merge_request(),
        NO_BRANCH,
        {**WITH_ADVISORIES, **COVERAGE},
    ),
    "push-to-default-branch-changing-lock": Source(
        "push of that change to the default branch",
        "lock",
        push(CI_COMMIT_BRANCH="main"),
        (),
        {**WITH_ADVISORIES, **COVERAGE},
    ),
}


# ---------------------------------------------------------------- gitlab-ci-local
def gcl_env(*also_set: str) -> dict[str, str]:
    """Environment for gitlab-ci-local: the suite's engine, the suite's git identity, and
    the ref variables (plus `also_set`) left to the command line."""
    ignored = ",".join((*REF_VARIABLES, *also_set))
    return git_env(docker_env()) | {"GCL_IGNORE_PREDEFINED_VARS": ignored}


def make_ci_repo(project: Path, root: Path) -> Path:
    """A git repository of `project` under root/, as a runner sees it: the main branch,
    pushed to a bare origin (root/origin.git) that `rules:changes` compares with."""
    require("git")
    repo = root / SLUG
    shutil.copytree(project, repo)
    init_repo(repo)
    # gitlab-ci-local reads the project path from this remote; it is never contacted.
    git(repo, "remote", "add", "gcl-origin", f"https://gitlab.localhost/group/{SLUG}.git")
    push_to_bare_origin(repo, root / "origin.git")
    return repo


def list_jobs(repo: Path, ref: str, *args: str) -> list[dict]:
    """gitlab-ci-local's `--list-json` for the pipeline of `ref` (runs no job)."""
    tool = require("gitlab-ci-local")
    git(repo, "checkout", "-q", ref)
    result = run(
        [tool, "--list-json", "--no-json-schema-validation", *args],
        cwd=repo,
        env=gcl_env(),
        timeout=120,
    )
    return json.loads(result.stdout)


def selected_jobs(repo: Path, ref: str, *args: str) -> dict[str, str]:
    """{job: when} for the jobs gitlab-ci-local would put in the pipeline of `ref`."""
    return {
        job["name"]: job["when"] for job in list_jobs(repo, ref, *args) if job["when"] != "never"
    }


# A job whose rules are the workflow's rules (tests/test_pipeline_rules.py explains why).
WORKFLOW_PROBE = ".gitlab-ci-workflow-probe.yml"
WORKFLOW_JOB = "workflow-rules"


def pipeline_jobs(repo: Path, source: Source) -> dict[str, str]:
    """{job: when} of the pipeline GitLab would create for `source`, {} for none.

    gitlab-ci-local 4.73 reads `workflow:rules` only for their variables and lists every
    pipeline's jobs. The probe file includes the real one and adds a job whose rules are
    the workflow's (anchors resolved): gitlab-ci-local's own rules engine, the one that
    selects the jobs, then says whether the workflow lets the pipeline be created.
    """
    git(repo, "checkout", "-q", source.ref)
    workflow = load_ci(repo / GITLAB_CI)["workflow"]
    probe = {
        "include": [{"local": GITLAB_CI}],
        WORKFLOW_JOB: {"stage": ".pre", "script": ["true"], "rules": workflow["rules"]},
    }
    (repo / WORKFLOW_PROBE).write_text(yaml.safe_dump(probe, sort_keys=False))
    jobs = selected_jobs(repo, source.ref, "--file", WORKFLOW_PROBE, *source.args())
    created = jobs.pop(WORKFLOW_JOB, None) is not None
    return jobs if created else NO_PIPELINE


def preview(repo: Path, ref: str = "main") -> dict:
    """The configuration as GitLab sees it: extends, defaults and !reference resolved."""
    tool = require("gitlab-ci-local")
    git(repo, "checkout", "-q", ref)
    return yaml.safe_load(run([tool, "--preview"], cwd=repo, env=gcl_env(), timeout=120).stdout)


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


def expand(value: str, variables: dict[str, str]) -> str:
    """`value` with $NAME references to `variables` expanded, as GitLab expands variables
    that name variables."""
    while True:
        expanded = re.sub(r"\$(\w+)", lambda name: variables[name[1]], value)
        if expanded == value:
            return value
        value = expanded


def builder_image_name(repo: Path, registry_image: str) -> str:
    """What $BUILDER_IMAGE of `repo`'s .gitlab-ci.yml expands to under this CI_REGISTRY_IMAGE."""
    variables = load_ci(repo / GITLAB_CI)["variables"]
    return expand(variables["BUILDER_IMAGE"], {**variables, "CI_REGISTRY_IMAGE": registry_image})


class Pipeline:
    """gitlab-ci-local on one repository, as one runner with its own cache.

    `builder`: the engine's image of ci/builder.Dockerfile ("" where no job uses it).
    `registry`: the project's registry (CI_REGISTRY and its credentials), which the image
    jobs log in to and builder-image asks for $BUILDER_IMAGE; without it CI_REGISTRY_IMAGE
    is template-test/<slug> and only jobs that need no registry can run. `runner`: the
    docker CLI of the runner, runner_docker's where Buildah runs.
    """

    def __init__(
        self,
        repo: Path,
        builder: str,
        helper: str,
        registry: Registry | None = None,
        runner: str | None = None,
    ) -> None:
        self.repo = repo
        self.builder = builder
        self.helper = helper
        self.registry = registry
        self.runner = runner
        self.registry_image = (
            f"{registry.host}/group/{SLUG}" if registry else f"{TEST_REGISTRY}/{SLUG}"
        )
        if builder:
            self.provide_builder()

    def builder_image_name(self) -> str:
        """What the repository's $BUILDER_IMAGE expands to now, under its CI_REGISTRY_IMAGE."""
        return builder_image_name(self.repo, self.registry_image)

    def provide_builder(self) -> None:
        """`builder` under the name the repository's $BUILDER_IMAGE has now: in the engine,
        where the cargo jobs find it (the runner's image cache), and in the registry,
        where builder-image finds it."""
        name = self.builder_image_name()
        docker("tag", self.builder, name)
        if self.registry and not self.registry.has(name):
            self.registry.copy_from_engine(self.builder, name)

    def run(
        self,
        *args: str,
        check: bool = True,
        timeout: float = 1800,
        registry: Registry | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """`registry`: instead of the pipeline's own (another password, say)."""
        registry = registry or self.registry
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
            self.runner or docker_cli(),
            "--no-color",
            "--variable",
            f"CI_REGISTRY_IMAGE={self.registry_image}",
            "--variable",
            f"SCCACHE_SERVER_PORT={free_port()}",
            *(registry_args(registry, self.repo.parent / "registry") if registry else []),
            *args,
        ]
        env = gcl_env(*REGISTRY_VARIABLES)
        return run(cmd, cwd=self.repo, env=env, check=check, timeout=timeout)

    def result(self, output: str) -> dict[str, str]:
        """{job: PASS|FAIL|WARN} from gitlab-ci-local's closing summary."""
        summary = {}
        for line in output.splitlines():
            match = re.match(r"^ (PASS|FAIL|WARN) +(\S+)", line)
            if match:
                summary[match.group(2)] = match.group(1)
        return summary


def pipeline_for(
    project: Path,
    root: Path,
    builder: str,
    helper: str,
    registry: Registry | None = None,
    runner: str | None = None,
) -> Pipeline:
    """A fresh runner: its own repository of `project` under root/, its own cache."""
    return Pipeline(make_ci_repo(project, root), builder, helper, registry, runner)


def tag_pipeline_override(repo: Path) -> Path:
    """The tag pipeline with release in the helper image instead of GitLab's CLI image:
    its real script (sh, git, awk: the helper image has them); gitlab-ci-local ignores the
    `release:` keyword, which needs a GitLab. Every other job runs as written."""
    override = {"include": [{"local": GITLAB_CI}], "release": {"image": HELPER_IMAGE}}
    path = repo / ".gitlab-ci-local-tag.yml"
    path.write_text(yaml.safe_dump(override, sort_keys=False))
    return path


def job_service_override(repo: Path, job: str, variables: dict[str, str]) -> Path:
    """`job` without its `services:`, with these variables: gitlab-ci-local refuses
    services under host networking ("Cannot add service network alias with network mode
    'host'") and would otherwise create a bridge network, which the suite's engine has
    not; the test starts the service itself (job_service) and points the job at it."""
    override = {"include": [{"local": GITLAB_CI}], job: {"services": [], "variables": variables}}
    path = repo / f".gitlab-ci-local-{job}-service.yml"
    path.write_text(yaml.safe_dump(override, sort_keys=False))
    return path


@contextlib.contextmanager
def job_service(image: str, variables: dict[str, str], port: int) -> Iterator[str]:
    """A PostgreSQL service container as GitLab starts one beside a job (its image, the
    job's variables), on host networking: listening on 127.0.0.1:`port` only. Yields its
    name; removed at the end."""
    name = f"template-service-{port}"
    env = [f"--env={key}={value}" for key, value in variables.items()]
    docker("run", "-d", "--name", name, "--network", "host", *env, f"--env=PGPORT={port}",
           image, "postgres", "-c", "listen_addresses=127.0.0.1")  # fmt: skip

    def ready() -> bool | None:
        probe = ["exec", name, "pg_isready", "-h", "127.0.0.1", "-U", "postgres"]
        return docker(*probe, check=False).returncode == 0 or None

    try:
        wait_until(ready, 60, f"{image} on 127.0.0.1:{port}", interval=0.5)
        yield name
    finally:
        docker("rm", "-f", name, check=False)


def runner_docker(workdir: Path) -> str:
    """RUNNER_DOCKER written to workdir/: the --container-executable of a runner whose
    containers may unshare (Buildah's RUN steps)."""
    workdir.mkdir(parents=True, exist_ok=True)
    path = workdir / "runner-docker"
    path.write_text(RUNNER_DOCKER.format(docker=docker_cli()))
    path.chmod(0o755)
    return str(path)


def registry_args(registry: Registry, workdir: Path) -> list[str]:
    """gitlab-ci-local options for a pipeline whose project registry is `registry`
    (harness/registry.py): GitLab's predefined registry variables, and the registry's
    settings (plain HTTP on loopback, the docker.io mirror) where the jobs' Buildah reads
    them."""
    workdir.mkdir(parents=True, exist_ok=True)
    conf = workdir / "registries.conf"
    conf.write_text(registry.registries_conf())
    return [
        f"--variable=CI_REGISTRY={registry.host}",
        f"--variable=CI_REGISTRY_USER={registry.user}",
        f"--variable=CI_REGISTRY_PASSWORD={registry.password}",
        f"--volume={conf}:{REGISTRIES_CONF_IN_JOB}:ro",
    ]


@contextlib.contextmanager
def project_registry(project: Path) -> Iterator[Registry]:
    """A registry on loopback (harness/registry.py) for the pipelines of `project` (a
    generated project): it holds the base image the runtime Dockerfile's prebuilt path
    names (docker.io is out of reach); and the stand-in for the image jobs' Buildah."""
    variables = load_ci(project / GITLAB_CI)["variables"]
    ensure_base_images([f"quay.io/buildah/stable:v{variables['BUILDAH_VERSION']}"])
    with registry_server() as started:
        started.seed(f"debian:{variables['DEBIAN_RELEASE']}-slim")
        yield started


def run_tag_pipeline(pipeline: Pipeline, *jobs: str, registry: Registry | None = None) -> str:
    """The v1.0.0 pipeline (or only `jobs` of it) of a pipeline with a registry: its output.
    `registry`: instead of the pipeline's own."""
    override = tag_pipeline_override(pipeline.repo)
    origin = str(pipeline.repo.parent / "origin.git")
    result = pipeline.run(
        "--file",
        override.name,
        *jobs,
        *tag_args("v1.0.0"),
        "--volume",
        f"{origin}:{origin}",
        check=False,
        registry=registry,
    )
    return output_of(result)


# ---------------------------------------------------------------- images
def docker_build(context: Path, tag: str, *args: str, timeout: float = 1800) -> None:
    docker("build", "--network", "host", "-q", "-t", tag, *args, str(context), timeout=timeout)


def ensure_engine_and_base_images() -> None:
    """For benchmarks: the engine and the stand-ins the pipeline needs.

    Tests use the container tier's session fixtures instead (docker_engine, base_images).
    """
    answers = default_answers()
    ensure_engine()
    ensure_base_images(
        [
            f"rust:{answers['rust_version']}-{answers['debian_release']}",
            f"debian:{answers['debian_release']}-slim",
        ]
    )


def build_builder_image(workdir: Path) -> str:
    """The generated ci/builder.Dockerfile, built under the name $BUILDER_IMAGE expands to.

    Built with the redis backend compiled in (a superset of the default), so the
    local-disk and the Redis runs share one image. Its base is the official-image
    stand-in plus the machine's CA certificates (test-only).
    """
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
    tag = builder_image_name(project, f"{TEST_REGISTRY}/{SLUG}")
    # The build arguments the builder-image job passes, with the pipeline's values.
    build_args = {name: variables[name] for name in builder_build_args(project)}
    build_args |= {"RUST_IMAGE": ca_image, "SCCACHE_FEATURES": "redis"}
    docker_build(
        project / "ci",
        tag,
        "--file",
        str(project / BUILDER_DOCKERFILE),
        *(f"--build-arg={name}={value}" for name, value in build_args.items()),
        timeout=2400,
    )
    return tag


def builder_build_args(project: Path) -> list[str]:
    """The variables ci/builder-image.sh passes to the build as build arguments."""
    match = re.search(r'^build_args="([^"]*)"$', (project / BUILDER_SCRIPT).read_text(), re.M)
    assert match, f"{BUILDER_SCRIPT} names no build_args"
    return match.group(1).split()


def build_helper_image(workdir: Path) -> str:
    """sh, bash, rsync and git for gitlab-ci-local, plus this machine's docker CLI."""
    workdir.mkdir(parents=True, exist_ok=True)
    shutil.copy2(Path(docker_cli()).resolve(), workdir / "docker")
    (workdir / "Dockerfile").write_text(HELPER_DOCKERFILE)
    docker_build(workdir, HELPER_IMAGE)
    return HELPER_IMAGE
