"""Running commands and talking to what they start: tools, subprocesses, HTTP on loopback."""

from __future__ import annotations

import http.client
import shutil
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import pytest

from harness import IN_CI

T = TypeVar("T")


def require(tool: str) -> str:
    """Path of a prerequisite; a missing one fails under CI=true and skips elsewhere."""
    path = shutil.which(tool)
    if path:
        return path
    message = f"prerequisite '{tool}' is not installed (run harness/install-prerequisites.sh)"
    if IN_CI:
        pytest.fail(message)
    pytest.skip(message)


def http_get(port: int, path: str, timeout: float = 10) -> tuple[int, str]:
    """One GET on a new connection to the loopback port: (status, body)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path, headers={"Connection": "close"})
        response = conn.getresponse()
        return response.status, response.read().decode()
    finally:
        conn.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def run(
    cmd: list[str],
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
    timeout: float = 1800,
    check: bool = True,
) -> subprocess.CompletedProcess[str]:
    """Run a command, keeping its output for the assertion message."""
    result = subprocess.run(
        cmd, cwd=cwd, env=env, text=True, capture_output=True, timeout=timeout, check=False
    )
    if check and result.returncode != 0:
        raise AssertionError(
            f"{' '.join(cmd)} exited {result.returncode}\n--- stdout\n{result.stdout[-4000:]}"
            f"\n--- stderr\n{result.stderr[-4000:]}"
        )
    return result


def wait_until(
    probe: Callable[[], T | None], timeout: float, what: str, interval: float = 0.1
) -> T:
    """Call `probe` until it returns something other than None (its exceptions count as
    "not yet"); fail with `what` and the last error when `timeout` seconds pass."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while True:
        try:
            result = probe()
        except Exception as error:
            last_error, result = error, None
        if result is not None:
            return result
        if time.monotonic() >= deadline:
            raise AssertionError(
                f"{what}: not within {timeout:g} s"
                + (f" (last: {last_error!r})" if last_error else "")
            )
        time.sleep(interval)
