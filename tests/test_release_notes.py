"""ci/release-notes.sh, the release jobs' notes, run with `sh` on real git repositories.

The script is POSIX sh, awk and git (GitLab's CLI image is Alpine: busybox sh and awk);
here it runs under the machine's `sh` (dash on Debian) and awk. The CI wiring (the jobs
that call it) is checked in tests/test_pipeline_files.py, and the GitLab release job
runs it for real in tests/test_pipeline_runs.py's tag pipeline.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from harness.git import git, init_repo
from harness.pipeline import RELEASE_NOTES
from harness.processes import require, run

Render = Callable[..., Path]  # the `rendered` fixture (tests/conftest.py)

KEEP_A_CHANGELOG = """# Changelog

## Unreleased

- not released yet

## [1.1.0] - 2025-05-01

### Added

- the widget

- its settings


## [1.1.0-rc.1] - 2025-04-20
- widget preview

## 1.0.0

[1.1.0]: https://example.com/compare/v1.0.0...v1.1.0
"""


@pytest.fixture
def repo(rendered: Render, tmp_path: Path) -> Path:
    """Commits `first` (v1.0.0), `second` (v1.1.0-rc.1), `third` (v1.1.0); the script in
    ci/, no CHANGELOG.md yet."""
    require("git")
    repo = tmp_path / "service"
    (repo / "ci").mkdir(parents=True)
    shutil.copy2(rendered() / RELEASE_NOTES, repo / RELEASE_NOTES)
    init_repo(repo, "first")
    git(repo, "tag", "v1.0.0")
    for message, tag in (("second", "v1.1.0-rc.1"), ("third", "v1.1.0")):
        git(repo, "commit", "-q", "--allow-empty", "-m", message)
        git(repo, "tag", tag)
    return repo


def notes(repo: Path, tag: str) -> str:
    return run([require("sh"), RELEASE_NOTES, tag], cwd=repo).stdout


def commit_lines(repo: Path, *messages: str) -> list[str]:
    """The notes' line for each commit: `- <subject> (<short sha>)`."""
    return [
        f"- {message} ({git(repo, 'log', '--format=%h', f'--grep=^{message}$').stdout.strip()})"
        for message in messages
    ]


@pytest.mark.parametrize(
    ("tag", "section"),
    [
        pytest.param(
            "v1.1.0",
            "### Added\n\n- the widget\n\n- its settings\n",
            id="keep-a-changelog-heading-blank-lines-kept-inside-trimmed-around",
        ),
        pytest.param("v1.1.0-rc.1", "- widget preview\n", id="pre-release-section"),
    ],
)
def test_the_tags_changelog_section_is_the_notes(repo: Path, tag: str, section: str) -> None:
    (repo / "CHANGELOG.md").write_text(KEEP_A_CHANGELOG)
    assert notes(repo, tag) == section


@pytest.mark.parametrize("heading", ["## 1.1.0", "## v1.1.0", "## [v1.1.0](https://x/1.1.0)"])
def test_plain_and_v_headings_name_the_version_too(repo: Path, heading: str) -> None:
    (repo / "CHANGELOG.md").write_text(f"# Changelog\n\n{heading}\n\n- plain\n\n## 1.0.0\n")
    assert notes(repo, "v1.1.0") == "- plain\n"


@pytest.mark.parametrize(
    ("changelog", "tag", "since", "listed"),
    [
        pytest.param(None, "v1.0.0", None, ["first"], id="first-release-every-commit"),
        pytest.param(
            None, "v1.1.0", "v1.0.0", ["third", "second"], id="release-skips-pre-releases"
        ),
        pytest.param(None, "v1.1.0-rc.1", "v1.0.0", ["second"], id="pre-release"),
        pytest.param(KEEP_A_CHANGELOG, "v1.0.0", None, ["first"], id="empty-section-falls-back"),
        pytest.param(
            "# Changelog\n\n## Unreleased\n\n- soon\n",
            "v1.1.0",
            "v1.0.0",
            ["third", "second"],
            id="no-section-falls-back",
        ),
    ],
)
def test_without_a_section_the_notes_list_the_commits_since_the_previous_release(
    repo: Path, changelog: str | None, tag: str, since: str | None, listed: list[str]
) -> None:
    if changelog is not None:
        (repo / "CHANGELOG.md").write_text(changelog)
    heading = f"Changes since {since}:" if since else "Changes:"
    assert notes(repo, tag) == "\n".join([heading, "", *commit_lines(repo, *listed)]) + "\n"


def test_a_fresh_services_changelog_has_only_unreleased_so_notes_list_commits(
    rendered: Render, repo: Path
) -> None:
    changelog = (rendered() / "CHANGELOG.md").read_text()
    assert [line for line in changelog.splitlines() if line.startswith("## ")] == ["## Unreleased"]
    (repo / "CHANGELOG.md").write_text(changelog)
    assert notes(repo, "v1.0.0") == "\n".join(["Changes:", "", *commit_lines(repo, "first")]) + "\n"
