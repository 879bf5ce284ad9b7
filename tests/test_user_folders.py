"""Generating, failing and tidying up touch only what the template itself created.

A team's onboarding path is: create the GitLab project, clone it, generate into the
clone. Every test here snapshots the user's folder (files byte for byte, modes, empty
folders, `.git` included) and compares it after the engine ran, as a user runs it.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from harness.git import git
from harness.processes import require
from harness.render import cookiecutter_cli, copier_cli, default_answers, load_hook


def snapshot(root: Path) -> dict[str, tuple[str, bytes | None, int]]:
    """Every path under root: kind, content of files, and mode."""
    found: dict[str, tuple[str, bytes | None, int]] = {}
    for path in sorted(root.rglob("*")):
        name = str(path.relative_to(root))
        mode = path.lstat().st_mode & 0o7777
        if path.is_symlink():
            found[name] = ("link", os.readlink(path).encode(), mode)
        elif path.is_dir():
            found[name] = ("dir", None, mode)
        else:
            found[name] = ("file", path.read_bytes(), mode)
    return found


def without(tree: dict, prefix: str) -> dict:
    return {k: v for k, v in tree.items() if k != prefix and not k.startswith(prefix + "/")}


def users_things(folder: Path) -> None:
    """Files and empty folders a user may have, some named like the template's own."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "NOTES.md").write_text("the team's notes\n")
    (folder / "scripts").mkdir()
    (folder / "scripts/deploy.sh").write_text("#!/bin/sh\necho deploy\n")
    (folder / "scripts/deploy.sh").chmod(0o755)
    for empty in (
        "drafts",
        "ci",
        ".github/workflows",
        "deploy/overlays/staging",
        "docs/empty",
        "migrations",
    ):
        (folder / empty).mkdir(parents=True)


# ------------------------------------------------------------------ generating


def test_copier_into_a_fresh_clone_keeps_git_working(tmp_path: Path) -> None:
    require("git")
    git(tmp_path, "init", "-q", "--bare", "remote.git")
    git(tmp_path, "clone", "-q", "remote.git", "svc")
    git_before = snapshot(tmp_path / "svc/.git")

    result = copier_cli(tmp_path / "svc", default_answers())
    assert result.returncode == 0, result.stdout + result.stderr

    assert snapshot(tmp_path / "svc/.git") == git_before
    git(tmp_path / "svc", "add", "-A")
    git(tmp_path / "svc", "commit", "-q", "-m", "Generated from the template")
    git(tmp_path / "svc", "push", "-q", "origin", "HEAD")
    pushed = git(tmp_path / "remote.git", "ls-tree", "-r", "--name-only", "HEAD").stdout
    assert "Cargo.lock" in pushed.split()


def test_copier_into_a_git_initialised_folder_leaves_git_alone(tmp_path: Path) -> None:
    require("git")
    git(tmp_path, "init", "-q", "svc")
    before = snapshot(tmp_path / "svc/.git")
    assert any(kind == "dir" and not name.count("/") for name, (kind, _, _) in before.items())

    result = copier_cli(tmp_path / "svc", default_answers(ci_provider="none"))
    assert result.returncode == 0, result.stdout + result.stderr

    assert snapshot(tmp_path / "svc/.git") == before
    assert git(tmp_path / "svc", "status", "--porcelain").stdout.strip()


@pytest.mark.parametrize(
    "answers",
    [
        {"ci_provider": "none"},
        {"ci_provider": "gitlab"},
        {"ci_provider": "github"},
        {"ci_provider": "gitlab", "deploy_target": "kubernetes"},
        {"ci_provider": "none", "database": "postgres"},
    ],
    ids=["none", "gitlab", "github", "gitlab-kubernetes", "none-postgres"],
)
def test_copier_keeps_the_users_files_and_empty_folders(
    tmp_path: Path, answers: dict[str, str]
) -> None:
    users_things(tmp_path / "svc")
    before = snapshot(tmp_path / "svc")

    result = copier_cli(tmp_path / "svc", default_answers(**answers))
    assert result.returncode == 0, result.stdout + result.stderr

    after = snapshot(tmp_path / "svc")
    assert {name: after.get(name) for name in before} == before
    assert (tmp_path / "svc/Cargo.toml").is_file()


def test_cookiecutter_leaves_the_rest_of_the_output_folder_alone(tmp_path: Path) -> None:
    require("git")
    out = tmp_path / "out"
    users_things(out)
    git(out, "init", "-q", "other-service")
    (out / "other-service/README.md").write_text("another team's service\n")
    before = snapshot(out)

    result = cookiecutter_cli(out, default_answers(ci_provider="none"))
    assert result.returncode == 0, result.stderr

    assert without(snapshot(out), "hello-service") == before
    assert not (out / "hello-service/ci").exists()
    assert not (out / "hello-service/.github").exists()
    assert not (out / "hello-service/deploy").exists()


def test_cookiecutter_overwriting_keeps_the_users_empty_optional_folders(tmp_path: Path) -> None:
    """`--overwrite-if-exists` generates into the user's folder: their empty `ci/` stays."""
    project = tmp_path / "out/hello-service"
    users_things(project)
    before = snapshot(project)

    result = cookiecutter_cli(
        tmp_path / "out", default_answers(ci_provider="none"), None, "--overwrite-if-exists"
    )
    assert result.returncode == 0, result.stderr

    after = snapshot(project)
    assert {name: after.get(name) for name in before} == before


def test_both_hooks_name_the_same_optional_folders() -> None:
    post, pre = load_hook("post_gen_project"), load_hook("pre_gen_project")
    assert post.OPTIONAL_DIRECTORIES == pre.OPTIONAL_DIRECTORIES
    assert post.preexisting_record().name.startswith("template-preexisting-")


# ------------------------------------------------------------------ failing


@pytest.mark.parametrize("engine", ["cookiecutter", "copier"])
def test_a_rejected_answer_leaves_the_users_folder_as_it_was(tmp_path: Path, engine: str) -> None:
    folder = tmp_path / "svc"
    users_things(folder)
    before = snapshot(folder)
    answers = default_answers(port="80")
    if engine == "copier":
        result = copier_cli(folder, answers)
    else:
        result = cookiecutter_cli(folder, answers)
    assert result.returncode != 0
    assert "port '80' is invalid" in result.stdout + result.stderr
    assert snapshot(folder) == before


def offline_cargo_env(tmp_path: Path) -> dict[str, str]:
    """cargo as on a machine that cannot reach the crates registry: empty home, offline."""
    require("cargo")
    home = tmp_path / "empty-cargo-home"
    home.mkdir()
    return dict(
        os.environ,
        CARGO_HOME=str(home),
        CARGO_NET_OFFLINE="true",
        CARGO_TARGET_DIR=str(tmp_path / "target"),
    )


def assert_explains_the_failure(output: str, engine: str) -> None:
    lines = [line for line in output.splitlines() if line.startswith("[verify]")]
    assert "verification failed: cargo build --locked failed" in "\n".join(lines), output
    last = "\n".join(lines[-3:])
    assert "likely cause: cargo could not fetch crates" in last, output
    assert "the project" in last and "removed" in last and "because verification failed" in last
    keep = "--keep-project-on-failure" if engine == "cookiecutter" else "--skip-tasks"
    assert "verify=none" in lines[-1] and keep in lines[-1], output


def test_cookiecutter_says_what_happens_when_verification_fails(tmp_path: Path) -> None:
    out = tmp_path / "out"
    users_things(out)
    before = snapshot(out)
    result = cookiecutter_cli(out, default_answers(verify="cargo"), env=offline_cargo_env(tmp_path))
    assert result.returncode != 0
    assert_explains_the_failure(result.stdout, "cookiecutter")
    assert snapshot(out) == before


@pytest.mark.parametrize(
    ("existing", "database"),
    [(False, "none"), (True, "none"), (True, "postgres")],
    ids=["new-folder", "existing-folder", "existing-folder-postgres"],
)
def test_copier_says_what_happens_when_verification_fails(
    tmp_path: Path, existing: bool, database: str
) -> None:
    area = tmp_path / "area"
    area.mkdir()
    if existing:
        users_things(area / "svc")
    before = snapshot(area)
    # With postgres the check starts its throwaway server before the build fails.
    env = {k: v for k, v in offline_cargo_env(tmp_path).items() if k != "DATABASE_URL"}
    result = copier_cli(area / "svc", default_answers(verify="cargo", database=database), env=env)
    assert result.returncode != 0
    assert_explains_the_failure(result.stdout, "copier")
    assert snapshot(area) == before
