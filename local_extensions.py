"""cookiecutter only: check the answers before cookiecutter creates any folder.

cookiecutter creates the project folder, with every missing parent (the output
folder, or `a/` for a slug such as `a/b`), before it runs hooks/pre_gen_project.py,
and on failure removes only the project folder. cookiecutter.json names this
module in `_extensions` and renders `__answers_checked` through its filter once
every answer is known, so a bad answer stops the run before anything is written.
The rules and messages are the hook's (imported from it), which still runs as a
second check; copier checks the same rules with copier.yml's `validator:`s.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Any

from cookiecutter.exceptions import FailedHookException
from jinja2 import Environment
from jinja2.ext import Extension


def _load_rules() -> Any:
    spec = importlib.util.spec_from_file_location(
        "rust_service_template_rules", Path(__file__).parent / "hooks" / "pre_gen_project.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# Loaded once, when cookiecutter imports this module from the template folder.
RULES = _load_rules()


def check_answers(answers: dict[str, Any]) -> str:
    problems = RULES.errors({k: str(v) for k, v in answers.items()})
    for problem in problems:
        print(f"ERROR: {problem}", file=sys.stderr)
    if problems:
        raise FailedHookException("Stopping before generation: the answers above are invalid")
    return ""


class CheckAnswers(Extension):
    def __init__(self, environment: Environment) -> None:
        super().__init__(environment)
        environment.filters["check_answers"] = check_answers
