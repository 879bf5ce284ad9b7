#!/usr/bin/env python3
"""Write the slug's derived rules into the files that state them.

    .venv/bin/python -m maintainer.slug_rules           # rewrite what is out of date
    .venv/bin/python -m maintainer.slug_rules --check   # exit 1 if anything is

Two facts have one source each and are copied from there by this script:
- the transliteration table below: the default slug expression both engines derive from
  project_name (only Jinja built-ins: the tree is shared, and users install nothing
  extra), written into cookiecutter.json and copier.yml;
- the names a slug may not take: the hook's RESERVED_CRATE_NAMES (Rust keywords and
  names cargo refuses; edited by hand) plus every crate of the template's Cargo.lock
  files, one per `database` answer (maintainer/refresh_cargo_lock.py runs this script
  after writing them): a slug named like a dependency breaks the build. Written
  into the hook's DEPENDENCY_CRATE_NAMES, copier.yml's slug validator and the default
  expression in both question files.
tests/test_slug.py runs `--check`; tests/test_questions.py checks the lists agree.

The rule: lowercase; accented letters to ASCII by the table; every run of other
characters becomes one hyphen; no hyphen at either end; cut to 40 characters
without a trailing hyphen. When the result is not a valid slug, copier's
interactive prompt offers no default (copier validates a default before it shows
the prompt, and would stop with a traceback), so the user types one; everywhere
else the invalid result reaches the slug rule and its one-line error.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import re
import sys
import unicodedata
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
COOKIECUTTER_JSON = ROOT / "cookiecutter.json"
COPIER_YML = ROOT / "copier.yml"
HOOK = ROOT / "hooks" / "pre_gen_project.py"
TREE = ROOT / "{{cookiecutter.slug}}"
MAX_LENGTH = 40
LETTERS = "abcdefghijklmnopqrstuvwxyz"
DIGITS = "0123456789"

# ASCII spelling -> the lowercase letters that become it. Latin-1 and Latin
# Extended-A as the main European languages use them (German, French, Spanish,
# Portuguese, Italian, Nordic, Polish, Czech, Slovak, Hungarian, Turkish,
# Romanian, Baltic, Croatian). The name is lowercased first, so only lowercase
# letters appear here; U+0307 is the dot that 'İ'.lower() leaves behind.
TRANSLITERATION: dict[str, str] = {
    "a": "àáâãäåāăą",
    "ae": "æ",
    "c": "çćĉċč",
    "d": "ďđð",
    "e": "èéêëēĕėęě",
    "g": "ĝğġģ",
    "h": "ĥħ",
    "i": "ìíîïĩīĭįı",
    "ij": "ĳ",
    "j": "ĵ",
    "k": "ķĸ",
    "l": "ĺļľŀł",
    "n": "ñńņňŉŋ",
    "o": "òóôõöøōŏő",
    "oe": "œ",
    "r": "ŕŗř",
    "s": "śŝşšșſ",
    "ss": "ß",
    "t": "ţťŧț",
    "th": "þ",
    "u": "ùúûüũūŭůűų",
    "w": "ŵ",
    "y": "ýÿŷ",
    "z": "źżž",
    "": "\u0307",
}

GENERATED_NOTE = (
    "# Generated, as is the validator's name list, by maintainer/slug_rules.py (run it)."
)


def table() -> dict[str, str]:
    mapping: dict[str, str] = {}
    for ascii_text, letters in TRANSLITERATION.items():
        for letter in letters:
            assert letter not in mapping, f"{letter!r} is listed twice"
            assert letter == letter.lower(), f"{letter!r} is not lowercase"
            mapping[letter] = ascii_text
    return dict(sorted(mapping.items()))


def dependency_crate_names() -> list[str]:
    """Every crate in the template's locks but the service's own, as a crate name."""
    # One per `database` answer: `{% if cookiecutter.database == '...' %}Cargo.lock{% endif %}`.
    locks = sorted(TREE.glob("*Cargo.lock*"))
    assert len(locks) == 2, f"expected a lock per database answer, found {locks}"
    names = {
        name
        for lock in locks
        for name in re.findall(r'^name = "([^"{]+)"$', lock.read_text(), re.MULTILINE)
    }
    return sorted({name.replace("-", "_") for name in names})


def keyword_and_cargo_names() -> list[str]:
    """The hook's hand-written RESERVED_CRATE_NAMES."""
    spec = importlib.util.spec_from_file_location("slug_rules_hook", HOOK)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return sorted(module.RESERVED_CRATE_NAMES)


def reserved_names() -> list[str]:
    """Every name the slug rule refuses (as a crate name: hyphens as underscores)."""
    return sorted(set(keyword_and_cargo_names()) | set(dependency_crate_names()))


def quoted(text: str) -> str:
    """A Jinja string literal; combining marks spelled as escapes, to stay visible."""
    escaped = text.replace("\\", "\\\\").replace("'", "\\'")
    spelled = (f"\\u{ord(c):04x}" if unicodedata.category(c)[0] == "M" else c for c in escaped)
    return "'" + "".join(spelled) + "'"


def expression(name: str) -> str:
    """The default for `slug`, reading the project name from `name`.

    Every tag trims the whitespace around it, so the single spaces between tags
    (where copier.yml's folded lines join) render as nothing.
    """
    pairs = ", ".join(f"{quoted(k)}: {quoted(v)}" for k, v in table().items())
    reserved = ", ".join(quoted(n) for n in reserved_names())
    alnum = quoted(LETTERS + DIGITS)
    valid = (
        f"s|length > 1 and s[:1] in {quoted(LETTERS)} and s|replace('-', '_') not in [{reserved}]"
    )
    return " ".join(
        [
            "{%- set ns = namespace(slug='', gap=false) -%}",
            f"{{%- set table = {{{pairs}}} -%}}",
            f"{{%- for c in {name}|lower -%}}",
            f"{{%- set t = table[c] if c in table else (c if c in {alnum} else '-') -%}}",
            "{%- if t == '-' -%} {%- set ns.gap = ns.slug != '' -%}",
            "{%- elif t -%}",
            "{%- set ns.slug = ns.slug ~ ('-' if ns.gap else '') ~ t -%}",
            "{%- set ns.gap = false -%}",
            "{%- endif -%} {%- endfor -%}",
            f"{{%- set s = ns.slug[:{MAX_LENGTH}] -%}}",
            "{%- set s = s[:-1] if s[-1:] == '-' else s -%}",
            # copier only: no default at its interactive prompt when this one is invalid.
            "{%- if _copier_conf is defined and not _copier_conf.defaults",
            f"and not ({valid}) -%}} {{{{- UNSET -}}}}",
            "{%- else -%} {{- s -}} {%- endif -%}",
        ]
    )


def folded(text: str, indent: str = "    ", width: int = 96) -> str:
    """A YAML `>-` block whose lines fold back into exactly `text`."""
    lines: list[str] = []
    line = ""
    for word in text.split(" "):
        assert word, "the expression must not hold two spaces in a row"
        if line and len(indent) + len(line) + 1 + len(word) > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}" if line else word
    lines.append(line)
    return ">-\n" + "\n".join(indent + each for each in lines)


def rendered_cookiecutter_json(current: str) -> str:
    line = '  "slug": ' + json.dumps(expression("cookiecutter.project_name"), ensure_ascii=False)
    new, count = re.subn(r'^  "slug": .*,$', lambda _: line + ",", current, flags=re.M)
    assert count == 1, 'cookiecutter.json needs exactly one `  "slug": ...,` line'
    return new


def rendered_copier_yml(current: str) -> str:
    block = f"  {GENERATED_NOTE}\n  default: {folded(expression('project_name'))}\n"
    pattern = re.compile(
        r"(^slug:\n(?:  (?!default:|validator:|# Generated).*\n)*)"
        r"(?:  # Generated.*\n)?  default: .*\n(?:    .*\n)*",
        re.M,
    )
    new, count = pattern.subn(lambda m: m.group(1) + block, current)
    assert count == 1, "copier.yml's slug question needs one `default:` entry"
    loaded = yaml.safe_load(new)["slug"]["default"]
    assert loaded == expression("project_name"), "copier.yml's folded default does not round-trip"
    return new


def wrapped(words: list[str], indent: str, width: int = 88) -> str:
    """Words joined by single spaces, broken into lines of at most `width` characters."""
    return folded(" ".join(words), indent, width).removeprefix(">-\n")


def rendered_hook(current: str) -> str:
    names = wrapped(dependency_crate_names(), indent="    ")
    pattern = re.compile(
        r'(^DEPENDENCY_CRATE_NAMES = frozenset\(\n    """\n).*?(\n    """)', re.S | re.M
    )
    new, count = pattern.subn(lambda m: m.group(1) + names + m.group(2), current)
    assert count == 1, "the hook needs one DEPENDENCY_CRATE_NAMES = frozenset(...) block"
    return new


def rendered_copier_validator(current: str) -> str:
    names = wrapped([quoted(name) + "," for name in reserved_names()], indent="    ", width=96)
    pattern = re.compile(r"(\{% elif slug\|replace\('-', '_'\) in \[\n).*?(\] ?\n    %\})", re.S)
    new, count = pattern.subn(lambda m: m.group(1) + names.rstrip(",") + m.group(2), current)
    assert count == 1, "copier.yml's slug validator needs one `in [...]` list"
    return new


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if a file is out of date")
    args = parser.parse_args(argv)
    stale = []
    for path, renderers in (
        (COOKIECUTTER_JSON, [rendered_cookiecutter_json]),
        (COPIER_YML, [rendered_copier_yml, rendered_copier_validator]),
        (HOOK, [rendered_hook]),
    ):
        current = path.read_text(encoding="utf-8")
        wanted = current
        for render in renderers:
            wanted = render(wanted)
        if wanted != current:
            stale.append(path.name)
            if not args.check:
                path.write_text(wanted, encoding="utf-8")
    if args.check and stale:
        print(
            f"out of date: {', '.join(stale)}; run .venv/bin/python -m maintainer.slug_rules",
            file=sys.stderr,
        )
        return 1
    for name in stale:
        print(f"wrote the slug rules into {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
