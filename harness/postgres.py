"""A throwaway PostgreSQL server from Debian's packages, on loopback, in a temporary folder.

The generated service's `database=postgres` answer is tested against it: `cargo test`
(sqlx gives each test its own database), the failure behaviour (stopped and restarted
under a running service), the query-metadata check and the load benchmark. initdb
refuses to run as root, so as root the server runs as Debian's `postgres` user.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from harness.processes import free_port, require, wait_until

USER = "postgres"
PASSWORD = "postgres"  # loopback only, a throwaway cluster


def postgres_bin_dir() -> Path:
    """The newest of Debian's /usr/lib/postgresql/<version>/bin (the package puts only
    psql on PATH), else the folder of an `initdb` on PATH; fails under CI=true."""
    found = glob.glob("/usr/lib/postgresql/*/bin/initdb")
    found.sort(key=lambda path: int(Path(path).parts[-3]) if Path(path).parts[-3].isdigit() else 0)
    return Path(found[-1] if found else require("initdb")).resolve().parent


def _as_server_user() -> list[str]:
    """The prefix that runs a command as the server's owner: `postgres` when we are root."""
    if os.geteuid() != 0:
        return []
    pwd.getpwnam(USER)  # KeyError: the postgresql package creates this user
    return [require("runuser"), "-u", USER, "--"]


@dataclass
class Postgres:
    """A running cluster: `url` is the superuser's URL of the `postgres` database."""

    data_dir: Path
    port: int
    bin_dir: Path

    @property
    def url(self) -> str:
        return self.url_for("postgres")

    def url_for(self, database: str) -> str:
        return f"postgres://{USER}:{PASSWORD}@127.0.0.1:{self.port}/{database}"

    def _ctl(self, *args: str) -> None:
        subprocess.run(
            [*_as_server_user(), str(self.bin_dir / "pg_ctl"), "-D", str(self.data_dir),
             "-w", "-t", "30", *args],
            check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )  # fmt: skip

    def start(self) -> None:
        log = self.data_dir / "server.log"
        self._ctl("-l", str(log), "-o", f"-p {self.port} -k {self.data_dir}", "start")
        wait_until(self.accepts_connections, 30, f"PostgreSQL on 127.0.0.1:{self.port}")

    def stop(self, mode: str = "fast") -> None:
        self._ctl("-m", mode, "stop")

    def accepts_connections(self) -> bool:
        result = subprocess.run(
            [str(self.bin_dir / "pg_isready"), "-q", "-h", "127.0.0.1", "-p", str(self.port)],
            check=False,
        )
        return result.returncode == 0

    def psql(self, sql: str, database: str = "postgres") -> str:
        """Runs `sql`; returns psql's unaligned, tuples-only output."""
        result = subprocess.run(
            [str(self.bin_dir / "psql"), "-X", "-At", "-v", "ON_ERROR_STOP=1",
             self.url_for(database), "-c", sql],
            check=True, capture_output=True, text=True,
        )  # fmt: skip
        return result.stdout.strip()

    def create_database(self, name: str) -> str:
        """A new empty database; returns its URL."""
        self.psql(f'CREATE DATABASE "{name}"')
        return self.url_for(name)


@contextlib.contextmanager
def postgres_server() -> Iterator[Postgres]:
    """A fresh cluster on 127.0.0.1 (a free port, password authentication) until the
    block ends; then stopped and its folder removed."""
    bin_dir = postgres_bin_dir()
    root = Path(tempfile.mkdtemp(prefix="template-postgres-"))
    data_dir = root / "data"
    password_file = root / "password"
    password_file.write_text(PASSWORD + "\n")
    owner = _as_server_user()
    if owner:
        shutil.chown(root, USER)
        shutil.chown(password_file, USER)
    subprocess.run(
        [*owner, str(bin_dir / "initdb"), "-D", str(data_dir), "-U", USER,
         f"--pwfile={password_file}", "--auth=scram-sha-256", "--encoding=UTF8",
         "--locale=C", "--no-sync"],
        check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    # Loopback only; durability off: a throwaway cluster for tests and benchmarks.
    with (data_dir / "postgresql.conf").open("a") as conf:
        conf.write("listen_addresses = '127.0.0.1'\nfsync = off\nmax_connections = 300\n")
    server = Postgres(data_dir=data_dir, port=free_port(), bin_dir=bin_dir)
    try:
        server.start()
        yield server
    finally:
        with contextlib.suppress(subprocess.CalledProcessError):
            server.stop("immediate")
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    # A server for a manual session: prints its URL and runs until Ctrl-C.
    import signal

    with postgres_server() as pg:
        print(pg.url, flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            signal.pause()
