"""Every answer renders to a clean project, and both engines render the same bytes."""

from __future__ import annotations

import json
import re
import shlex
import stat
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from harness import TEMPLATE_DIR
from harness.pipeline import CiYamlLoader
from harness.render import bake, choices, default_answers, render_copier

# Anything a template engine should have consumed. GitHub Actions' own `${{ }}`
# expressions are the one legitimate double-brace in the output.
UNRENDERED = re.compile(r"(?<!\$)\{\{|\{%|%\}|\{#|cookiecutter\.|_copier_")
COPIER_ANSWERS = ".copier-answers.yml"


# One bake per value of every choice question, plus free-text answers away from the defaults.
BAKES = [
    pytest.param({name: value}, id=f"{name}={value}")
    for name, values in choices().items()
    for value in values
    if name != "verify"
] + [
    pytest.param(
        {
            "project_name": "Billing API 2",
            "slug": "billing-api-2",
            "port": "8080",
            "rust_version": "1.89.0",
            "description": "Bills: accurate & fast (mostly) <3",
        },
        id="free-text",
    )
]

# Answer sets rendered by both engines and compared byte for byte.
PARITY_SETS = [
    pytest.param({}, id="defaults"),
    pytest.param(
        {
            "project_name": "Order Desk",
            "slug": "order-desk",
            "port": "8081",
            "debian_release": "trixie",
            "runtime_image": "distroless",
            "dev_watcher": "cargo-watch",
            "ci_provider": "both",
            "sccache_backend": "redis",
            "deploy_target": "kubernetes",
        },
        id="trixie-distroless-both-redis-kubernetes",
    ),
    pytest.param(
        {
            "project_name": "tiny",
            "slug": "tiny",
            "port": "1024",
            "rust_version": "1.89",
            "runtime_image": "scratch",
            "ci_provider": "github",
            "sccache_backend": "s3",
        },
        id="scratch-github-s3",
    ),
    pytest.param(
        {
            "slug": "edge-9",
            "description": "Quotes 'single' & <angles>",
            "ci_provider": "none",
            "sccache_backend": "gcs",
            "port": "65535",
            "deploy_target": "kubernetes",
        },
        id="no-ci-gcs-kubernetes",
    ),
]


def project_files(root: Path) -> dict[str, Path]:
    return {
        str(path.relative_to(root)): path
        for path in sorted(root.rglob("*"))
        if path.is_file() and ".git" not in path.relative_to(root).parts
    }


@pytest.fixture(scope="module", params=BAKES)
def baked(request: pytest.FixtureRequest, cookies_session: Any) -> Path:
    return bake(cookies_session, **default_answers(**request.param))


def structured_files(answers: dict[str, str]) -> set[str]:
    """The YAML, TOML and JSON files a project generated with these answers has."""
    files = {
        "Cargo.toml",
        "Cargo.lock",
        "compose.yaml",
        ".devcontainer/devcontainer.json",
        "monitoring/prometheus.yml",
        ".config/nextest.toml",
        "renovate.json",
        "deny.toml",
    }
    if answers["ci_provider"] in ("gitlab", "both"):
        files.add(".gitlab-ci.yml")
    if answers["ci_provider"] in ("github", "both"):
        files.add(".github/workflows/ci.yml")
    if answers["database"] == "postgres":
        # The query metadata: one file per query (maintainer/sqlx_metadata.py).
        queries = (TEMPLATE_DIR / "{{cookiecutter.slug}}" / ".sqlx").glob("*query-*.json*")
        names = {re.search(r"query-[0-9a-f]+\.json", path.name).group(0) for path in queries}
        assert names, "no query metadata in the template's .sqlx/"
        files |= {".cargo/config.toml", *(f".sqlx/{name}" for name in names)}
    if answers["deploy_target"] == "kubernetes":
        files |= {
            f"deploy/base/{name}.yaml"
            for name in ("kustomization", "deployment", "service", "serviceaccount", "hpa", "pdb")
        }
        files |= {
            f"deploy/overlays/{name}/kustomization.yaml" for name in ("staging", "production")
        }
    return files


def test_no_template_syntax_survives(baked: Path) -> None:
    leftovers = [
        f"{name}:{number}: {line.strip()}"
        for name, path in project_files(baked).items()
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if UNRENDERED.search(line)
    ]
    assert not leftovers, "\n".join(leftovers)
    assert not [name for name in project_files(baked) if UNRENDERED.search(name)]


def test_every_yaml_toml_and_json_file_parses(baked: Path, request: pytest.FixtureRequest) -> None:
    parsed = set()
    for name, path in project_files(baked).items():
        text = path.read_text()
        if name.endswith((".yml", ".yaml")):
            list(yaml.load_all(text, Loader=CiYamlLoader))
        elif name.endswith(".toml") or name == "Cargo.lock":
            tomllib.loads(text)
        elif name.endswith(".json"):
            # devcontainer.json is JSON with comments; strip whole-line ones.
            json.loads(
                "\n".join(ln for ln in text.splitlines() if not ln.lstrip().startswith("//"))
            )
        else:
            continue
        parsed.add(name)
    # Exactly the expected files: one that goes missing or renders under another name
    # (a conditional file name gone wrong) fails here instead of lowering a count.
    answers = default_answers(**request.node.callspec.params["baked"])
    assert parsed == structured_files(answers)


def test_the_answers_reach_the_cargo_manifest(baked: Path) -> None:
    manifest = tomllib.loads((baked / "Cargo.toml").read_text())
    assert manifest["package"]["name"] == baked.name
    lock = tomllib.loads((baked / "Cargo.lock").read_text())
    assert baked.name in {package["name"] for package in lock["package"]}


@pytest.mark.parametrize("answers", PARITY_SETS)
def test_cookiecutter_and_copier_render_identical_projects(
    tmp_path: Path, cookies: Any, answers: dict
) -> None:
    answers = default_answers(**answers)
    by_cookiecutter = bake(cookies, **answers)
    by_copier = render_copier(tmp_path / "copier" / by_cookiecutter.name, **answers)

    cookiecutter_files = project_files(by_cookiecutter)
    copier_files = project_files(by_copier)
    assert copier_files.pop(COPIER_ANSWERS), "copier wrote no answers file"
    assert sorted(cookiecutter_files) == sorted(copier_files)
    for name, path in cookiecutter_files.items():
        assert path.read_bytes() == copier_files[name].read_bytes(), f"{name} differs"
        assert stat.S_IMODE(path.stat().st_mode) == stat.S_IMODE(
            copier_files[name].stat().st_mode
        ), f"{name} has a different mode"


def test_copier_records_every_answer_but_the_internal_mapping(tmp_path: Path) -> None:
    answers = default_answers(slug="recorded", port="6000")
    project = render_copier(tmp_path / "recorded", **answers)
    recorded = yaml.safe_load((project / COPIER_ANSWERS).read_text())
    assert "cookiecutter" not in recorded
    assert {k: str(v) for k, v in recorded.items() if not k.startswith("_")} == answers


# The scratch image's static-glibc build is written in the Dockerfile, the GitLab CI build
# job and the GitHub workflow: the engines resolve `{% include %}` against different folders,
# so the template cannot share one snippet. This proves the three say the same.
STATIC_BUILD = re.compile(
    r'RUSTFLAGS="(?P<flags>[^"]+)"\s*(?:\\\s*)?cargo build (?P<args>[^\n\\]+)'
)
TRIPLE = '"$(uname -m)-unknown-linux-gnu"'


def static_glibc_build(text: str) -> tuple[str, frozenset[str]]:
    """RUSTFLAGS and cargo's arguments (the Dockerfile's `--bin` aside) of one file's build."""
    found = STATIC_BUILD.findall(text.replace('"$triple"', TRIPLE))
    assert len(found) == 1, f"expected one static build, found {found}"
    flags, args = found[0]
    words = shlex.split(args)
    if "--bin" in words:
        del words[words.index("--bin") : words.index("--bin") + 2]
    return flags, frozenset(words)


def test_the_static_glibc_build_is_the_same_in_the_image_and_both_pipelines(
    cookies_session: Any,
) -> None:
    project = bake(cookies_session, **default_answers(runtime_image="scratch", ci_provider="both"))
    builds = {
        name: static_glibc_build((project / name).read_text())
        for name in ("Dockerfile", ".gitlab-ci.yml", ".github/workflows/ci.yml")
    }
    assert set(builds.values()) == {
        (
            "-C target-feature=+crt-static",
            frozenset(["--locked", "--release", "--target", shlex.split(TRIPLE)[0]]),
        )
    }, builds
