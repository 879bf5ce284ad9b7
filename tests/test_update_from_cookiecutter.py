"""From cookiecutter or cruft to copier: scripts/cookiecutter-to-copier.py writes the
.copier-answers.yml copier would have written, and the service then updates with copier
from v1.0.0 to v1.1.0 of the template repository (tests/conftest.py `template_repo`)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from harness import TEMPLATE_DIR
from harness.git import commit_all, init_repo
from harness.processes import run
from harness.releases import NEW_FILE, V_A, V_B, assert_template_changes_arrived, copier_url
from harness.render import cookiecutter_config, default_answers
from harness.update import (
    assert_team_edits_survived,
    copier_update,
    edit_as_team,
    generate_with_copier,
    generate_with_cruft,
    read,
    stray_rejects,
    unmerged,
)

pytestmark = [pytest.mark.update, pytest.mark.usefixtures("isolated_update_tools")]

CONVERTER = TEMPLATE_DIR / "scripts" / "cookiecutter-to-copier.py"


def convert(project: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return run([sys.executable, str(CONVERTER), str(project), *args], check=check)


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
    init_repo(project, f"Generated with cookiecutter from the template {V_A}")
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


def test_the_converter_refuses_without_a_record_or_a_version(tmp_path: Path) -> None:
    bare = tmp_path / "bare"
    bare.mkdir()
    result = convert(bare, check=False)
    assert result.returncode == 1 and "--replay" in result.stderr
    replay = tmp_path / "replay.json"
    replay.write_text(json.dumps({"cookiecutter": {**default_answers(), "_template": "x"}}))
    result = convert(bare, "--replay", str(replay), check=False)
    assert result.returncode == 1 and "--vcs-ref" in result.stderr
    assert not (bare / ".copier-answers.yml").exists()
