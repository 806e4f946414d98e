"""``python -m factory.qemu.relay HOST PORT``: bridge stdin/stdout to a TCP connection.

QEMU's ``guestfwd=tcp:IP:PORT-tcp:HOST:HPORT`` form connects one character device once, at start-up,
so only a single guest connection ever reaches the host. The ``guestfwd=tcp:IP:PORT-cmd:COMMAND`` form
spawns COMMAND for every guest connection with the connection on its stdin/stdout; this relay is that
command, so every metadata request of the guest gets its own connection to the emulator. It writes
nothing else (stderr also reaches the guest).
"""

from __future__ import annotations

import os
import select
import socket
import sys
from collections.abc import Sequence

IDLE_SECONDS = 120.0


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def relay(host: str, port: int, fd_in: int = 0, fd_out: int = 1) -> None:
    """Copy bytes both ways until the server closes (or nothing moves for IDLE_SECONDS)."""
    sock = socket.create_connection((host, port), timeout=10)
    sock.settimeout(None)
    reading_guest = True
    try:
        while True:
            watched: list[int | socket.socket] = [sock]
            if reading_guest:
                watched.append(fd_in)
            ready, _, _ = select.select(watched, [], [], IDLE_SECONDS)
            if not ready:
                return
            if sock in ready:
                data = sock.recv(65536)
                if not data:
                    return
                _write_all(fd_out, data)
            if reading_guest and fd_in in ready:
                data = os.read(fd_in, 65536)
                if data:
                    sock.sendall(data)
                else:
                    reading_guest = False
                    sock.shutdown(socket.SHUT_WR)
    finally:
        sock.close()


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: ``HOST PORT``."""
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 2 or not args[1].isdigit():
        return 2
    try:
        relay(args[0], int(args[1]))
    except OSError:
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
