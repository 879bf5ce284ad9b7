"""A throwaway redis-server on loopback, the shared cache of the sccache redis backend."""

from __future__ import annotations

import contextlib
import socket
import subprocess
from collections.abc import Iterator

from harness.processes import free_port, require, wait_until


@contextlib.contextmanager
def redis_server(timeout: float = 10) -> Iterator[str]:
    """A redis-server on 127.0.0.1 (a free port, nothing saved to disk) until the block
    ends; yields its URL, redis://127.0.0.1:<port>."""
    server = require("redis-server")
    port = free_port()
    process = subprocess.Popen(
        [server, "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )

    def answers() -> bool:
        if process.poll() is not None:
            raise RuntimeError(f"redis-server exited with {process.returncode}")
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True

    try:
        wait_until(answers, timeout, f"redis-server on 127.0.0.1:{port}")
        yield f"redis://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=10)
