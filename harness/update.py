"""Updating a generated service: generated with copier or cruft at V_A of a template
repository (harness.releases), committed, edited as a team would, updated to V_B, and
read back (unmerged files, reject files, the recorded answers)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from harness.git import GIT_ENV, commit_all, git, init_repo
from harness.pipeline import load_ci
from harness.processes import run
from harness.releases import (
    CI_FILE,
    REMOVED,
    RENAMED_FROM,
    RENAMED_TO,
    V_A,
    V_B,
    copier_url,
    cruft_url,
    replace_once,
    since_commit,
)
from harness.render import DEFAULT_SLUG, cookiecutter_config, default_answers, render_copier

TOOLS = ("copier", "cruft")
CONFLICT_MARKER = re.compile(r"^<<<<<<< |^>>>>>>> ", re.MULTILINE)


@contextmanager
def isolated_tools(home: Path) -> Iterator[Path]:
    """git (harness.git's identity, no user config), cookiecutter's config and copier's cache
    under `home`, for this process and its children: nothing lands in $HOME."""
    overrides = {
        **GIT_ENV,
        "COOKIECUTTER_CONFIG": str(cookiecutter_config(home / "cookiecutter")),
        # copier keeps mirrors of git+file:// templates in the user's cache otherwise.
        "COPIER_CACHE_DIR": str(home / "copier-cache"),
    }
    previous = {key: os.environ.get(key) for key in overrides}
    os.environ.update(overrides)
    # copier runs git and its tasks through plumbum, whose environment is a copy of
    # os.environ taken at import time: set it there too.
    from plumbum import local

    try:
        with local.env(**overrides):
            yield home
    finally:
        for key, value in previous.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


# ------------------------------------------------------------------ generating and updating


@dataclass
class Updated:
    """A service after its update, with what the update command printed."""

    path: Path
    output: str
    seconds: float


def generate_with_copier(repo: Path, folder: Path, **answers: str) -> Path:
    """The service copier generates from `repo` at V_A, in `folder`, committed."""
    destination = folder / DEFAULT_SLUG
    render_copier(destination, template=copier_url(repo), vcs_ref=V_A, **default_answers(**answers))
    return init_repo(destination, f"Generated from the template {V_A}")


def cruft(
    *args: str, cwd: Path, env: dict[str, str] | None = None, check: bool = True
) -> subprocess.CompletedProcess[str]:
    """The cruft CLI (the post-generation hook tells create from update by its command line)."""
    executable = shutil.which("cruft") or pytest.fail("cruft is not installed (requirements-dev)")
    return run([executable, *args], cwd=cwd, env=env, check=check)


def generate_with_cruft(repo: Path, folder: Path, **answers: str) -> Path:
    """The service `cruft create` generates from `repo` at V_A, in `folder`, committed."""
    config = os.environ.get("COOKIECUTTER_CONFIG") or pytest.fail(
        "generate_with_cruft runs inside harness.update.isolated_tools (COOKIECUTTER_CONFIG)"
    )
    folder.mkdir(parents=True, exist_ok=True)
    cruft(
        "create",
        cruft_url(repo),
        "--checkout",
        V_A,
        "--no-input",
        "--config-file",
        config,
        "--output-dir",
        str(folder),
        "--extra-context",
        json.dumps(default_answers(**answers)),
        cwd=folder,
    )
    (project,) = (path for path in folder.iterdir() if path.is_dir())
    return init_repo(project, f"Generated from the template {V_A}")


def generate(tool: str, repo: Path, folder: Path) -> Path:
    """The service `tool` (copier or cruft) generates with the default answers."""
    return {"copier": generate_with_copier, "cruft": generate_with_cruft}[tool](repo, folder)


def copier_update(
    project: Path, capfd: pytest.CaptureFixture[str] | None = None, **data: str
) -> Updated:
    """`copier update` to V_B, with `data` as `-d` answers; with `capfd`, what it printed
    (its migrations' lines too)."""
    import copier

    started = time.monotonic()
    copier.run_update(
        str(project),
        vcs_ref=V_B,
        data=data,
        defaults=True,
        overwrite=True,
        unsafe=True,
        quiet=False,
    )
    seconds = time.monotonic() - started
    output = ""
    if capfd is not None:
        out, err = capfd.readouterr()
        output = out + err
    return Updated(project, output, seconds)


def cruft_update(project: Path) -> Updated:
    started = time.monotonic()
    result = cruft("update", "-y", "--checkout", V_B, cwd=project)
    return Updated(project, result.stdout + result.stderr, time.monotonic() - started)


def update(project: Path, capfd: pytest.CaptureFixture[str] | None = None) -> Updated:
    """The service updated to V_B with the tool that generated it."""
    if (project / ".cruft.json").exists():
        return cruft_update(project)
    return copier_update(project, capfd)


def edited_and_updated(
    tool: str, repo: Path, folder: Path, edit: Callable[[Path], None]
) -> Updated:
    """A service generated by `tool` at V_A, changed by `edit` (which commits), updated to V_B."""
    project = generate(tool, repo, folder)
    edit(project)
    return update(project)


# ------------------------------------------------------------------ reading results


def read(project: Path, name: str) -> str:
    return (project / name).read_text()


def recorded_answers(project: Path) -> dict:
    """The answers the service's record holds: .copier-answers.yml, or .cruft.json's context."""
    if (project / ".cruft.json").exists():
        return json.loads(read(project, ".cruft.json"))["context"]["cookiecutter"]
    return yaml.safe_load(read(project, ".copier-answers.yml"))


def unmerged(project: Path) -> set[str]:
    lines = git(project, "ls-files", "--unmerged").stdout.splitlines()
    return {line.split("\t", 1)[1] for line in lines}


def stray_rejects(project: Path) -> list[str]:
    return sorted(str(p.relative_to(project)) for p in project.rglob("*.rej"))


def assert_merged_cleanly(project: Path) -> None:
    """No unmerged path, no .rej file and no conflict marker left by an update."""
    assert not unmerged(project)
    assert not stray_rejects(project)
    for path in project.rglob("*"):
        if path.is_file() and ".git" not in path.parts:
            assert not CONFLICT_MARKER.search(path.read_text(errors="replace")), path


# A paragraph the team appends to the generated README (add_team_notes).
TEAM_NOTES = "On-call for this service: team Pete. Written by the team."


def add_team_notes(project: Path) -> None:
    readme = project / "README.md"
    readme.write_text(readme.read_text() + f"\n## Team notes\n\n{TEAM_NOTES}\n")


def generated_before_and_updated(
    commit: str, work: pytest.TempPathFactory, team_edit: Callable[[Path], None]
) -> Path:
    """A service generated with copier from the template at `commit` (before a question
    existed), edited by the team (`team_edit` and the README's notes), then updated to
    the working tree's template with the defaults."""
    repo = since_commit(work.mktemp("release") / "rust-service-template", commit)
    project = generate_with_copier(repo, work.mktemp("service"))
    team_edit(project)
    add_team_notes(project)
    commit_all(project, "Team edits")
    copier_update(project)
    return project


# ------------------------------------------------------------------ the team's edits

USER_ROUTE = "/version"
USER_PARAGRAPH = "On-call for this service: team Pete, #pete-oncall. Written by the team."
USER_CI_JOB = "team-audit"
USER_PORT = "8080"
USER_TEST = "team_version_text_is_the_crate_version"
USER_TITLE = "# Hello Service, run by team Pete"
USER_REMOVED_EDIT = "# team: our mirror of the builder image lives here too"
USER_RENAMED_FIRST_LINE = "//! The team's HTTP tests: they start the real server."
CRATE = DEFAULT_SLUG.replace("-", "_")


def edit_as_team(project: Path) -> None:
    """Edits a team makes after generating: a route, a test, docs, CI and a port."""
    lib = project / "src" / "lib.rs"
    lib.write_text(
        replace_once(
            lib.read_text(),
            "App::new()",
            "App::new()\n            .service(team::version)",
            "src/lib.rs",
        )
        + "\npub mod team;\n"
    )
    (project / "src" / "team.rs").write_text(
        f"""//! Added by the team after generating: template updates must keep it.

use actix_web::get;

/// The running version, for dashboards.
#[get("{USER_ROUTE}")]
pub async fn version() -> &'static str {{
    version_text()
}}

pub fn version_text() -> &'static str {{
    env!("CARGO_PKG_VERSION")
}}

#[cfg(test)]
mod tests {{
    use actix_web::{{App, test, web::Bytes}};

    #[actix_web::test]
    async fn version_route_answers_with_the_crate_version() {{
        let app = test::init_service(App::new().service(super::version)).await;
        let request = test::TestRequest::get().uri("{USER_ROUTE}").to_request();
        let body = test::call_and_read_body(&app, request).await;
        assert_eq!(body, Bytes::from_static(env!("CARGO_PKG_VERSION").as_bytes()));
    }}
}}
"""
    )
    api = project / RENAMED_FROM
    api.write_text(
        api.read_text()
        + f"""
/// Added by the team: must follow this file when the template renames it.
#[test]
fn {USER_TEST}() {{
    assert_eq!({CRATE}::team::version_text(), env!("CARGO_PKG_VERSION"));
}}
"""
    )
    readme = project / "README.md"
    readme.write_text(readme.read_text() + f"\n## Team notes\n\n{USER_PARAGRAPH}\n")
    ci = project / CI_FILE
    ci.write_text(
        ci.read_text()
        + f'\n{USER_CI_JOB}:\n  stage: test\n  script:\n    - echo "audit the dependencies"\n'
    )
    config = project / "src" / "config.rs"
    port = default_answers()["port"]
    config.write_text(
        replace_once(
            config.read_text(),
            f"pub const DEFAULT_PORT: u16 = {port};",
            f"pub const DEFAULT_PORT: u16 = {USER_PORT};",
            "src/config.rs",
        )
    )
    commit_all(project, "Team edits")


def edit_conflicting(project: Path) -> None:
    """Edits on lines the template changes too, and on the file the template removes."""
    readme = project / "README.md"
    lines = readme.read_text().split("\n")
    lines[0] = USER_TITLE
    readme.write_text("\n".join(lines))
    builder = project / REMOVED
    builder.write_text(builder.read_text() + USER_REMOVED_EDIT + "\n")
    api = project / RENAMED_FROM
    lines = api.read_text().split("\n")
    lines[0] = USER_RENAMED_FIRST_LINE
    api.write_text("\n".join(lines))
    commit_all(project, "Team edits on lines the template owns")


def assert_team_edits_survived(project: Path) -> None:
    """Every edit of `edit_as_team` is still in `project` after its update."""
    lib = read(project, "src/lib.rs")
    assert ".service(team::version)" in lib and "pub mod team;" in lib
    assert f'#[get("{USER_ROUTE}")]' in read(project, "src/team.rs")
    assert USER_PARAGRAPH in read(project, "README.md")
    assert USER_CI_JOB in load_ci(project / CI_FILE)
    assert f"pub const DEFAULT_PORT: u16 = {USER_PORT};" in read(project, "src/config.rs")
    # The test the team added to the renamed file moved with it.
    assert f"fn {USER_TEST}()" in read(project, RENAMED_TO)
