"""The generated container files, checked as files for every answer that changes them.

Fast tier (no image is built): hadolint on both Dockerfiles and the compose file against
the compose spec; the Dockerfiles' pins, stages and base images; `docker compose config`
of the compose file; and the harness refusing a compose project without host networking.
tests/test_images.py builds and runs the images; tests/test_compose.py runs the compose
dev loop and the dev container.
"""

from __future__ import annotations

import itertools
import re
import uuid
from pathlib import Path
from typing import Any

import pytest

from harness import standins
from harness.containers import (
    NotHostNetworking,
    check_host_networking,
    compose_config,
    compose_up,
    render,
)
from harness.engine import docker_env, require_compose
from harness.pipeline import GITLAB_CI, load_ci
from harness.processes import require, run
from harness.render import DEFAULT_SLUG, default_answers

# Every answer that changes a container file.
CONTAINER_ANSWERS = [
    dict(zip(("debian_release", "runtime_image", "dev_watcher"), values, strict=True))
    for values in itertools.product(
        ("bookworm", "trixie"),
        ("debian-slim", "distroless", "scratch"),
        ("watchexec", "cargo-watch"),
    )
]


@pytest.fixture(scope="module")
def rendered_variants(cookies_session: Any) -> list[tuple[dict[str, str], Path]]:
    """(answers, project) for each of CONTAINER_ANSWERS."""
    return [(answers, render(cookies_session, **answers)) for answers in CONTAINER_ANSWERS]


def dockerfile_args(text: str) -> dict[str, str]:
    return dict(re.findall(r"^ARG (\w+)=(\S*)$", text, flags=re.M))


def resolved_from_lines(dockerfile: str, build_args: dict[str, str] | None = None) -> list[str]:
    """Each FROM line's image with the ARG defaults and `build_args` applied (ARGs may name
    ARGs)."""
    args = {**dockerfile_args(dockerfile), **(build_args or {})}
    refs = []
    for ref in re.findall(r"^FROM (\S+)", dockerfile, flags=re.M):
        while "${" in ref:
            ref = re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], ref)
        refs.append(ref)
    return refs


def base_images_named(dockerfile: str) -> set[str]:
    """The external images a Dockerfile's FROM lines name (not its stages, not scratch)."""
    stages = set(re.findall(r"^FROM \S+ AS (\S+)$", dockerfile, flags=re.M))
    return set(resolved_from_lines(dockerfile)) - stages - {"scratch"}


# Each kind of container file and the checker it must pass: (files of a project, the
# checker's command line before the files).
CHECKERS = [
    pytest.param(
        ["Dockerfile", "dev.Dockerfile"],
        ["hadolint", "--failure-threshold", "warning"],
        id="hadolint-dockerfiles",
    ),
    pytest.param(
        ["compose.yaml"],
        ["check-jsonschema", "--builtin-schema", "vendor.compose-spec"],
        id="compose-spec",
    ),
]


@pytest.mark.parametrize(("names", "checker"), CHECKERS)
def test_every_container_file_passes_its_checker_for_every_answer(
    names: list[str], checker: list[str], rendered_variants: list[tuple[dict[str, str], Path]]
) -> None:
    files = [str(project / name) for _, project in rendered_variants for name in names]
    run([require(checker[0]), *checker[1:], *files])


def test_dockerfiles_pin_versions_from_the_answers(
    rendered_variants: list[tuple[dict[str, str], Path]],
) -> None:
    watcher = {"watchexec": "watchexec-cli", "cargo-watch": "cargo-watch"}
    for answers, project in rendered_variants:
        runtime = dockerfile_args((project / "Dockerfile").read_text())
        dev = dockerfile_args((project / "dev.Dockerfile").read_text())
        for args in (runtime, dev):
            assert args["RUST_VERSION"] == default_answers()["rust_version"]
            assert args["DEBIAN_RELEASE"] == answers["debian_release"]
        assert runtime["RUNTIME"] == answers["runtime_image"]
        assert dev["WATCHER_CRATE"] == watcher[answers["dev_watcher"]]
        assert re.fullmatch(r"\d+\.\d+\.\d+", dev["WATCHER_VERSION"])
        assert re.fullmatch(r"\d+\.\d+\.\d+", dev["SYSTEMFD_VERSION"])


def test_runtime_dockerfile_builds_locked_runs_non_root_and_exposes_the_port(
    rendered_variants: list[tuple[dict[str, str], Path]],
) -> None:
    text = (rendered_variants[0][1] / "Dockerfile").read_text()
    assert "cargo build --release --locked" in text
    runtime_stages = re.split(r"^FROM ", text, flags=re.M)
    for stage in (s for s in runtime_stages if " AS runtime-" in s.splitlines()[0]):
        assert re.search(r"^USER 65532:65532$", stage, flags=re.M), stage
        assert f"EXPOSE {default_answers()['port']}" in stage
    # Cache mounts are keyed by project, Rust version and Debian release.
    for mount_id in re.findall(r"id=(\S+?),", text):
        assert mount_id.startswith(f"{DEFAULT_SLUG}-")
        if "target" in mount_id:
            assert "${RUST_VERSION}" in mount_id and "${DEBIAN_RELEASE}" in mount_id


def test_every_base_image_the_dockerfiles_name_has_a_stand_in_recipe(
    rendered_variants: list[tuple[dict[str, str], Path]],
) -> None:
    named = set()
    for _, project in rendered_variants:
        for name in ("Dockerfile", "dev.Dockerfile"):
            named |= base_images_named((project / name).read_text())
    listing = standins.all_images(default_answers()["rust_version"])
    assert named, "no FROM lines found"
    assert named <= set(listing), f"images without a stand-in: {named - set(listing)}"


def test_generated_dockerfiles_name_the_official_base_images(
    rendered_variants: list[tuple[dict[str, str], Path]],
) -> None:
    """Stand-ins live only in the suite's engine: the files users get are never rewritten.

    The tests build these very files, so a stand-in under another name would have to be
    written into them; this pins the official names for every release and runtime.
    """
    rust = default_answers()["rust_version"]
    for answers, project in rendered_variants:
        release = answers["debian_release"]
        number = {"bookworm": "12", "trixie": "13"}[release]
        assert base_images_named((project / "Dockerfile").read_text()) == {
            f"rust:{rust}-slim-{release}",
            f"debian:{release}-slim",
            f"gcr.io/distroless/cc-debian{number}:nonroot",
        }, project
        assert resolved_from_lines((project / "dev.Dockerfile").read_text()) == [
            f"rust:{rust}-{release}"
        ]
        # The builder's versions are build arguments from the pipeline's variables.
        builder = (project / "ci" / "builder.Dockerfile").read_text()
        variables = load_ci(project / GITLAB_CI)["variables"]
        assert resolved_from_lines(builder, variables) == [f"rust:{rust}-{release}"]
        assert dockerfile_args(builder)["RUST_IMAGE"] == "rust:${RUST_VERSION}-${DEBIAN_RELEASE}"


def test_compose_config_accepts_the_file_and_keeps_caches_in_named_volumes(
    rendered_variants: list[tuple[dict[str, str], Path]],
) -> None:
    require_compose()
    for answers, project in rendered_variants:
        config = compose_config(project, [project / "compose.yaml"], "config-check", docker_env())
        app = config["services"]["app"]
        assert app["init"] is True
        volumes = {v["target"]: v for v in app["volumes"]}
        assert volumes["/usr/local/cargo/registry"]["type"] == "volume"
        assert volumes["/app/target"]["type"] == "volume"
        assert volumes["/app"]["type"] == "bind"
        command = " ".join(app["command"])
        assert command.startswith("systemfd --no-pid --backlog 128 -s http::0.0.0.0:")
        watcher = "watchexec" if answers["dev_watcher"] == "watchexec" else "cargo watch"
        assert f"-- {watcher}" in command and "--locked" in command


def test_compose_up_refuses_a_service_without_host_networking(
    rendered_variants: list[tuple[dict[str, str], Path]],
) -> None:
    config = {"services": {"app": {"image": "x"}, "db": {"network_mode": "host"}}}
    with pytest.raises(NotHostNetworking, match="app"):
        check_host_networking(config)
    with pytest.raises(NotHostNetworking, match="networks"):
        check_host_networking(
            {"services": {"app": {"network_mode": "host"}}, "networks": {"default": {}}}
        )
    # The generated compose file itself (a bridge network and port mappings) is refused
    # before anything starts; without compose this fails under CI=true.
    require_compose()
    project = rendered_variants[0][1]
    name = f"refused-check-{uuid.uuid4().hex[:8]}"
    with pytest.raises(NotHostNetworking, match="app"):
        compose_up(project, [project / "compose.yaml"], name)
