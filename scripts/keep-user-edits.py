#!/usr/bin/env python3
"""Copier migration helper: keep a service's own edits when the template renames or removes a file.

`copier update` deletes every file the new template version no longer ships, edited or
not, and creates a renamed file fresh under its new name: the service's edits to the old
file vanish from the working tree without a word. A template release that renames or
removes a file adds an `after` migration that calls this script (docs/maintaining.md):

    _migrations:
      - version: v1.1.0
        when: "{{ _stage == 'after' }}"
        command: ["{{ _copier_python }}", "{{ _copier_conf.src_path }}/scripts/keep-user-edits.py",
                  "renamed", "tests/api.rs", "tests/http_api.rs"]

It compares the file as the service had it before the update (git HEAD: copier refuses to
update a dirty repository) with the file as the old template version rendered it for the
service's own answers (rendered again here, with tasks skipped). Only if they differ:

- `renamed OLD NEW`: merges the service's edits into NEW (three-way, `git merge-file`);
  overlapping changes leave conflict markers in NEW and a CONFLICT line on stderr.
- `removed PATH`: puts the service's version of PATH back and says so.

Runs with copier's own Python (`_copier_python`), so `copier` and `yaml` are importable.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any


def git(*args: str, check: bool = True) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(["git", *args], capture_output=True, check=check)


def committed(path: str) -> bytes | None:
    """The file as the service had it before the update, or None if it had none."""
    result = git("show", f"HEAD:./{path}", check=False)
    return result.stdout if result.returncode == 0 else None


def previous_answers(answers_file: str) -> dict[str, Any]:
    import yaml

    text = committed(answers_file)
    if text is None:
        sys.exit(f"keep-user-edits: {answers_file} is not committed; cannot tell the old version")
    return yaml.safe_load(text)


def pristine(path: str, answers_file: str) -> bytes | None:
    """PATH as the old template version rendered it for this service's answers."""
    import copier

    answers = previous_answers(answers_file)
    data = {k: v for k, v in answers.items() if not k.startswith("_")}
    with tempfile.TemporaryDirectory(prefix="keep-user-edits.") as tmp:
        copier.run_copy(
            answers["_src_path"],
            tmp,
            data=data,
            vcs_ref=answers["_commit"],
            defaults=True,
            quiet=True,
            skip_tasks=True,
            unsafe=True,
        )
        rendered = Path(tmp, path)
        return rendered.read_bytes() if rendered.is_file() else None


def changed_by_service(path: str, answers_file: str) -> bytes | None:
    """The service's version of PATH if it differs from what the template gave it."""
    mine = committed(path)
    if mine is None or mine == pristine(path, answers_file):
        return None
    return mine


def renamed(old: str, new: str, answers_file: str) -> int:
    base = pristine(old, answers_file)
    mine = committed(old)
    if mine is None or mine == base:
        return 0
    target = Path(new)
    if base is None or not target.is_file():
        # Nothing to merge with: the service's file simply moves.
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(mine)
        Path(old).unlink(missing_ok=True)
        print(f"keep-user-edits: moved your {old} to {new}", file=sys.stderr)
        return 0
    with tempfile.TemporaryDirectory(prefix="keep-user-edits.") as tmp:
        ours, common = Path(tmp, "ours"), Path(tmp, "base")
        ours.write_bytes(mine)
        common.write_bytes(base)
        conflicts = git(
            "merge-file",
            "-L",
            f"your {old}",
            "-L",
            f"template's {old} before updating",
            "-L",
            f"template's {new} after updating",
            str(ours),
            str(common),
            str(target),
            check=False,
        ).returncode
        if conflicts < 0 or conflicts > 127:
            sys.exit(f"keep-user-edits: git merge-file failed on {new}")
        target.write_bytes(ours.read_bytes())
    Path(old).unlink(missing_ok=True)
    if conflicts:
        print(
            f"keep-user-edits: CONFLICT: your edits of {old} overlap the template's {new}; "
            f"{conflicts} conflict(s) marked in {new}",
            file=sys.stderr,
        )
    else:
        print(f"keep-user-edits: merged your edits of {old} into {new}", file=sys.stderr)
    return 0


def removed(path: str, answers_file: str) -> int:
    mine = changed_by_service(path, answers_file)
    if mine is None:
        return 0
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(mine)
    print(
        f"keep-user-edits: kept {path}: the template no longer ships it, but you changed it",
        file=sys.stderr,
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--answers-file", default=".copier-answers.yml")
    sub = parser.add_subparsers(dest="action", required=True)
    ren = sub.add_parser("renamed", help="the template renamed OLD to NEW")
    ren.add_argument("old")
    ren.add_argument("new")
    rem = sub.add_parser("removed", help="the template no longer ships PATH")
    rem.add_argument("path")
    args = parser.parse_args(argv)
    if args.action == "renamed":
        return renamed(args.old, args.new, args.answers_file)
    return removed(args.path, args.answers_file)


if __name__ == "__main__":
    sys.exit(main())
