"""HTTP/1.x on the wire for :mod:`datasources.http`: URLs, the response reader and the errors.

Reads a response as HTTP/1.1 says: status line (interim 1xx answers skipped), headers, then a
body framed by ``Transfer-Encoding: chunked``, ``Content-Length`` or the end of the connection.
Every ``recv`` is bounded by an absolute deadline; sizes are capped before anything is kept.
"""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass, field

# Status line plus headers; metadata services send a few hundred bytes.
MAX_HEADER_BYTES = 64 * 1024
MAX_HEADER_LINES = 100
_CHUNK = 64 * 1024
_NO_BODY_STATUSES = frozenset({204, 304})


class TransportError(Exception):
    """No usable HTTP answer: ``kind`` is one of refused, unreachable, timeout, dns, reset,
    truncated, garbage, error."""

    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(f"{kind}: {detail}")
        self.kind = kind
        self.detail = detail


class BodyTooLarge(Exception):
    """The response body is larger than the caller's cap."""


@dataclass
class Response:
    """An HTTP answer. ``headers`` keys are lower-case."""

    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """True for 2xx."""
        return 200 <= self.status < 300

    def text(self) -> str:
        """The body decoded as UTF-8 (invalid bytes replaced)."""
        return self.body.decode("utf-8", errors="replace")


def remaining(deadline: float) -> float:
    """Seconds left until ``deadline`` (never negative)."""
    return max(0.0, deadline - time.monotonic())


@dataclass(frozen=True)
class Target:
    """Where a request goes: scheme, host, port and the request target (path plus query)."""

    scheme: str
    host: str
    port: int
    path: str

    @property
    def host_header(self) -> str:
        """The ``Host`` header value: the port only when it is not the scheme's default."""
        default = 443 if self.scheme == "https" else 80
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port == default else f"{host}:{self.port}"


def split_url(url: str) -> Target:
    """Scheme, host, port and request target (path plus query) of an http(s) URL.

    :raises TransportError: kind ``error`` for anything but ``http://`` / ``https://`` with a host.
    """
    scheme, sep, rest = url.partition("://")
    scheme = scheme.lower()
    if not sep or scheme not in ("http", "https"):
        raise TransportError("error", f"not an http(s) URL: {url[:80]!r}")
    authority, slash, path = rest.partition("/")
    authority, _, query = authority.partition("?")
    target = slash + path if slash else "/"
    if query and not slash:
        target = "/?" + query
    target = target.partition("#")[0] or "/"
    authority = authority.rpartition("@")[2]
    if authority.startswith("["):
        host, _, port_text = authority[1:].partition("]")
        port_text = port_text.removeprefix(":")
    else:
        host, _, port_text = authority.partition(":")
    if not host:
        raise TransportError("error", f"no host in {url[:80]!r}")
    if not port_text:
        port = 443 if scheme == "https" else 80
    elif port_text.isdigit() and 0 < int(port_text) < 65536:
        port = int(port_text)
    else:
        raise TransportError("error", f"bad port in {url[:80]!r}")
    return Target(scheme, host, port, target)


class _Reader:
    """Reads a response from a socket, never blocking past ``deadline``."""

    def __init__(self, sock: socket.socket, deadline: float) -> None:
        self.sock = sock
        self.deadline = deadline
        self.buffer = bytearray()
        self.eof = False
        self.received = 0

    def fill(self) -> bool:
        """Receive more bytes into the buffer; False at the end of the connection."""
        if self.eof:
            return False
        left = remaining(self.deadline)
        if left <= 0:
            raise TransportError("timeout", "deadline reached while reading the answer")
        self.sock.settimeout(left)
        data = self.sock.recv(_CHUNK)
        if not data:
            self.eof = True
            return False
        self.received += len(data)
        self.buffer += data
        return True

    def line(self, limit: int) -> bytes:
        """One CRLF- (or LF-) terminated line of at most ``limit`` bytes, without its terminator."""
        start = 0
        while True:
            end = self.buffer.find(b"\n", start)
            if end >= 0:
                if end > limit + 1:  # the CR of CRLF is not part of the line
                    break
                line = bytes(self.buffer[:end])
                del self.buffer[: end + 1]
                return line.removesuffix(b"\r")
            if len(self.buffer) > limit:
                break
            start = len(self.buffer)
            if not self.fill():
                kind = "reset" if self.received == 0 else "truncated"
                raise TransportError(kind, "connection closed in the middle of the headers")
        raise TransportError("garbage", f"header line longer than {limit} bytes")

    def exactly(self, size: int) -> bytes:
        """``size`` bytes (the caller bounds ``size``)."""
        while len(self.buffer) < size:
            if not self.fill():
                raise TransportError("truncated", f"body ended {size - len(self.buffer)} bytes early")
        data = bytes(memoryview(self.buffer)[:size])  # one copy, not a slice and then a copy
        del self.buffer[:size]
        return data

    def rest(self, max_bytes: int) -> bytes:
        """Everything until the end of the connection, at most ``max_bytes``."""
        while True:
            if len(self.buffer) > max_bytes:
                raise BodyTooLarge(f"body larger than {max_bytes} bytes")
            if not self.fill():
                break
        data = bytes(self.buffer)
        self.buffer.clear()
        return data


def read_response(sock: socket.socket, deadline: float, method: str, max_bytes: int) -> Response:
    """Read one HTTP/1.x response from ``sock`` (interim 1xx answers skipped).

    :raises TransportError: garbage, truncated, reset or timeout.
    :raises BodyTooLarge: the body exceeds ``max_bytes``.
    """
    reader = _Reader(sock, deadline)
    while True:
        status = _status_line(reader.line(MAX_HEADER_BYTES))
        headers = _headers(reader)
        if not 100 <= status < 200:
            break
    if method == "HEAD" or status in _NO_BODY_STATUSES:
        return Response(status, b"", headers)
    if "chunked" in headers.get("transfer-encoding", "").lower():
        return Response(status, _chunked_body(reader, max_bytes), headers)
    length_text = headers.get("content-length")
    if length_text is None:
        return Response(status, reader.rest(max_bytes), headers)
    length_text = length_text.split(",")[0].strip()
    if not length_text.isdigit():
        raise TransportError("garbage", f"bad Content-Length {length_text[:40]!r}")
    length = int(length_text)
    if length > max_bytes:
        raise BodyTooLarge(f"body of {length} bytes is larger than {max_bytes} bytes")
    return Response(status, reader.exactly(length), headers)


def _status_line(line: bytes) -> int:
    parts = line.split(None, 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or len(parts[1]) != 3 or not parts[1].isdigit():
        raise TransportError("garbage", f"not an HTTP status line: {line[:60]!r}")
    return int(parts[1])


def _headers(reader: _Reader) -> dict[str, str]:
    headers: dict[str, str] = {}
    size = 0
    last = ""
    for _ in range(MAX_HEADER_LINES + 1):
        line = reader.line(max(0, MAX_HEADER_BYTES - size))
        size += len(line) + 2
        if not line:
            return headers
        text = line.decode("latin-1")
        if text[0] in " \t" and last:  # obsolete line folding: continues the previous header
            headers[last] += " " + text.strip()
            continue
        name, sep, value = text.partition(":")
        if not sep or not name or name != name.strip():
            raise TransportError("garbage", f"not a header line: {text[:60]!r}")
        last = name.lower()
        value = value.strip()
        headers[last] = f"{headers[last]}, {value}" if last in headers else value
    raise TransportError("garbage", f"more than {MAX_HEADER_LINES} header lines")


def _chunked_body(reader: _Reader, max_bytes: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        size_text = reader.line(1024).split(b";", 1)[0].strip()
        try:
            chunk_size = int(size_text, 16)
        except ValueError:
            raise TransportError("garbage", f"bad chunk size {size_text[:20]!r}") from None
        if chunk_size < 0:
            raise TransportError("garbage", "negative chunk size")
        if chunk_size == 0:
            break
        size += chunk_size
        if size > max_bytes:
            raise BodyTooLarge(f"body larger than {max_bytes} bytes")
        chunks.append(reader.exactly(chunk_size))
        if reader.line(2) != b"":
            raise TransportError("garbage", "chunk not followed by CRLF")
    _headers(reader)  # trailer
    return b"".join(chunks)
