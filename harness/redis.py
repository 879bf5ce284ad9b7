"""A throwaway redis-server on loopback, the shared cache of the sccache redis backend."""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterator

from harness.processes import GiveUp, free_port, require, wait_until
from harness.service import Server


@contextlib.contextmanager
def redis_server(timeout: float = 10) -> Iterator[str]:
    """A redis-server on 127.0.0.1 (a free port, nothing saved to disk) until the block
    ends; yields its URL, redis://127.0.0.1:<port>."""
    port = free_port()
    command = [require("redis-server"), "--bind", "127.0.0.1", "--port", str(port),
               "--save", "", "--appendonly", "no"]  # fmt: skip

    with Server(command, port) as server:

        def answers() -> bool:
            if server.poll() is not None:
                raise GiveUp(f"redis-server exited with {server.popen.returncode}")
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return True

        wait_until(answers, timeout, f"redis-server on 127.0.0.1:{port}")
        yield f"redis://127.0.0.1:{port}"
