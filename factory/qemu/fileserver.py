"""A tiny HTTP server on 127.0.0.1 that serves named files (the ISO) to a QEMU guest.

On QEMU's user network the guest reaches the host's loopback at 10.0.2.2, so the builder downloads
``http://10.0.2.2:PORT/k3os.iso``. Supports GET and HEAD, whole files and single byte ranges
(``Range: bytes=A-B``, ``bytes=A-``, ``bytes=-N``), streamed in chunks. Nothing else is exposed: only
the names registered in ``files`` are served, every other path is 404.
"""

from __future__ import annotations

import http.server
import re
import socketserver
import threading
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType

CHUNK = 1 << 20
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


class _Unsatisfiable(Exception):
    """The requested range lies outside the file (answered with 416)."""


class _Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    files: dict[str, Path]
    requests_seen: list[str]


class _Handler(http.server.BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib signature
        return None

    def _range(self, header: str | None, size: int) -> tuple[int, int] | None:
        """(start, end inclusive), or None for the whole file. Raises _Unsatisfiable."""
        if not header:
            return None
        match = _RANGE.match(header.strip())
        if not match or (not match.group(1) and not match.group(2)):
            return None
        first, last = match.group(1), match.group(2)
        if not first:
            length = int(last)
            if length == 0:
                raise _Unsatisfiable
            return max(0, size - length), size - 1
        start = int(first)
        end = min(int(last), size - 1) if last else size - 1
        if start >= size or end < start:
            raise _Unsatisfiable
        return start, end

    def _serve(self, send_body: bool) -> None:
        self.server.requests_seen.append(
            f"{self.command} {self.path} {self.headers.get('Range', '')}".strip()
        )
        path = self.server.files.get(self.path.split("?", 1)[0].lstrip("/"))
        if path is None or not path.is_file():
            self.send_error(404)
            return
        size = path.stat().st_size
        try:
            wanted = self._range(self.headers.get("Range"), size)
        except _Unsatisfiable:
            self.send_response(416)
            self.send_header("Content-Range", f"bytes */{size}")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        start, end = (0, size - 1) if wanted is None else wanted
        length = max(0, end - start + 1)
        self.send_response(200 if wanted is None else 206)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Length", str(length))
        if wanted is not None:
            self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        self.end_headers()
        if not send_body:
            return
        with open(path, "rb") as fh:
            fh.seek(start)
            remaining = length
            while remaining > 0:
                chunk = fh.read(min(CHUNK, remaining))
                if not chunk:
                    break
                try:
                    self.wfile.write(chunk)
                except (BrokenPipeError, ConnectionResetError):
                    return
                remaining -= len(chunk)

    def do_GET(self) -> None:  # noqa: N802 - stdlib name
        self._serve(True)

    def do_HEAD(self) -> None:  # noqa: N802 - stdlib name
        self._serve(False)


class FileServer:
    """Serve ``files`` (URL name -> path) on ``host``:``port`` (0 = any free port) in a thread."""

    def __init__(self, files: Mapping[str, Path], host: str = "127.0.0.1", port: int = 0) -> None:
        self._server = _Server((host, port), _Handler)
        self._server.files = {name.lstrip("/"): Path(p) for name, p in files.items()}
        self._server.requests_seen = []
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        """The port the server listens on."""
        return int(self._server.server_address[1])

    @property
    def requests(self) -> list[str]:
        """``METHOD PATH [RANGE]`` of every request so far."""
        return list(self._server.requests_seen)

    def url(self, name: str, host: str = "127.0.0.1") -> str:
        """The URL of ``name`` as seen from ``host`` (``10.0.2.2`` for a QEMU guest)."""
        return f"http://{host}:{self.port}/{name.lstrip('/')}"

    def start(self) -> FileServer:
        """Start serving in a daemon thread."""
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="factory-fileserver", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket. Idempotent."""
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(timeout=5)
            self._thread = None
        self._server.server_close()

    def __enter__(self) -> FileServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
