"""Validate the answers before cookiecutter writes anything.

Each rule is a function that returns an error line or None. copier.yml's
`validator:` entries state the same rules for copier; tests/test_questions.py
feeds both engines the same inputs and asserts the same verdicts and messages.
"""

from __future__ import annotations

import json
import re
import sys

# Rendered by the engine; tojson escapes quotes, so any answer parses safely.
RENDERED_ANSWERS = r"""{{ cookiecutter | tojson }}"""

SLUG_PATTERN = re.compile(r"^[a-z](?:[a-z0-9]|-(?=[a-z0-9])){1,39}$")
RUST_VERSION_PATTERN = re.compile(r"^1[.][0-9]+([.][0-9]+)?$")
# actix-web 4's minimum supported Rust version (its rust-version field).
MIN_RUST_MINOR = 89
# Rust keywords (strict, reserved, 2024 edition), and names cargo refuses or
# reserves: the standard library crates, its artifact folders, Windows devices.
RESERVED_CRATE_NAMES = frozenset(
    """
    as async await break const continue crate dyn else enum extern false fn for if
    impl in let loop match mod move mut pub ref return self static struct super trait
    true type unsafe use where while abstract become box do final gen macro override
    priv try typeof unsized virtual yield std core alloc proc_macro test build deps
    examples incremental con prn aux nul com1 com2 com3 com4 com5 com6 com7 com8 com9
    lpt1 lpt2 lpt3 lpt4 lpt5 lpt6 lpt7 lpt8 lpt9
    """.split()
)


def one_line_text(field: str, value: str) -> str | None:
    if not value.strip() or any(c in value for c in '"\\\n'):
        return (
            f"{field} '{value}' is invalid: must be one non-empty line "
            "without double quotes or backslashes"
        )
    return None


def check_slug(value: str) -> str | None:
    if not SLUG_PATTERN.match(value):
        return (
            f"slug '{value}' is invalid: use 2-40 lowercase letters, digits and "
            "single hyphens, starting with a letter and ending with a letter or digit"
        )
    if value.replace("-", "_") in RESERVED_CRATE_NAMES:
        return f"slug '{value}' is invalid: it is a Rust keyword or a name cargo reserves"
    return None


def check_port(value: str) -> str | None:
    if not value.isdigit() or not 1024 <= int(value) <= 65535:
        return f"port '{value}' is invalid: must be a whole number from 1024 to 65535"
    return None


def check_rust_version(value: str) -> str | None:
    if not RUST_VERSION_PATTERN.match(value) or int(value.split(".")[1]) < MIN_RUST_MINOR:
        return (
            f"rust_version '{value}' is invalid: must look like 1.95 or 1.95.0 "
            f"and be at least 1.{MIN_RUST_MINOR} (actix-web's minimum)"
        )
    return None


def errors(answers: dict[str, str]) -> list[str]:
    found = [
        one_line_text("project_name", answers["project_name"]),
        check_slug(answers["slug"]),
        one_line_text("description", answers["description"]),
        check_port(str(answers["port"])),
        check_rust_version(answers["rust_version"]),
    ]
    return [error for error in found if error]


def main() -> int:
    problems = errors(json.loads(RENDERED_ANSWERS))
    for problem in problems:
        print(f"ERROR: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
