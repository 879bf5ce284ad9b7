"""git for the tests: a fixed identity, no user or system config, repositories set up in
one call (a working tree with its first commit, optionally pushed to a bare origin)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from harness.processes import run

# The identity and isolation every repository of the suite uses; $HOME's config is never read.
GIT_ENV = {
    "GIT_AUTHOR_NAME": "Template Tests",
    "GIT_AUTHOR_EMAIL": "tests@localhost",
    "GIT_COMMITTER_NAME": "Template Tests",
    "GIT_COMMITTER_EMAIL": "tests@localhost",
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_CONFIG_GLOBAL": os.devnull,
}


def git_env(env: dict[str, str] | None = None) -> dict[str, str]:
    return {**(env if env is not None else os.environ), **GIT_ENV}


def git(repo: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return run(["git", *args], cwd=repo, env=git_env(), check=check)


def commit_all(repo: Path, message: str) -> None:
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", message)


def init_repo(repo: Path, message: str = "generated", branch: str = "main") -> Path:
    """`repo` (an existing folder) as a git repository whose first commit holds everything."""
    git(repo, "init", "-q", "-b", branch)
    commit_all(repo, message)
    return repo


def push_to_bare_origin(repo: Path, origin: Path, branch: str = "main") -> Path:
    """A bare repository at `origin`, `repo`'s branch pushed there as origin's HEAD."""
    run(["git", "init", "-q", "--bare", str(origin)], env=git_env())
    git(repo, "remote", "add", "origin", str(origin))
    git(repo, "push", "-q", "origin", branch)
    git(repo, "remote", "set-head", "origin", branch)
    return origin
