"""Template releases: the template as a throwaway git repository with two release tags.

`two_releases` tags the working tree as it is V_A (tracked files plus untracked, not ignored
ones, so work in progress is included), then makes V_B from it with the kinds of change a
template release makes, written by `make_version_b`: a new question with a default, a
changed CI job, a new file, a removed file, a renamed file (with the `_migrations` entry
that runs scripts/keep-user-edits.py for both), a changed README title and a line added to
src/config.rs. `since_commit` tags an earlier commit of this repository V_A and the working
tree V_B: an update from a release services were really generated from.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from harness import TEMPLATE_DIR
from harness.git import commit_all, git, init_repo
from harness.pipeline import load_ci

V_A, V_B = "v1.0.0", "v1.1.0"
SLUG_DIR = "{{cookiecutter.slug}}"

# What V_B changes (paths as generated).
NEW_QUESTION, NEW_DEFAULT = "maintainers", "platform-team"
NEW_FILE = "MAINTAINERS.md"
REMOVED = "ci/builder.Dockerfile"
RENAMED_FROM, RENAMED_TO = "tests/api.rs", "tests/http_api.rs"
RENAME_NOTE = "// Named tests/api.rs before template v1.1.0."
CI_FILE = ".gitlab-ci.yml"
CI_JOB, CI_TIMEOUT = "check", "20 minutes"
TITLE_SUFFIX = " (an actix-web service)"
CONFIG_NOTE = "// Every variable is listed in the README (template v1.1.0)."


def copier_url(repo: Path) -> str:
    return f"git+file://{repo}"


def cruft_url(repo: Path) -> str:
    return f"file://{repo}"  # cruft hands the URL to git, which knows no git+file


def working_tree_files() -> list[str]:
    listed = git(
        TEMPLATE_DIR, "ls-files", "-z", "--cached", "--others", "--exclude-standard"
    ).stdout.split("\0")
    return sorted({name for name in listed if name and (TEMPLATE_DIR / name).is_file()})


def copy_working_tree(repo: Path) -> None:
    for name in working_tree_files():
        target = repo / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(TEMPLATE_DIR / name, target)


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
    """The changes of a template release, made as a maintainer would make them, tagged V_B."""
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

    commit_all(repo, f"Template {V_B}")
    git(repo, "tag", V_B)


def two_releases(repo: Path) -> Path:
    """At `repo` (a new folder): the template with tags V_A (the working tree) and V_B."""
    repo.mkdir(parents=True)
    copy_working_tree(repo)
    init_repo(repo, f"Template {V_A}")
    git(repo, "tag", V_A)
    make_version_b(repo)
    return repo


def since_commit(repo: Path, commit: str) -> Path:
    """At `repo` (a new folder): the template with tags V_A (`commit` of this repository,
    taken with `git archive`) and V_B (the working tree)."""
    known = git(TEMPLATE_DIR, "cat-file", "-e", f"{commit}^{{commit}}", check=False)
    if known.returncode != 0:
        pytest.fail(f"commit {commit} is not in this clone (fetch the full history)")
    repo.mkdir(parents=True)
    archive = subprocess.run(
        ["git", "archive", commit], cwd=TEMPLATE_DIR, capture_output=True, check=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(repo)], input=archive, check=True)
    init_repo(repo, f"Template at {commit[:7]}")
    git(repo, "tag", V_A)
    git(repo, "rm", "-rq", ".")
    copy_working_tree(repo)
    commit_all(repo, "Template as in the working tree")
    git(repo, "tag", V_B)
    return repo


def assert_template_changes_arrived(project: Path) -> None:
    """Every change of V_B is in `project`, a service updated from V_A (default answers)."""
    assert (project / NEW_FILE).read_text() == (
        f"# Maintainers\n\n{NEW_DEFAULT} keeps this service current.\n"
    ), "the new file, rendered with the new question's default"
    assert load_ci(project / CI_FILE)[CI_JOB]["timeout"] == CI_TIMEOUT
    assert (project / "README.md").read_text().split("\n")[0].endswith(TITLE_SUFFIX)
    assert (project / "src/config.rs").read_text().endswith(CONFIG_NOTE + "\n")
    assert (project / RENAMED_TO).read_text().startswith(RENAME_NOTE + "\n")
    assert not (project / RENAMED_FROM).exists(), "the old name of the renamed file is gone"
    assert not (project / REMOVED).exists(), "the removed file, unchanged by the team, is gone"
