"""This machine's Debian: the mirror its apt already uses (never a hard-coded host).

`python -m harness.debian` prints the mirror for shell scripts (harness/prerequisites).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

APT_SOURCES = [Path("/etc/apt/sources.list"), Path("/etc/apt/sources.list.d")]


def debian_mirror() -> str | None:
    """The first Debian archive URI of the apt sources (one-line or deb822 format)."""
    files: list[Path] = []
    for source in APT_SOURCES:
        files += sorted(source.glob("*")) if source.is_dir() else [source]
    for file in files:
        if not file.is_file():
            continue
        for uri in re.findall(r"^\s*(?:URIs:|deb)\s+(\S+)", file.read_text(), re.MULTILINE):
            if re.search(r"/debian/?$", uri):
                return uri.rstrip("/")
    return None


if __name__ == "__main__":
    mirror = debian_mirror()
    if mirror is None:
        sys.exit("harness.debian: no Debian mirror found in the apt sources")
    print(mirror)
