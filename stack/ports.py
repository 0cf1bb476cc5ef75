"""Free loopback ports for the stack's listeners."""
from __future__ import annotations

import socket
import threading

_LOCK = threading.Lock()
# Ports handed out by this process are never handed out twice, so that two
# components asked for ports back to back cannot receive the same one.
_GIVEN: set[int] = set()


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago and not given before."""
    with _LOCK:
        for _ in range(50):
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
                sock.bind(("127.0.0.1", 0))
                port = sock.getsockname()[1]
            if port not in _GIVEN:
                _GIVEN.add(port)
                return port
    raise OSError("no free port on 127.0.0.1")
