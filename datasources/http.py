"""A small deadline-bound HTTP client on the standard library (no requests on the boot path).

Every call takes an absolute ``deadline`` (``time.monotonic()``): no socket operation is allowed
to block past it. 5xx and 429 answers are retried with backoff while time remains; the last
answer is returned so the caller can tell "this cloud, but failing" from "not this cloud".
"""

from __future__ import annotations

import http.client
import socket
import time
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field

DEFAULT_CONNECT_TIMEOUT = 1.0
DEFAULT_MAX_BYTES = 16 * 1024 * 1024 + 1
USER_AGENT = "k3os-factory-datasources/0.1"
_CHUNK = 64 * 1024


class TransportError(Exception):
    """No HTTP answer: ``kind`` is one of refused, unreachable, timeout, dns, reset, truncated."""

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


def _connection(
    parsed: urllib.parse.SplitResult, timeout: float, source_port: int | None
) -> http.client.HTTPConnection:
    host = parsed.hostname or ""
    source = ("", source_port) if source_port is not None else None
    if parsed.scheme == "https":
        import ssl  # only the packet provider speaks HTTPS; keep ssl off everyone else's start-up

        return http.client.HTTPSConnection(
            host, parsed.port, timeout=timeout, source_address=source, context=ssl.create_default_context()
        )
    return http.client.HTTPConnection(host, parsed.port, timeout=timeout, source_address=source)


def _classify(exc: BaseException) -> TransportError:
    if isinstance(exc, TransportError):
        return exc
    if isinstance(exc, ConnectionRefusedError):
        return TransportError("refused", str(exc))
    if isinstance(exc, socket.gaierror):
        return TransportError("dns", str(exc))
    if isinstance(exc, TimeoutError | socket.timeout):
        return TransportError("timeout", str(exc) or "timed out")
    if isinstance(exc, http.client.IncompleteRead):
        return TransportError("truncated", f"got {len(exc.partial)} bytes, more expected")
    if isinstance(exc, ConnectionResetError | BrokenPipeError | http.client.RemoteDisconnected):
        return TransportError("reset", str(exc))
    if isinstance(exc, http.client.HTTPException):
        return TransportError("garbage", f"{type(exc).__name__}: {exc}")
    if isinstance(exc, OSError):
        return TransportError("unreachable", str(exc))
    return TransportError("error", f"{type(exc).__name__}: {exc}")


def _once(
    method: str,
    url: str,
    *,
    deadline: float,
    headers: Mapping[str, str],
    body: bytes | None,
    connect_timeout: float,
    max_bytes: int,
    source_port: int | None,
) -> Response:
    parsed = urllib.parse.urlsplit(url)
    path = parsed.path or "/"
    if parsed.query:
        path += "?" + parsed.query
    left = remaining(deadline)
    if left <= 0:
        raise TransportError("timeout", "deadline reached before the request")
    conn = _connection(parsed, min(connect_timeout, left), source_port)
    try:
        conn.connect()
        if conn.sock is not None:
            conn.sock.settimeout(max(0.001, remaining(deadline)))
        all_headers = {"User-Agent": USER_AGENT, "Accept": "*/*", **headers}
        conn.request(method, path, body=body, headers=all_headers)
        resp = conn.getresponse()
        chunks: list[bytes] = []
        size = 0
        while True:
            if conn.sock is not None:
                left = remaining(deadline)
                if left <= 0:
                    raise TransportError("timeout", "deadline reached while reading the body")
                conn.sock.settimeout(left)
            chunk = resp.read1(_CHUNK) if not resp.isclosed() else b""
            if not chunk:
                break
            size += len(chunk)
            if size > max_bytes:
                raise BodyTooLarge(f"body larger than {max_bytes} bytes")
            chunks.append(chunk)
        if resp.length not in (None, 0):
            raise TransportError("truncated", f"body ended {resp.length} bytes early")
        hdrs = {k.lower(): v for k, v in resp.getheaders()}
        return Response(resp.status, b"".join(chunks), hdrs)
    except BodyTooLarge:
        raise
    except Exception as exc:  # every transport failure becomes one typed error
        raise _classify(exc) from exc
    finally:
        conn.close()


def request(
    method: str,
    url: str,
    *,
    deadline: float,
    headers: Mapping[str, str] | None = None,
    body: bytes | None = None,
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
    max_bytes: int = DEFAULT_MAX_BYTES,
    retry_server_errors: bool = True,
    source_port: int | None = None,
) -> Response:
    """Send one request, retrying 5xx/429 answers and resets with backoff until ``deadline``.

    :raises TransportError: no HTTP answer (refused, timeout, ...); refused/dns are not retried.
    :raises BodyTooLarge: the body exceeds ``max_bytes``.
    """
    delay = 0.05
    while True:
        try:
            resp = _once(
                method,
                url,
                deadline=deadline,
                headers=headers or {},
                body=body,
                connect_timeout=connect_timeout,
                max_bytes=max_bytes,
                source_port=source_port,
            )
        except TransportError as exc:
            if exc.kind not in ("reset",) or remaining(deadline) < delay:
                raise
            time.sleep(delay)
            delay = min(delay * 2, 1.0)
            continue
        if not retry_server_errors or not (resp.status >= 500 or resp.status == 429):
            return resp
        wait = delay
        retry_after = resp.headers.get("retry-after", "")
        if retry_after.isdigit():
            wait = max(wait, float(retry_after))
        if remaining(deadline) < wait + 0.05:
            return resp
        time.sleep(wait)
        delay = min(delay * 2, 1.0)


def get(url: str, *, deadline: float, headers: Mapping[str, str] | None = None, **kw: object) -> Response:
    """``request("GET", ...)``."""
    return request("GET", url, deadline=deadline, headers=headers, **kw)  # type: ignore[arg-type]
