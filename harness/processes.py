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


def http_request(method: str, port: int, path: str, timeout: float = 10) -> tuple[int, str]:
    """One request without a body on a new connection to the loopback port: (status,
    body). http.client sends `Content-Length: 0` with a bodiless POST."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path, headers={"Connection": "close"})
        response = conn.getresponse()
        return response.status, response.read().decode()
    finally:
        conn.close()


def http_get(port: int, path: str, timeout: float = 10) -> tuple[int, str]:
    return http_request("GET", port, path, timeout)


def http_post(port: int, path: str, timeout: float = 10) -> tuple[int, str]:
    return http_request("POST", port, path, timeout)


def refuses_connections(port: int) -> bool | None:
    """True when nothing listens on the loopback `port` (a probe for wait_until)."""
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except ConnectionRefusedError:
        return True
    return None


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


class GiveUp(Exception):
    """Raised by a wait_until probe when waiting longer cannot help (what it waits on died)."""


def wait_until(
    probe: Callable[[], T | None],
    timeout: float,
    what: str,
    interval: float = 0.1,
    details: Callable[[], str] | None = None,
) -> T:
    """Call `probe` until it returns something other than None (its exceptions count as
    "not yet", except GiveUp, which ends the wait at once); fail with `what` and the last
    error when `timeout` seconds pass. `details` (a log, say) is added to the failure."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None

    def failure(reason: str) -> AssertionError:
        more = f"\n{details()}" if details is not None else ""
        return AssertionError(f"{what}: {reason}{more}")

    while True:
        try:
            result = probe()
        except GiveUp as error:
            raise failure(str(error)) from None
        except Exception as error:
            last_error, result = error, None
        if result is not None:
            return result
        if time.monotonic() >= deadline:
            raise failure(
                f"not within {timeout:g} s" + (f" (last: {last_error!r})" if last_error else "")
            )
        time.sleep(interval)


def sample(
    probe: Callable[[], T], seconds: float, interval: float = 0.1, start: float | None = None
) -> list[tuple[float, T]]:
    """`probe()` every `interval` until `seconds` after `start` (a time.monotonic(); now by
    default): [(seconds since start, value)]. Its exceptions end the sampling."""
    start = time.monotonic() if start is None else start
    values = []
    while (elapsed := time.monotonic() - start) < seconds:
        values.append((elapsed, probe()))
        time.sleep(interval)
    return values
