"""A RustSec advisory database of the tests' own, served by git daemon on loopback.

cargo-deny clones RustSec's database with the git CLI. A job given
`advisory_db_variables(url)` clones this one instead, through git's
`url.<base>.insteadOf` (environment config, git 2.31+): the job's script and deny.toml
stay as generated, and nothing leaves loopback.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from harness.git import init_repo
from harness.processes import free_port, require
from harness.service import Server

# cargo-deny's default database (its DEFAULT_URL), which insteadOf replaces.
RUSTSEC_DB = "https://github.com/RustSec/advisory-db"
# An id no real advisory has: RustSec numbers them by year.
FIXTURE_ADVISORY = "RUSTSEC-2099-0001"
ADVISORY = """```toml
[advisory]
id = "{id}"
package = "{crate}"
date = "2026-11-01"
url = "https://rustsec.invalid/{id}"
categories = ["memory-corruption"]

[versions]
patched = [">= 9999.0.0"]
```

# A fixture of the template's tests

Every released {crate} is affected: no advisory of this id exists.
"""


def write_advisory_db(root: Path, crate: str) -> Path:
    """A git repository at `root`, laid out as RustSec's: one advisory against every
    version of `crate` (a crate outside the service's graph makes a clean database)."""
    folder = root / "crates" / crate
    folder.mkdir(parents=True)
    (folder / f"{FIXTURE_ADVISORY}.md").write_text(
        ADVISORY.format(id=FIXTURE_ADVISORY, crate=crate)
    )
    return init_repo(root, "fixture advisory", branch="main")


@contextlib.contextmanager
def git_daemon(base: Path, timeout: float = 10) -> Iterator[str]:
    """`git daemon` exporting the repositories under `base`, read-only, on 127.0.0.1 until
    the block ends; yields its URL base, git://localhost:<port>/ (cargo-deny refuses a
    database URL without a domain name, so not an IP address)."""
    port = free_port()
    command = [require("git"), "daemon", "--export-all", "--reuseaddr", f"--base-path={base}",
               "--listen=127.0.0.1", f"--port={port}"]  # fmt: skip
    with Server(command, port) as server:
        server.wait_until_listening("git daemon", timeout)
        yield f"git://localhost:{port}/"


def advisory_db_variables(url: str) -> dict[str, str]:
    """Job variables that make git fetch `url` wherever RustSec's database is asked for."""
    return {
        "GIT_CONFIG_COUNT": "1",
        "GIT_CONFIG_KEY_0": f"url.{url}.insteadOf",
        "GIT_CONFIG_VALUE_0": RUSTSEC_DB,
    }
