"""Loopback ports: pick a free one, check one, wait for one to accept connections.

Everything here is bound to ``127.0.0.1`` and nothing else: the dev/test stack never
listens on, or connects to, any other address.
"""

from __future__ import annotations

import contextlib
import socket
import time

LOOPBACK = "127.0.0.1"

#: Ports handed out recently by :func:`free_port` in this process. The kernel may hand the
#: same ephemeral port to two callers that each bind-and-close before the server starts;
#: remembering recent answers removes that collision inside one process.
_recent: list[int] = []
_RECENT_MAX = 256


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago.

    The port is chosen by the kernel (bind to port 0) and not handed out twice in a row
    by this process. Another process can still take it before the server binds it; the
    services retry on a collision.
    """
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind((LOOPBACK, 0))
            port = int(sock.getsockname()[1])
        if port not in _recent:
            _recent.append(port)
            del _recent[:-_RECENT_MAX]
            return port
    raise OSError("could not find a free loopback port after 50 attempts")


def port_is_free(port: int) -> bool:
    """True if ``port`` can be bound on 127.0.0.1 right now (with SO_REUSEADDR)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((LOOPBACK, port))
        except OSError:
            return False
    return True


def wait_port_free(port: int, timeout: float) -> bool:
    """Poll :func:`port_is_free` for up to ``timeout`` seconds (a killed process releases
    its sockets a moment after it stops answering)."""
    deadline = time.monotonic() + timeout
    while not port_is_free(port):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)
    return True


def port_accepts(port: int, timeout: float = 0.5) -> bool:
    """True if something accepts TCP connections on 127.0.0.1:``port``."""
    with contextlib.suppress(OSError), socket.create_connection((LOOPBACK, port), timeout):
        return True
    return False


def wait_port_closed(port: int, timeout: float) -> bool:
    """Wait until nothing accepts connections on ``port``; True if that happened in time."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not port_accepts(port, timeout=0.2):
            return True
        time.sleep(0.05)
    return not port_accepts(port, timeout=0.2)


def wait_port_bindable(port: int, timeout: float) -> bool:
    """Wait until ``port`` can be bound again (after a server on it stopped)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if port_is_free(port):
            return True
        time.sleep(0.05)
    return port_is_free(port)
