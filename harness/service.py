"""The generated service (and other servers) as a process on this machine.

Started bound to HOST:PORT or on a socket systemfd passes in, waited for until it answers,
measured (benchmarks/service_load.py) and stopped: SIGTERM to its whole process group,
SIGKILL when that is not enough. Used by tests/test_service.py and the benchmarks.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import threading
from pathlib import Path

from harness.processes import GiveUp, http_get, wait_until

# What the service logs when it serves on the socket systemfd passed in (src/lib.rs).
LISTENFD_LOG = "socket taken from listenfd"


def service_env(port: int | None = None, **variables: str) -> dict[str, str]:
    """This process's environment without systemfd's LISTEN_* variables, with JSON logs,
    HOST and PORT for loopback when `port` is given, and `variables`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LISTEN_")}
    env["LOG_FORMAT"] = "json"
    if port is not None:
        env.update(HOST="127.0.0.1", PORT=str(port))
    env.update(variables)
    return env


def systemfd_command(
    systemfd: str, port: int, *command: str, backlog: int | None = None
) -> list[str]:
    """`command` under systemfd, which holds a listening socket on the loopback `port`."""
    backlog_option = [] if backlog is None else ["--backlog", str(backlog)]
    return [systemfd, "--no-pid", *backlog_option, "-s", f"http::127.0.0.1:{port}", "--", *command]


class Server:
    """A server command in its own process group, listening on `port`.

    Its output goes to `log`; without one, into a pipe that a thread drains (as a log
    collector would), counting the bytes in `drained`. Used as a context manager, it is
    stopped on the way out.
    """

    def __init__(
        self,
        cmd: list[str],
        port: int,
        log: Path | None = None,
        cwd: Path | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        self.port = port
        self.log = log
        self.drained = 0
        self._reader: threading.Thread | None = None
        options = {"cwd": cwd, "env": env, "stderr": subprocess.STDOUT, "start_new_session": True}
        if log is None:
            self.popen = subprocess.Popen(cmd, stdout=subprocess.PIPE, **options)
            self._reader = threading.Thread(target=self._drain, daemon=True)
            self._reader.start()
        else:
            with log.open("wb") as out:
                self.popen = subprocess.Popen(cmd, stdout=out, **options)

    def _drain(self) -> None:
        assert self.popen.stdout is not None
        while chunk := os.read(self.popen.stdout.fileno(), 1 << 20):
            self.drained += len(chunk)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def poll(self) -> int | None:
        return self.popen.poll()

    def wait(self, timeout: float | None = None) -> int:
        return self.popen.wait(timeout=timeout)

    def send_signal(self, sig: int) -> None:
        self.popen.send_signal(sig)

    def output(self) -> str:
        """What it logged so far (nothing when its output goes to a pipe)."""
        return self.log.read_text(errors="replace") if self.log else ""

    def wait_until_answering(self, path: str = "/health", timeout: float = 30) -> None:
        """GET `path` answers 200; fails at once when the process exits first."""

        def answering() -> bool | None:
            if self.poll() is not None:
                raise GiveUp(f"exited with {self.popen.returncode} before answering")
            return True if http_get(self.port, path, timeout=2)[0] == 200 else None

        wait_until(
            answering, timeout, f"an answer on 127.0.0.1:{self.port}{path}", details=self.output
        )

    def wait_until_listening(self, what: str, timeout: float = 10) -> None:
        """Something accepts connections on 127.0.0.1:port; fails at once when the process
        exits first. `what` names the server in the failure."""

        def listening() -> bool:
            if self.poll() is not None:
                raise GiveUp(f"{what} exited with {self.popen.returncode}")
            socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
            return True

        wait_until(listening, timeout, f"{what} on 127.0.0.1:{self.port}", details=self.output)

    def stop(self, timeout: float = 10) -> None:
        """SIGTERM to the process group, then SIGKILL if it has not exited within `timeout`."""
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(self.popen.pid, sig)
            except ProcessLookupError:
                break
            try:
                self.popen.wait(timeout=timeout)
                break
            except subprocess.TimeoutExpired:
                continue
        if self._reader is not None:
            self._reader.join(timeout=10)

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------ measured (Linux /proc)
    def pids(self) -> list[int]:
        """The process and its children (a pre-forking server's workers)."""
        children = Path(f"/proc/{self.pid}/task/{self.pid}/children")
        return [self.pid, *(int(p) for p in children.read_text().split())]

    def cpu_seconds(self) -> float:
        """User and system CPU time of its processes (clock ticks of 1/100 s)."""
        total = 0
        for pid in self.pids():
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        return total / 100

    def peak_rss_mb(self) -> float:
        """Peak resident memory summed over its processes."""
        total_kb = 0
        for pid in self.pids():
            status = Path(f"/proc/{pid}/status").read_text()
            match = re.search(r"^VmHWM:\s+(\d+) kB", status, re.M)
            assert match, f"/proc/{pid}/status has no VmHWM"
            total_kb += int(match.group(1))
        return total_kb / 1024
