#!/usr/bin/env python3
"""Render every combination of the choice answers with both engines and print a manifest.

For refactors that must not change what users get: run it before and after, and diff.

    .venv/bin/python -m maintainer.answer_matrix > before.txt
    ... change the template ...
    .venv/bin/python -m maintainer.answer_matrix > after.txt
    diff before.txt after.txt     # empty: every generated file is byte-identical

A new question: `--only database=none` renders the combinations with its default answer
and leaves it out of each line, so they compare with a manifest made before it existed.

Each line is `<engine> <answers> <path> <sha256 of the bytes> <mode>`; copier's answers
file is left out (it records the template's commit, which a refactor changes). It uses
the engines directly, not the harness, so that a harness refactor cannot change it.
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import sys
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path

TEMPLATE_DIR = Path(__file__).resolve().parents[1]
ENGINES = ("cookiecutter", "copier")


def choice_questions() -> dict[str, list[str]]:
    data = json.loads((TEMPLATE_DIR / "cookiecutter.json").read_text())
    return {key: value for key, value in data.items() if isinstance(value, list)
            and not key.startswith("_")}  # fmt: skip


def answer_matrix(fixed: dict[str, str] | None = None) -> Iterator[dict[str, str]]:
    questions = choice_questions()
    questions.pop("verify")  # verification runs nothing into the output; keep it off
    for key, value in (fixed or {}).items():
        if value not in questions.get(key, []):
            sys.exit(f"--only {key}={value}: not a choice of a choice question")
        questions[key] = [value]
    for values in itertools.product(*questions.values()):
        yield {**dict(zip(questions, values, strict=True)), "verify": "none"}


def render(engine: str, answers: dict[str, str], workdir: Path) -> Path:
    if engine == "cookiecutter":
        from cookiecutter.main import cookiecutter

        config = workdir / "cookiecutter.yaml"
        config.write_text(f"cookiecutters_dir: {workdir}/cc\nreplay_dir: {workdir}/replay\n")
        project = cookiecutter(str(TEMPLATE_DIR), no_input=True, extra_context=answers,
                               output_dir=str(workdir / "out"),
                               config_file=str(config))  # fmt: skip
        return Path(project)
    import copier

    destination = workdir / "out"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a dirty template is what a refactor renders
        copier.run_copy(str(TEMPLATE_DIR), str(destination), data=answers, defaults=True,
                        unsafe=True, quiet=True, vcs_ref="HEAD")  # fmt: skip
    return destination


def manifest(project: Path) -> Iterator[tuple[str, str, str]]:
    for path in sorted(project.rglob("*")):
        relative = path.relative_to(project).as_posix()
        if relative == ".copier-answers.yml" or (path.is_dir() and any(path.iterdir())):
            continue
        digest = "dir" if path.is_dir() else hashlib.sha256(path.read_bytes()).hexdigest()
        yield relative, digest, oct(path.stat().st_mode & 0o777)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engine", choices=ENGINES, action="append",
                        help="only this engine (repeatable); default both")  # fmt: skip
    parser.add_argument("--only", action="append", default=[], metavar="QUESTION=CHOICE",
                        help="fix one answer (repeatable), e.g. to compare the combinations "
                        "a new question's default must leave unchanged")  # fmt: skip
    args = parser.parse_args()
    engines = args.engine or ENGINES
    fixed = dict(item.split("=", 1) for item in args.only)
    for engine, answers in itertools.product(engines, list(answer_matrix(fixed))):
        label = ",".join(f"{key}={value}" for key, value in answers.items()
                         if key != "verify" and key not in fixed)  # fmt: skip
        with tempfile.TemporaryDirectory(prefix="answer-matrix-") as tmp:
            project = render(engine, answers, Path(tmp))
            for relative, digest, mode in manifest(project):
                print(engine, label, relative, digest, mode)
        sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
