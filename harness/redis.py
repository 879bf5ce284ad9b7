"""A throwaway redis-server on loopback, the shared cache of the sccache redis backend."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from harness.processes import free_port, require
from harness.service import Server


@contextlib.contextmanager
def redis_server(timeout: float = 10) -> Iterator[str]:
    """A redis-server on 127.0.0.1 (a free port, nothing saved to disk) until the block
    ends; yields its URL, redis://127.0.0.1:<port>."""
    port = free_port()
    command = [require("redis-server"), "--bind", "127.0.0.1", "--port", str(port),
               "--save", "", "--appendonly", "no"]  # fmt: skip

    with Server(command, port) as server:
        server.wait_until_listening("redis-server", timeout)
        yield f"redis://127.0.0.1:{port}"
