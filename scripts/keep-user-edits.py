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
                  "--renamed", "tests/api.rs", "tests/http_api.rs", "--removed", ".dockerignore"]

It compares the file as the service had it before the update (git HEAD: copier refuses to
update a dirty repository) with the file as the old template version rendered it for the
service's own answers (rendered again here, once, with tasks skipped). Only if they differ:

- `--renamed OLD NEW`: merges the service's edits into NEW (three-way, `git merge-file`);
  overlapping changes leave conflict markers in NEW, mark NEW unmerged in git's index
  (as copier does for its own conflicts) and print a CONFLICT line.
- `--removed PATH`: puts the service's version of PATH back and says so.

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


def say(message: str) -> None:
    print(f"keep-user-edits: {message}", file=sys.stderr, flush=True)


def committed(path: str) -> bytes | None:
    """The file as the service had it before the update, or None if it had none."""
    result = git("show", f"HEAD:./{path}", check=False)
    return result.stdout if result.returncode == 0 else None


class OldVersion:
    """The old template version rendered once, with tasks skipped, for the service's answers."""

    def __init__(self, answers_file: str) -> None:
        self.answers_file = answers_file
        self._tmp: tempfile.TemporaryDirectory[str] | None = None

    def __enter__(self) -> OldVersion:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._tmp is not None:
            self._tmp.cleanup()

    def _render(self) -> Path:
        if self._tmp is None:
            import copier
            import yaml

            text = committed(self.answers_file)
            if text is None:
                sys.exit(f"keep-user-edits: {self.answers_file} is not committed")
            answers: dict[str, Any] = yaml.safe_load(text)
            self._tmp = tempfile.TemporaryDirectory(prefix="keep-user-edits.")
            copier.run_copy(
                answers["_src_path"],
                self._tmp.name,
                data={k: v for k, v in answers.items() if not k.startswith("_")},
                vcs_ref=answers["_commit"],
                defaults=True,
                quiet=True,
                skip_tasks=True,
                unsafe=True,
            )
        return Path(self._tmp.name)

    def file(self, path: str) -> bytes | None:
        rendered = self._render() / path
        return rendered.read_bytes() if rendered.is_file() else None


def mark_unmerged(path: str, ours: bytes, base: bytes, theirs: bytes) -> None:
    """Record the conflict in git's index as a merge would: `git status` shows `both
    modified` and a plain `git commit` refuses until the file is resolved and added."""
    entries = []
    for stage, content in ((1, base), (2, ours), (3, theirs)):
        sha = (
            subprocess.run(
                ["git", "hash-object", "-w", "--stdin"],
                input=content,
                capture_output=True,
                check=True,
            )
            .stdout.decode()
            .strip()
        )
        entries.append(f"100644 {sha} {stage}\t{path}")
    subprocess.run(
        ["git", "update-index", "--index-info"],
        input="\n".join(["0 " + "0" * 40 + f"\t{path}", *entries]).encode() + b"\n",
        check=True,
    )


def renamed(old: str, new: str, template: OldVersion) -> None:
    mine = committed(old)
    if mine is None:
        return
    base = template.file(old)
    if mine == base:
        return
    target = Path(new)
    if base is None or not target.is_file():
        # Nothing to merge with: the service's file simply moves.
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(mine)
        Path(old).unlink(missing_ok=True)
        say(f"moved your {old} to {new}")
        return
    target_before = target.read_bytes()
    with tempfile.TemporaryDirectory(prefix="keep-user-edits.") as tmp:
        ours, common = Path(tmp, "ours"), Path(tmp, "base")
        ours.write_bytes(mine)
        common.write_bytes(base)
        conflicts = git(
            "merge-file",
            "-L", f"your {old}",
            "-L", f"template's {old} before updating",
            "-L", f"template's {new} after updating",
            str(ours), str(common), str(target),
            check=False,
        ).returncode  # fmt: skip
        if conflicts < 0 or conflicts > 127:
            sys.exit(f"keep-user-edits: git merge-file failed on {new}")
        target.write_bytes(ours.read_bytes())
    Path(old).unlink(missing_ok=True)
    if conflicts:
        mark_unmerged(new, ours=mine, base=base, theirs=target_before)
        say(
            f"CONFLICT: your edits of {old} overlap the template's changes to {new}: "
            f"{conflicts} conflict(s) marked in {new}"
        )
    else:
        say(f"merged your edits of {old} into {new}")


def removed(path: str, template: OldVersion) -> None:
    mine = committed(path)
    if mine is None or mine == template.file(path):
        return
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(mine)
    say(f"kept {path}: the template no longer ships it, but you changed it")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Keep a service's edits when a template release renames or removes files."
    )
    parser.add_argument("--answers-file", default=".copier-answers.yml")
    parser.add_argument(
        "--renamed", nargs=2, action="append", default=[], metavar=("OLD", "NEW"),
        help="the release renamed OLD to NEW (repeatable)",
    )  # fmt: skip
    parser.add_argument(
        "--removed", action="append", default=[], metavar="PATH",
        help="the release no longer ships PATH (repeatable)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    if not (args.renamed or args.removed):
        parser.error("nothing to do: pass --renamed OLD NEW or --removed PATH")
    with OldVersion(args.answers_file) as template:
        for old, new in args.renamed:
            renamed(old, new, template)
        for path in args.removed:
            removed(path, template)
    return 0


if __name__ == "__main__":
    sys.exit(main())
