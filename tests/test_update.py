"""Template updates keep the team's work: copier update and cruft update across versions.

A throwaway git repository holds the template twice: v1.0.0 is the working tree as it is
(tracked files plus untracked, not ignored ones, so work in progress is included), and
v1.1.0 is the same tree with the kinds of change a template release makes (a new question
with a default, a changed CI job, a new file, a removed file, a renamed file, a changed
README title), written by `make_version_b` below. Services are generated at v1.0.0 with
copier, cruft and plain cookiecutter, committed, edited as a team would, and updated to
v1.1.0. Only one test builds Rust (marker `slow`); everything else renders and merges.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from harness import TEMPLATE_DIR
from harness.processes import require, run
from harness.render import DEFAULT_SLUG, cookiecutter_config, default_answers, render_copier

pytestmark = pytest.mark.update

V_A, V_B = "v1.0.0", "v1.1.0"
SLUG_DIR = "{{cookiecutter.slug}}"
CRATE = DEFAULT_SLUG.replace("-", "_")

# Template changes in v1.1.0 (paths as generated).
NEW_QUESTION, NEW_DEFAULT = "maintainers", "platform-team"
NEW_FILE = "MAINTAINERS.md"
REMOVED = "ci/builder.Dockerfile"
RENAMED_FROM, RENAMED_TO = "tests/api.rs", "tests/http_api.rs"
RENAME_NOTE = "// Named tests/api.rs before template v1.1.0."
CI_FILE = ".gitlab-ci.yml"
CI_JOB, CI_TIMEOUT = "check", "20 minutes"
TITLE_SUFFIX = " (an actix-web service)"
CONFIG_NOTE = "// Every variable is listed in the README (template v1.1.0)."

# The team's edits.
USER_ROUTE = "/version"
USER_PARAGRAPH = "On-call for this service: team Pete, #pete-oncall. Written by the team."
USER_CI_JOB = "team-audit"
USER_PORT = "8080"
USER_TEST = "team_version_text_is_the_crate_version"
USER_TITLE = "# Hello Service, run by team Pete"
USER_REMOVED_EDIT = "# team: our mirror of the builder image lives here too"
USER_RENAMED_FIRST_LINE = "//! The team's HTTP tests: they start the real server."

CONFLICT_MARKER = re.compile(r"^<<<<<<< |^>>>>>>> ", re.MULTILINE)


# ------------------------------------------------------------------ git and environment


def git(cwd: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return run(["git", *args], cwd=cwd, check=check)


def commit_all(cwd: Path, message: str) -> None:
    git(cwd, "add", "-A")
    git(cwd, "commit", "-q", "-m", message)


@pytest.fixture(scope="module", autouse=True)
def hermetic_git_and_cookiecutter(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Git identity, cookiecutter's config and copier's cache in temp files, for this process
    and its children: nothing lands in $HOME."""
    home = tmp_path_factory.mktemp("update-home")
    gitconfig = home / "gitconfig"
    gitconfig.write_text(
        "[user]\n\tname = Template Tests\n\temail = tests@example.invalid\n"
        "[init]\n\tdefaultBranch = main\n[commit]\n\tgpgsign = false\n"
        "[tag]\n\tgpgsign = false\n"
    )
    overrides = {
        "GIT_CONFIG_GLOBAL": str(gitconfig),
        "GIT_CONFIG_NOSYSTEM": "1",
        "COOKIECUTTER_CONFIG": str(cookiecutter_config(home / "cookiecutter")),
        # copier keeps mirrors of git+file:// templates in the user's cache otherwise.
        "COPIER_CACHE_DIR": str(home / "copier-cache"),
    }
    previous = {key: os.environ.get(key) for key in overrides}
    os.environ.update(overrides)
    # copier runs git and its tasks through plumbum, whose environment is a copy of
    # os.environ taken at import time: set it there too.
    from plumbum import local

    with local.env(**overrides):
        yield home
    for key, value in previous.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


# ------------------------------------------------------------------ the template, A and B


def working_tree_files() -> list[str]:
    listed = run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=TEMPLATE_DIR
    ).stdout.split("\0")
    return sorted({name for name in listed if name and (TEMPLATE_DIR / name).is_file()})


def template_file(repo: Path, generated: str) -> Path:
    """The file in the template tree that generates `generated` (names may hold Jinja)."""
    root = repo / SLUG_DIR
    for path in root.rglob("*"):
        rendered = re.sub(r"\{%.*?%\}", "", str(path.relative_to(root)))
        if path.is_file() and rendered == generated:
            return path
    pytest.fail(f"the template has no file that generates {generated}; update make_version_b")


def replace_once(text: str, old: str, new: str, where: str) -> str:
    if text.count(old) != 1:
        pytest.fail(f"{where}: expected exactly one {old!r}; the file changed shape")
    return text.replace(old, new)


B_MIGRATIONS = f"""_migrations:
  # The team's edits follow tests/api.rs to its new name; a changed builder file stays.
  - version: {V_B}
    when: "{{{{ _stage == 'after' }}}}"
    command:
      - "{{{{ _copier_python }}}}"
      - "{{{{ _copier_conf.src_path }}}}/scripts/keep-user-edits.py"
      - --renamed
      - {RENAMED_FROM}
      - {RENAMED_TO}
      - --removed
      - {REMOVED}
"""


def make_version_b(repo: Path) -> None:
    """The changes of a template release, made as a maintainer would make them."""
    # A new question with a default, in both question files.
    cc_path = repo / "cookiecutter.json"
    questions = json.loads(cc_path.read_text())
    updated: dict[str, object] = {}
    for key, value in questions.items():
        if key.startswith("_") and NEW_QUESTION not in updated:
            updated[NEW_QUESTION] = NEW_DEFAULT
        updated[key] = value
    updated.setdefault(NEW_QUESTION, NEW_DEFAULT)
    if isinstance(updated.get("__prompts__"), dict):
        updated["__prompts__"][NEW_QUESTION] = "Who maintains this service"  # type: ignore[index]
    cc_path.write_text(json.dumps(updated, indent=2) + "\n")

    copier_yml = repo / "copier.yml"
    text = copier_yml.read_text()
    question = (
        f"{NEW_QUESTION}:\n  type: str\n  help: Who maintains this service\n"
        f"  default: {NEW_DEFAULT}\n\n"
    )
    text, count = re.subn(r"^cookiecutter:", question + "cookiecutter:", text, flags=re.M)
    if count != 1:
        pytest.fail("copier.yml: no top-level `cookiecutter:` question to insert before")
    text = replace_once(
        text,
        '"verify": {{ verify|tojson }}}',
        f'"verify": {{{{ verify|tojson }}}}, "{NEW_QUESTION}": {{{{ {NEW_QUESTION}|tojson }}}}}}',
        "copier.yml cookiecutter mapping",
    )
    if re.search(r"^_migrations:", text, flags=re.M):
        text, count = re.subn(r"^_migrations: \[\]\n", B_MIGRATIONS, text, flags=re.M)
        if count != 1:
            pytest.fail("copier.yml: _migrations is no longer the empty list this test extends")
    else:
        text += "\n" + B_MIGRATIONS
    copier_yml.write_text(text)

    # A new file that uses the new question.
    (repo / SLUG_DIR / NEW_FILE).write_text(
        f"# Maintainers\n\n{{{{ cookiecutter.{NEW_QUESTION} }}}} keeps this service current.\n"
    )

    # A changed CI job.
    ci = template_file(repo, CI_FILE)
    ci.write_text(
        replace_once(
            ci.read_text(), f"\n{CI_JOB}:\n", f"\n{CI_JOB}:\n  timeout: {CI_TIMEOUT}\n", CI_FILE
        )
    )

    # A change far from the line the team changes in the same file.
    config = template_file(repo, "src/config.rs")
    config.write_text(config.read_text() + CONFIG_NOTE + "\n")

    # A changed line that a team may have changed too (the conflict scenario).
    readme = repo / SLUG_DIR / "README.md"
    lines = readme.read_text().split("\n")
    if lines[0] != "# {{ cookiecutter.project_name }}":
        pytest.fail("README.md no longer starts with the project name as its title")
    lines[0] += TITLE_SUFFIX
    readme.write_text("\n".join(lines))

    # A removed file and a renamed one (with a small change of its own).
    git(repo, "rm", "-q", str(template_file(repo, REMOVED).relative_to(repo)))
    old = template_file(repo, RENAMED_FROM)
    new = old.with_name(Path(RENAMED_TO).name)
    git(repo, "mv", str(old.relative_to(repo)), str(new.relative_to(repo)))
    new.write_text(RENAME_NOTE + "\n" + new.read_text())

    commit_all(repo, "Template v1.1.0")
    git(repo, "tag", V_B)


@pytest.fixture(scope="module")
def template_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The template as a git repository with tags v1.0.0 (today's tree) and v1.1.0."""
    repo = tmp_path_factory.mktemp("template") / "rust-service-template"
    for name in working_tree_files():
        target = repo / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(TEMPLATE_DIR / name, target)
    git(repo, "init", "-q")
    commit_all(repo, "Template v1.0.0")
    git(repo, "tag", V_A)
    make_version_b(repo)
    return repo


def copier_url(repo: Path) -> str:
    return f"git+file://{repo}"


def cruft_url(repo: Path) -> str:
    return f"file://{repo}"  # cruft hands the URL to git, which knows no git+file


# ------------------------------------------------------------------ the team's edits


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


# ------------------------------------------------------------------ generating and updating


@dataclass
class Updated:
    """A service after its update, with what the update command printed."""

    path: Path
    output: str
    seconds: float


def generate_with_copier(repo: Path, destination: Path, **answers: str) -> Path:
    render_copier(destination, template=copier_url(repo), vcs_ref=V_A, **default_answers(**answers))
    git(destination, "init", "-q")
    commit_all(destination, f"Generated from the template {V_A}")
    return destination


def copier_update(project: Path, capfd: pytest.CaptureFixture[str] | None = None) -> Updated:
    import copier

    started = time.monotonic()
    copier.run_update(
        str(project), vcs_ref=V_B, defaults=True, overwrite=True, unsafe=True, quiet=False
    )
    seconds = time.monotonic() - started
    output = ""
    if capfd is not None:
        out, err = capfd.readouterr()
        output = out + err
    return Updated(project, output, seconds)


def cruft(
    *args: str, cwd: Path, env: dict[str, str] | None = None, check: bool = True
) -> subprocess.CompletedProcess[str]:
    """The cruft CLI (the post-generation hook tells create from update by its command line)."""
    executable = shutil.which("cruft") or pytest.fail("cruft is not installed (requirements-dev)")
    return run([executable, *args], cwd=cwd, env=env, check=check)


def generate_with_cruft(repo: Path, output_dir: Path, **answers: str) -> Path:
    output_dir.mkdir(parents=True, exist_ok=True)
    cruft(
        "create",
        cruft_url(repo),
        "--checkout",
        V_A,
        "--no-input",
        "--config-file",
        os.environ["COOKIECUTTER_CONFIG"],
        "--output-dir",
        str(output_dir),
        "--extra-context",
        json.dumps(default_answers(**answers)),
        cwd=output_dir,
    )
    (project,) = (path for path in output_dir.iterdir() if path.is_dir())
    git(project, "init", "-q")
    commit_all(project, f"Generated from the template {V_A}")
    return project


def cruft_update(project: Path, env: dict[str, str] | None = None) -> Updated:
    started = time.monotonic()
    result = cruft("update", "-y", "--checkout", V_B, cwd=project, env=env)
    return Updated(project, result.stdout + result.stderr, time.monotonic() - started)


@pytest.fixture(scope="module")
def copier_service(template_repo: Path, tmp_path_factory: pytest.TempPathFactory) -> Updated:
    project = generate_with_copier(template_repo, tmp_path_factory.mktemp("copier") / "svc")
    edit_as_team(project)
    return copier_update(project)


@pytest.fixture(scope="module")
def cruft_service(template_repo: Path, tmp_path_factory: pytest.TempPathFactory) -> Updated:
    project = generate_with_cruft(template_repo, tmp_path_factory.mktemp("cruft"))
    edit_as_team(project)
    return cruft_update(project)


@pytest.fixture(scope="module", params=["copier", "cruft"])
def updated(request: pytest.FixtureRequest) -> Updated:
    return request.getfixturevalue(f"{request.param}_service")


# ------------------------------------------------------------------ reading results


def read(project: Path, name: str) -> str:
    return (project / name).read_text()


def load_yaml(text: str) -> dict:
    class Loader(yaml.SafeLoader):
        pass

    # GitLab's !reference and friends: keep the document loadable.
    Loader.add_multi_constructor("!", lambda loader, suffix, node: None)
    return yaml.load(text, Loader=Loader)


def unmerged(project: Path) -> set[str]:
    lines = git(project, "ls-files", "--unmerged").stdout.splitlines()
    return {line.split("\t", 1)[1] for line in lines}


def stray_rejects(project: Path) -> list[str]:
    return sorted(str(p.relative_to(project)) for p in project.rglob("*.rej"))


# ------------------------------------------------------------ 1. edits survive, changes arrive


def assert_team_edits_survived(project: Path) -> None:
    lib = read(project, "src/lib.rs")
    assert ".service(team::version)" in lib and "pub mod team;" in lib
    assert f'#[get("{USER_ROUTE}")]' in read(project, "src/team.rs")
    assert USER_PARAGRAPH in read(project, "README.md")
    assert USER_CI_JOB in load_yaml(read(project, CI_FILE))
    assert f"pub const DEFAULT_PORT: u16 = {USER_PORT};" in read(project, "src/config.rs")
    # The test the team added to the renamed file moved with it.
    assert f"fn {USER_TEST}()" in read(project, RENAMED_TO)


def assert_template_changes_arrived(project: Path) -> None:
    assert read(project, NEW_FILE) == (
        f"# Maintainers\n\n{NEW_DEFAULT} keeps this service current.\n"
    ), "the new file, rendered with the new question's default"
    assert load_yaml(read(project, CI_FILE))[CI_JOB]["timeout"] == CI_TIMEOUT
    assert read(project, "README.md").split("\n")[0].endswith(TITLE_SUFFIX)
    assert read(project, "src/config.rs").endswith(CONFIG_NOTE + "\n")
    assert read(project, RENAMED_TO).startswith(RENAME_NOTE + "\n")
    assert not (project / RENAMED_FROM).exists(), "the old name of the renamed file is gone"
    assert not (project / REMOVED).exists(), "the removed file, unchanged by the team, is gone"


def test_every_team_edit_survives_the_update(updated: Updated) -> None:
    assert_team_edits_survived(updated.path)


def test_every_template_change_arrives(updated: Updated) -> None:
    assert_template_changes_arrived(updated.path)


def test_a_clean_update_leaves_no_conflicts(updated: Updated) -> None:
    project = updated.path
    assert not unmerged(project)
    assert not stray_rejects(project)
    for path in project.rglob("*"):
        if path.is_file() and ".git" not in path.parts:
            assert not CONFLICT_MARKER.search(path.read_text(errors="replace")), path


def test_copier_answers_name_the_new_version_and_question(copier_service: Updated) -> None:
    answers = yaml.safe_load(read(copier_service.path, ".copier-answers.yml"))
    assert answers["_commit"] == V_B
    assert answers[NEW_QUESTION] == NEW_DEFAULT
    assert answers["port"] == default_answers()["port"]


def test_cruft_state_names_the_new_version_and_question(
    cruft_service: Updated, template_repo: Path
) -> None:
    state = json.loads(read(cruft_service.path, ".cruft.json"))
    assert state["checkout"] == V_B
    assert state["commit"] == git(template_repo, "rev-parse", f"{V_B}^{{commit}}").stdout.strip()
    assert state["context"]["cookiecutter"][NEW_QUESTION] == NEW_DEFAULT


def test_updating_again_to_the_same_version_changes_nothing(updated: Updated) -> None:
    """Whatever runs on update (tasks, migrations, cruft's hooks) is idempotent."""
    project = updated.path
    commit_all(project, f"Update to the template {V_B}")
    if (project / ".cruft.json").exists():
        cruft_update(project)
    else:
        copier_update(project)
    assert git(project, "status", "--porcelain").stdout == ""


def test_cruft_rerenders_a_fresh_service_identically(
    template_repo: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """cruft runs the hooks again on every render it diffs against: they must give the same
    tree every time, or every update would carry spurious changes."""
    project = generate_with_cruft(template_repo, tmp_path_factory.mktemp("cruft-d"))
    result = cruft("diff", "--exit-code", "--checkout", V_A, cwd=project, check=False)
    assert result.returncode == 0 and not result.stdout.strip(), result.stdout + result.stderr


# ------------------------------------------------------------------ 2. conflicts are never silent


@pytest.fixture(scope="module")
def copier_conflict(template_repo: Path, tmp_path_factory: pytest.TempPathFactory) -> Updated:
    project = generate_with_copier(template_repo, tmp_path_factory.mktemp("copier-c") / "svc")
    edit_conflicting(project)
    return copier_update(project)


@pytest.fixture(scope="module")
def cruft_conflict(template_repo: Path, tmp_path_factory: pytest.TempPathFactory) -> Updated:
    project = generate_with_cruft(template_repo, tmp_path_factory.mktemp("cruft-c"))
    edit_conflicting(project)
    return cruft_update(project)


@pytest.fixture(scope="module", params=["copier", "cruft"])
def conflicted(request: pytest.FixtureRequest) -> Updated:
    return request.getfixturevalue(f"{request.param}_conflict")


def test_overlapping_edits_keep_both_sides(conflicted: Updated) -> None:
    """Nothing is lost: the team's line stays, the template's line is offered beside it."""
    project = conflicted.path
    readme = read(project, "README.md")
    assert USER_TITLE in readme, "the team's line is kept"
    rejected = project / "README.md.rej"
    offered = readme + (rejected.read_text() if rejected.exists() else "")
    assert f"# Hello Service{TITLE_SUFFIX}" in offered, "the template's line is offered"
    # The same for the renamed file, whose first line both sides changed.
    api = read(project, RENAMED_TO)
    assert USER_RENAMED_FIRST_LINE in api
    rejected = project / f"{RENAMED_TO}.rej"
    assert RENAME_NOTE in api + (rejected.read_text() if rejected.exists() else "")


def test_copier_marks_conflicts_inline_and_in_git(copier_conflict: Updated) -> None:
    """copier's inline mode: markers in the file, the file unmerged, a plain commit refused."""
    project = copier_conflict.path
    readme = read(project, "README.md")
    assert "<<<<<<< before updating" in readme and ">>>>>>> after updating" in readme, readme
    assert unmerged(project) == {"README.md", RENAMED_TO}, "the migration's conflict too"
    assert "<<<<<<< your tests/api.rs" in read(project, RENAMED_TO)
    status = git(project, "status", "--porcelain").stdout
    assert "UU README.md" in status, status
    assert git(project, "commit", "-q", "-m", "unresolved", check=False).returncode != 0


def test_cruft_leaves_a_reject_file_and_says_so(cruft_conflict: Updated) -> None:
    """cruft: `git apply -3` cannot take the whole patch, so it falls back to `.rej` files."""
    project = cruft_conflict.path
    assert stray_rejects(project) == ["README.md.rej", f"{RENAMED_TO}.rej"]
    assert "*.rej files" in cruft_conflict.output and "conflicts" in cruft_conflict.output, (
        cruft_conflict.output
    )
    assert "README.md" in cruft_conflict.output


def test_a_removed_file_the_team_changed_is_kept(conflicted: Updated) -> None:
    builder = read(conflicted.path, REMOVED)
    assert USER_REMOVED_EDIT in builder


def test_copier_says_what_its_migration_kept_and_where_it_conflicts(
    template_repo: Path,
    tmp_path_factory: pytest.TempPathFactory,
    capfd: pytest.CaptureFixture[str],
) -> None:
    project = generate_with_copier(template_repo, tmp_path_factory.mktemp("copier-k") / "svc")
    edit_conflicting(project)
    capfd.readouterr()
    result = copier_update(project, capfd)
    assert f"kept {REMOVED}" in result.output, result.output
    assert f"CONFLICT: your edits of {RENAMED_FROM}" in result.output, result.output
    assert "README.md" in unmerged(project)


# ------------------------------------------------------------------ the updated service works


@pytest.mark.slow
def test_the_updated_service_builds_and_its_tests_pass(
    copier_service: Updated, cargo_env: dict[str, str]
) -> None:
    """The one cargo build of this file: the copier service after its update to v1.1.0."""
    cargo = require("cargo")
    started = time.monotonic()
    result = run([cargo, "test", "--locked"], cwd=copier_service.path, env=cargo_env)
    print(f"cargo test --locked of the updated service: {time.monotonic() - started:.1f} s")
    output = result.stdout + result.stderr
    assert "test team::tests::version_route_answers_with_the_crate_version ... ok" in output, output
    assert f"test {USER_TEST} ... ok" in output, "the team's test, moved to the renamed file"
    assert "tests/http_api.rs" in output, output


# ------------------------------------------------------------------ 5. no one-time work on update


def ask_for_cargo_verification(project: Path) -> None:
    """Answers that would make the post-generation hook build the service, committed."""
    copier_answers = project / ".copier-answers.yml"
    if copier_answers.exists():
        copier_answers.write_text(
            replace_once(copier_answers.read_text(), "verify: none", "verify: cargo", "answers")
        )
    else:
        state_file = project / ".cruft.json"
        state = json.loads(state_file.read_text())
        assert state["context"]["cookiecutter"]["verify"] == "none"
        state["context"]["cookiecutter"]["verify"] = "cargo"
        state_file.write_text(json.dumps(state, indent=2) + "\n")
    commit_all(project, "Ask for verification with cargo")


def assert_nothing_was_built(project: Path, target_dir: Path, output: str) -> None:
    assert list(target_dir.iterdir()) == [], "cargo built into CARGO_TARGET_DIR during the update"
    assert not (project / "target").exists(), "cargo built into the project during the update"
    assert "[verify]" not in output, output


def test_copier_update_runs_no_verification(
    template_repo: Path,
    tmp_path_factory: pytest.TempPathFactory,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
) -> None:
    project = generate_with_copier(template_repo, tmp_path_factory.mktemp("copier-v") / "svc")
    ask_for_cargo_verification(project)
    target_dir = tmp_path / "target"
    target_dir.mkdir()
    monkeypatch.setenv("CARGO_TARGET_DIR", str(target_dir))
    capfd.readouterr()
    result = copier_update(project, capfd)
    assert yaml.safe_load(read(project, ".copier-answers.yml"))["verify"] == "cargo"
    assert (project / NEW_FILE).exists(), "the update itself happened"
    assert_nothing_was_built(project, target_dir, result.output)


def test_cruft_update_runs_no_verification(
    template_repo: Path, tmp_path_factory: pytest.TempPathFactory, tmp_path: Path
) -> None:
    """cruft renders both versions again, hooks included; the hook must notice and stay idle."""
    project = generate_with_cruft(template_repo, tmp_path_factory.mktemp("cruft-v"))
    ask_for_cargo_verification(project)
    target_dir = tmp_path / "target"
    target_dir.mkdir()
    result = cruft_update(project, env=dict(os.environ, CARGO_TARGET_DIR=str(target_dir)))
    assert json.loads(read(project, ".cruft.json"))["context"]["cookiecutter"]["verify"] == "cargo"
    assert (project / NEW_FILE).exists(), "the update itself happened"
    assert_nothing_was_built(project, target_dir, result.output)


# ------------------------------------------------------------------ 3. why the migrations exist


def test_without_migrations_copier_drops_edits_to_renamed_and_removed_files(
    tmp_path: Path,
) -> None:
    """copier alone deletes removed files even when edited and recreates renamed ones fresh.

    This is why a release that renames or removes a file needs the `_migrations` entries
    of docs/maintaining.md. If this test fails, copier changed: revisit that advice.
    """
    repo = tmp_path / "tiny-template"
    sub = repo / SLUG_DIR
    sub.mkdir(parents=True)
    (repo / "copier.yml").write_text(
        '_subdirectory: "{% raw %}{{cookiecutter.slug}}{% endraw %}"\n_templates_suffix: ""\n'
        "slug:\n  type: str\n  default: tiny\n"
        "cookiecutter:\n  type: json\n  when: false\n"
        "  default: '{\"slug\": {{ slug|tojson }}}'\n"
    )
    shutil.copy2(
        template_file(TEMPLATE_DIR, ".copier-answers.yml"),
        sub / "{% if _copier_conf is defined %}.copier-answers.yml{% endif %}",
    )
    (sub / "old.txt").write_text("one\ntwo\nthree\n")
    (sub / "gone.txt").write_text("one\ntwo\nthree\n")
    git(repo, "init", "-q")
    commit_all(repo, "A")
    git(repo, "tag", V_A)
    git(repo, "mv", f"{SLUG_DIR}/old.txt", f"{SLUG_DIR}/new.txt")
    git(repo, "rm", "-q", f"{SLUG_DIR}/gone.txt")
    commit_all(repo, "B")
    git(repo, "tag", V_B)

    project = generate_with_copier(repo, tmp_path / "tiny")
    (project / "old.txt").write_text("one\nTWO, edited by the team\nthree\n")
    (project / "gone.txt").write_text("one\ntwo\nthree\nfour, added by the team\n")
    commit_all(project, "Team edits")
    copier_update(project)

    assert not (project / "gone.txt").exists(), "copier deleted the edited, removed file"
    assert "edited by the team" not in read(project, "new.txt"), "the edit did not follow"
    assert not (project / "old.txt").exists()
    assert "UU" not in git(project, "status", "--porcelain").stdout, "and it said nothing"


# ------------------------------------------------------------------ 4. from cookiecutter to copier

CONVERTER = TEMPLATE_DIR / "scripts" / "cookiecutter-to-copier.py"


def convert(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return run([sys.executable, str(CONVERTER), str(project), *args])


def test_a_cookiecutter_service_moves_to_copier_update_with_its_edits(
    template_repo: Path, tmp_path: Path
) -> None:
    from cookiecutter.main import cookiecutter

    home = tmp_path / "cc-home"
    project = Path(
        cookiecutter(
            copier_url(template_repo),
            checkout=V_A,
            no_input=True,
            extra_context=default_answers(),
            output_dir=str(tmp_path / "out"),
            config_file=str(cookiecutter_config(home)),
        )
    )
    git(project, "init", "-q")
    commit_all(project, f"Generated with cookiecutter from the template {V_A}")
    edit_as_team(project)
    (replay,) = (home / "replay").glob("*.json")

    printed = convert(project, "--replay", str(replay)).stdout
    assert "copier update" in printed
    answers = yaml.safe_load(read(project, ".copier-answers.yml"))
    assert answers["_commit"] == V_A and answers["_src_path"] == copier_url(template_repo)
    commit_all(project, "Record the template answers for copier")

    copier_update(project)
    assert_team_edits_survived(project)
    assert_template_changes_arrived(project)
    assert yaml.safe_load(read(project, ".copier-answers.yml"))["_commit"] == V_B
    assert not unmerged(project) and not stray_rejects(project)


def test_answers_from_cruft_match_what_copier_writes_itself(
    template_repo: Path, tmp_path: Path
) -> None:
    from_cruft = generate_with_cruft(template_repo, tmp_path / "cruft")
    convert(from_cruft, "--src-path", copier_url(template_repo))
    by_copier = generate_with_copier(template_repo, tmp_path / "copier")
    written = read(from_cruft, ".copier-answers.yml")
    assert written == read(by_copier, ".copier-answers.yml"), "byte for byte"

    commit_all(from_cruft, "Record the template answers for copier")
    copier_update(from_cruft)
    assert yaml.safe_load(read(from_cruft, ".copier-answers.yml"))["_commit"] == V_B
    assert (from_cruft / NEW_FILE).exists()


def test_the_converter_refuses_without_a_record_or_a_version(
    template_repo: Path, tmp_path: Path
) -> None:
    bare = tmp_path / "bare"
    bare.mkdir()
    result = run([sys.executable, str(CONVERTER), str(bare)], check=False)
    assert result.returncode == 1 and "--replay" in result.stderr
    replay = tmp_path / "replay.json"
    replay.write_text(json.dumps({"cookiecutter": {**default_answers(), "_template": "x"}}))
    result = run([sys.executable, str(CONVERTER), str(bare), "--replay", str(replay)], check=False)
    assert result.returncode == 1 and "--vcs-ref" in result.stderr
    assert not (bare / ".copier-answers.yml").exists()


# ------------------------------------------------------------------ 7. the generated README


def readme_update_commands(project: Path) -> list[list[str]]:
    """The copier, cruft and converter command lines in the README's update section."""
    text = read(project, "README.md")
    assert "\n## Updating from the template\n" in text
    section = text.split("\n## Updating from the template\n", 1)[1].split("\n## ", 1)[0]
    commands = []
    for block in re.findall(r"```sh\n(.*?)```", section, flags=re.S):
        for line in block.replace("\\\n", " ").splitlines():
            words = line.split("#", 1)[0].split()
            if words and words[0] in ("copier", "cruft"):
                commands.append(words)
    return commands


def test_the_readme_update_commands_use_options_the_tools_have(copier_service: Updated) -> None:
    commands = readme_update_commands(copier_service.path)
    assert {tuple(c[:2]) for c in commands} >= {("copier", "update"), ("cruft", "update")}
    for words in commands:
        executable = shutil.which(words[0]) or pytest.fail(f"{words[0]} is not installed")
        help_text = run([executable, words[1], "--help"]).stdout
        for option in (w for w in words[2:] if w.startswith("-")):
            assert re.search(rf"(?<![\w-]){re.escape(option)}(?![\w-])", help_text), (
                f"{' '.join(words)}: {option} is not an option of {words[0]} {words[1]}"
            )


# ------------------------------------------------------ 6. from the release before issue 10

# The template before the production pieces (env_logger, /health only), with issue 8
# merged: what existing services were generated from.
PREVIOUS_RELEASE = "d2fd42184b0b6dce257bfda745a0a505cba2b230"
TEAM_HANDLER = """
/// Added by the team: must survive template updates.
#[get("/team/version")]
async fn team_version() -> &'static str {
    env!("CARGO_PKG_VERSION")
}
"""
NEW_SERVICE_FILES = (
    "src/healthcheck.rs",
    "src/metrics.rs",
    "src/middleware.rs",
    "src/operations.rs",
    "src/telemetry.rs",
    "monitoring/prometheus.yml",
)


@pytest.fixture(scope="module")
def from_previous_release(tmp_path_factory: pytest.TempPathFactory) -> Updated:
    """A service generated with copier from PREVIOUS_RELEASE, its src/routes.rs edited by
    the team, then updated to this working tree."""
    known = git(TEMPLATE_DIR, "cat-file", "-e", f"{PREVIOUS_RELEASE}^{{commit}}", check=False)
    if known.returncode != 0:
        pytest.fail(f"commit {PREVIOUS_RELEASE} is not in this clone (fetch the full history)")
    repo = tmp_path_factory.mktemp("release") / "rust-service-template"
    repo.mkdir()
    archive = subprocess.run(
        ["git", "archive", PREVIOUS_RELEASE], cwd=TEMPLATE_DIR, capture_output=True, check=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(repo)], input=archive, check=True)
    git(repo, "init", "-q")
    commit_all(repo, "Template before issue 10")
    git(repo, "tag", V_A)
    git(repo, "rm", "-rq", ".")
    for name in working_tree_files():
        target = repo / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(TEMPLATE_DIR / name, target)
    commit_all(repo, "Template with issue 10")
    git(repo, "tag", V_B)

    project = generate_with_copier(repo, tmp_path_factory.mktemp("previous") / "svc")
    routes = project / "src" / "routes.rs"
    text = replace_once(
        routes.read_text(), ".service(greet);", ".service(greet).service(team_version);", "routes"
    )
    routes.write_text(text + TEAM_HANDLER)
    commit_all(project, "Team route")
    return copier_update(project)


def test_an_update_from_the_previous_release_keeps_routes_and_brings_the_service_pieces(
    from_previous_release: Updated,
) -> None:
    project = from_previous_release.path
    routes = read(project, "src/routes.rs")
    assert '#[get("/team/version")]' in routes and ".service(team_version)" in routes
    assert not unmerged(project) and not stray_rejects(project)
    for name in git(project, "ls-files").stdout.split():
        assert not CONFLICT_MARKER.search(read(project, name)), name
    for name in NEW_SERVICE_FILES:
        assert (project / name).is_file(), name
    cargo_toml = read(project, "Cargo.toml")
    assert "tracing-subscriber" in cargo_toml and "env_logger" not in cargo_toml
    assert 'name = "tracing-subscriber"' in read(project, "Cargo.lock")
    assert "HEALTHCHECK" in read(project, "Dockerfile")


@pytest.mark.slow
def test_the_service_updated_from_the_previous_release_builds_and_serves_the_team_route(
    from_previous_release: Updated, cargo_env: dict[str, str]
) -> None:
    cargo = require("cargo")
    project = from_previous_release.path
    run([cargo, "test", "--locked"], cwd=project, env=cargo_env)
    team_test = """
#[actix_web::test]
async fn the_team_route_answers_through_the_template_middleware() {
    let app = actix_web::test::init_service(app(AppState::default())).await;
    let request = actix_web::test::TestRequest::get().uri("/team/version").to_request();
    let response = actix_web::test::call_service(&app, request).await;
    assert_eq!(response.status(), 200);
    assert!(response.headers().contains_key("x-request-id"));
}
"""
    api = project / "tests" / "api.rs"
    api.write_text(api.read_text() + team_test)
    result = run(
        [cargo, "test", "--locked", "--test", "api", "team_route"], cwd=project, env=cargo_env
    )
    assert "test the_team_route_answers_through_the_template_middleware ... ok" in result.stdout
