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

import json
import re
import shutil
import subprocess
from pathlib import Path

import yaml

from harness.containers import ensure_base_images, ensure_engine
from harness.engine import docker, docker_cli, docker_env
from harness.git import git, git_env, init_repo, push_to_bare_origin
from harness.processes import free_port, require, run
from harness.render import DEFAULT_SLUG, default_answers, render_cookiecutter

GITLAB_CI = ".gitlab-ci.yml"
GITHUB_WORKFLOW = ".github/workflows/ci.yml"
BUILDER_DOCKERFILE = "ci/builder.Dockerfile"
STAGES = ["check", "build", "test", "publish", "deploy"]
CARGO_JOBS = ["check", "build", "test"]
SLUG = DEFAULT_SLUG

# What each kind of push runs, and how ("manual" waits for a click): the table under
# "GitLab: the contract" in docs/pipeline.md.
BRANCH_PIPELINE = {"check": "on_success", "test": "on_success"}
TAG_PIPELINE = {
    "build": "on_success",
    "test": "on_success",
    "publish": "on_success",
    "deploy-staging": "manual",
    "deploy-production": "manual",
}

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
# Inside the publish job the engine's socket is where docker-in-docker jobs expect one.
ENGINE_IN_JOB = "/var/run/docker.sock"
# Predefined variables gitlab-ci-local must leave alone: the command line sets them.
REF_VARIABLES = ("CI_COMMIT_REF_NAME", "CI_COMMIT_TAG", "CI_COMMIT_BRANCH")


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


TAG_ARGS = tag_args("v1.0.0")


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


class Pipeline:
    """gitlab-ci-local on one repository, as one runner with its own cache."""

    def __init__(self, repo: Path, builder: str, helper: str) -> None:
        self.repo = repo
        self.builder = builder
        self.helper = helper

    def run(
        self, *args: str, check: bool = True, timeout: float = 1800
    ) -> subprocess.CompletedProcess[str]:
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
            docker_cli(),
            "--no-color",
            "--variable",
            f"CI_REGISTRY_IMAGE={TEST_REGISTRY}/{SLUG}",
            "--variable",
            f"SCCACHE_SERVER_PORT={free_port()}",
            *args,
        ]
        env = gcl_env("CI_REGISTRY_IMAGE")
        return run(cmd, cwd=self.repo, env=env, check=check, timeout=timeout)

    def result(self, output: str) -> dict[str, str]:
        """{job: PASS|FAIL|WARN} from gitlab-ci-local's closing summary."""
        summary = {}
        for line in output.splitlines():
            match = re.match(r"^ (PASS|FAIL|WARN) +(\S+)", line)
            if match:
                summary[match.group(2)] = match.group(1)
        return summary


def pipeline_for(project: Path, root: Path, builder: str, helper: str) -> Pipeline:
    """A fresh runner: its own repository of `project` under root/, its own cache."""
    return Pipeline(make_ci_repo(project, root), builder, helper)


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
    shutil.copy2(Path(docker_cli()).resolve(), workdir / "docker")
    (workdir / "Dockerfile").write_text(HELPER_DOCKERFILE)
    docker_build(workdir, HELPER_IMAGE)
    return HELPER_IMAGE
