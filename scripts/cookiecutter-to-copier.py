#!/usr/bin/env python3
"""Write .copier-answers.yml for a service generated with cookiecutter or cruft.

copier updates a project from the answers file it writes at generation: the template's
address (`_src_path`), the version the project was generated from (`_commit`) and the
answers. A service generated with cookiecutter has none, so `copier update` refuses it.
This script writes that file from what cookiecutter or cruft recorded:

- cruft: the project's own `.cruft.json` (template, checkout or commit, answers); used
  when the project has one and no `--replay` is given;
- cookiecutter: its replay file, `~/.cookiecutter_replay/<template name>.json` by default
  (answers, `_template`, and `_checkout` when the service was generated with `--checkout`).

    python scripts/cookiecutter-to-copier.py path/to/service \\
        --replay ~/.cookiecutter_replay/rust-service-template.json --vcs-ref v0.1.0

`--vcs-ref` names the template version the service was generated from (a tag); it is
needed when the record does not name one (cookiecutter without `--checkout`). Pass
`--src-path` to record a different template address (copier's forms: `gh:org/name`,
`https://...`, `git+file:///path`, a local path). Only the answers to questions the
template's copier.yml asks are written (copier.yml next to this script, when present).
Then commit the file and run `copier update --trust` (docs/maintaining.md).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import yaml

HEADER = "# Changes here will be overwritten by Copier; do not edit by hand.\n"
TEMPLATE_COPIER_YML = Path(__file__).resolve().parents[1] / "copier.yml"


class Problem(Exception):
    """One line telling the user what is missing."""


def copier_questions(copier_yml: Path) -> set[str] | None:
    """Questions copier stores in its answers file (not settings, not computed ones)."""
    if not copier_yml.is_file():
        return None
    config = yaml.safe_load(copier_yml.read_text()) or {}
    return {
        name
        for name, spec in config.items()
        if not name.startswith("_")
        and not (isinstance(spec, dict) and spec.get("when") in (False, "false"))
    }


def from_cruft(state_file: Path) -> tuple[dict[str, Any], str | None, str | None]:
    state = json.loads(state_file.read_text())
    context = state.get("context", {}).get("cookiecutter", {})
    return context, state.get("template"), state.get("checkout") or state.get("commit")


def from_replay(replay_file: Path) -> tuple[dict[str, Any], str | None, str | None]:
    context = json.loads(replay_file.read_text()).get("cookiecutter", {})
    return context, context.get("_template"), context.get("_checkout")


def answers_file_text(
    context: dict[str, Any], src_path: str, vcs_ref: str, questions: set[str] | None
) -> str:
    answers = {
        key: value
        for key, value in context.items()
        if not key.startswith("_") and (questions is None or key in questions)
    }
    record = {"_commit": vcs_ref, "_src_path": src_path, **answers}
    return HEADER + yaml.safe_dump(record, default_flow_style=False, allow_unicode=True)


def convert(args: argparse.Namespace) -> Path:
    project: Path = args.project
    target = project / args.answers_file
    if target.exists() and not args.force:
        raise Problem(f"{target} exists already (pass --force to replace it)")
    if args.replay:
        context, src_path, vcs_ref = from_replay(args.replay)
        source = str(args.replay)
    elif (project / ".cruft.json").is_file():
        context, src_path, vcs_ref = from_cruft(project / ".cruft.json")
        source = str(project / ".cruft.json")
    else:
        raise Problem(
            f"{project} has no .cruft.json: pass --replay with cookiecutter's replay file "
            "(~/.cookiecutter_replay/<template name>.json)"
        )
    if not context:
        raise Problem(f"{source} holds no cookiecutter answers")
    src_path = args.src_path or src_path
    vcs_ref = args.vcs_ref or vcs_ref
    if not src_path:
        raise Problem(f"{source} does not name the template: pass --src-path")
    if not vcs_ref:
        raise Problem(
            f"{source} does not name the template version the service was generated from: "
            "pass --vcs-ref (the template's tag at that time)"
        )
    questions = copier_questions(args.copier_yml)
    target.write_text(answers_file_text(context, src_path, vcs_ref, questions))
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Write .copier-answers.yml for a service generated with cookiecutter or cruft."
    )
    parser.add_argument("project", type=Path, nargs="?", default=Path("."))
    parser.add_argument("--replay", type=Path, help="cookiecutter's replay file for the service")
    parser.add_argument("--src-path", help="template address to record (default: as recorded)")
    parser.add_argument("--vcs-ref", help="template version the service was generated from")
    parser.add_argument("--answers-file", default=".copier-answers.yml")
    parser.add_argument(
        "--copier-yml",
        type=Path,
        default=TEMPLATE_COPIER_YML,
        help="the template's copier.yml, to keep only its questions (default: beside this script)",
    )
    parser.add_argument("--force", action="store_true", help="replace an existing answers file")
    args = parser.parse_args(argv)
    try:
        written = convert(args)
    except (Problem, OSError, ValueError) as problem:
        print(f"cookiecutter-to-copier: {problem}", file=sys.stderr)
        return 1
    print(f"wrote {written}; next, in {args.project}:")
    print(
        f"  git add {args.answers_file} && git commit -m 'Record the template answers for copier'"
    )
    print("  copier update --trust --defaults   # add --vcs-ref=TAG to pick the version")
    return 0


if __name__ == "__main__":
    sys.exit(main())
