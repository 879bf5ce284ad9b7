#!/usr/bin/env python3
"""Rewrite the query metadata (.sqlx/) committed inside the template.

    .venv/bin/python -m maintainer.sqlx_metadata

Renders the service with database=postgres, starts a throwaway PostgreSQL
(harness/postgres.py), runs the generated `ci/sqlx-metadata.sh` there (the one source of
truth for how the metadata is made) and copies the .sqlx/ it wrote back into the
template. Run it after changing a query or a migration under `{{cookiecutter.slug}}/`;
tests/test_database.py checks the committed files with `ci/sqlx-metadata.sh --check`.

When the committed .sqlx/ no longer matches the queries and a query needs a new
migration, the script cannot build the binary that migrates (offline: no metadata for
the new query; online: no schema yet). This task then bootstraps once: applies
migrations/ with psql to a scratch database, lets sqlx's macros describe the queries
there, and runs the script again on a fresh database with that metadata in place.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from harness import TEMPLATE_DIR as ROOT
from harness.postgres import Postgres, postgres_server
from harness.render import default_answers, render_cookiecutter

TREE_SQLX = ROOT / "{{cookiecutter.slug}}" / ".sqlx"
SCRIPT = Path("ci") / "sqlx-metadata.sh"
POSTGRES_ONLY = "{%% if cookiecutter.database == 'postgres' %%}%s{%% endif %%}"


def cargo_env() -> dict[str, str]:
    """The environment for cargo: the tests' shared target directory when one is set."""
    env = dict(os.environ)
    if "TEMPLATE_TEST_CARGO_TARGET" in env:
        env["CARGO_TARGET_DIR"] = env["TEMPLATE_TEST_CARGO_TARGET"]
    return env


def run_script(project: Path, url: str) -> subprocess.CompletedProcess[str]:
    env = {**cargo_env(), "DATABASE_URL": url}
    print(f"$ DATABASE_URL=... {SCRIPT}", flush=True)
    return subprocess.run([str(project / SCRIPT)], cwd=project, env=env, text=True, check=False)


def bootstrap(project: Path, server: Postgres) -> None:
    """Metadata from a scratch database whose schema psql applied (no sqlx bookkeeping)."""
    server.create_database("bootstrap")
    for migration in sorted((project / "migrations").glob("*.sql")):
        server.psql(migration.read_text(), "bootstrap")
    out = project / ".sqlx"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir()
    env = {
        **cargo_env(),
        "DATABASE_URL": server.url_for("bootstrap"),
        "SQLX_OFFLINE": "false",
        "SQLX_OFFLINE_DIR": str(out),
    }
    subprocess.run(
        ["cargo", "clean", "--quiet", "-p", project.name], cwd=project, env=env, check=True
    )
    subprocess.run(
        ["cargo", "build", "--locked", "--quiet", "--all-targets"], cwd=project, env=env, check=True
    )


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="sqlx-metadata-") as tmp, postgres_server() as server:
        project = render_cookiecutter(Path(tmp) / "out", **default_answers(database="postgres"))
        if run_script(project, server.create_database("metadata")).returncode != 0:
            print("the script failed; bootstrapping from psql's schema, then again", flush=True)
            bootstrap(project, server)
            if run_script(project, server.create_database("metadata_again")).returncode != 0:
                return 1
        written = sorted((project / ".sqlx").glob("query-*.json"))
        shutil.rmtree(TREE_SQLX, ignore_errors=True)
        TREE_SQLX.mkdir()
        for path in written:
            # Named to render only with database=postgres (docs/layout.md, optional files).
            shutil.copy(path, TREE_SQLX / (POSTGRES_ONLY % path.name))
    print(f"wrote {TREE_SQLX.relative_to(ROOT)}/ ({len(written)} queries)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
