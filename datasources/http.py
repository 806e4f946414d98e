"""A small deadline-bound HTTP/1.1 client on ``socket`` (no requests, no http.client on the boot path).

Every call takes an absolute ``deadline`` (``time.monotonic()``): no socket operation is allowed
to block past it. 5xx and 429 answers are retried with backoff while time remains; the last
answer is returned so the caller can tell "this cloud, but failing" from "not this cloud".

One request per connection (``Connection: close``). The response is read as HTTP/1.1 says:
status line, headers, then a body framed by ``Transfer-Encoding: chunked``, ``Content-Length``
or the end of the connection. ``http.client`` is not used because it imports ``email`` and
``ssl`` (about 7 MiB and 20 ms before the first byte); ``ssl`` is imported only for https.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING

from datasources.httpwire import (
    BodyTooLarge,
    Response,
    Target,
    TransportError,
    read_response,
    remaining,
    split_url,
)

if TYPE_CHECKING:
    import ssl

DEFAULT_CONNECT_TIMEOUT = 1.0
DEFAULT_MAX_BYTES = 16 * 1024 * 1024 + 1
USER_AGENT = "k3os-factory-datasources/0.1"
_ssl_context: ssl.SSLContext | None = None

__all__ = ["BodyTooLarge", "Response", "TransportError", "remaining", "request", "split_url"]


def _classify(exc: BaseException) -> TransportError:
    if isinstance(exc, TransportError):
        return exc
    if isinstance(exc, ConnectionRefusedError):
        return TransportError("refused", str(exc))
    if isinstance(exc, socket.gaierror):
        return TransportError("dns", str(exc))
    if isinstance(exc, TimeoutError):
        return TransportError("timeout", str(exc) or "timed out")
    if isinstance(exc, ConnectionResetError | BrokenPipeError | ConnectionAbortedError):
        return TransportError("reset", str(exc))
    if isinstance(exc, OSError):
        return TransportError("unreachable", str(exc))
    return TransportError("error", f"{type(exc).__name__}: {exc}")


def _connect(target: Target, timeout: float, source_port: int | None, deadline: float) -> socket.socket:
    source = ("", source_port) if source_port is not None else None
    # An ASCII host goes down as bytes: a str would make getaddrinfo import the idna codec.
    host: str | bytes = target.host.encode("ascii") if target.host.isascii() else target.host
    sock = socket.create_connection((host, target.port), timeout=timeout, source_address=source)  # type: ignore[arg-type]
    if target.scheme != "https":
        return sock
    global _ssl_context
    import ssl  # only https (packet, github keys) pays for ssl

    if _ssl_context is None:
        _ssl_context = ssl.create_default_context()
    try:
        sock.settimeout(max(0.001, remaining(deadline)))
        return _ssl_context.wrap_socket(sock, server_hostname=target.host)
    except ssl.SSLError as exc:
        sock.close()
        raise TransportError("error", f"TLS: {exc}") from exc
    except BaseException:
        sock.close()
        raise


def _request_bytes(method: str, target: Target, headers: Mapping[str, str], body: bytes | None) -> bytes:
    all_headers = {"Host": target.host_header, "User-Agent": USER_AGENT, "Accept": "*/*", **headers}
    all_headers["Connection"] = "close"
    if body is not None or method in ("PUT", "POST", "PATCH"):
        all_headers["Content-Length"] = str(len(body or b""))
    lines = [f"{method} {target.path} HTTP/1.1"]
    for name, value in all_headers.items():
        if any(c in name + value for c in "\r\n"):
            raise TransportError("error", f"newline in header {name!r}")
        lines.append(f"{name}: {value}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + (body or b"")


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
    target = split_url(url)
    left = remaining(deadline)
    if left <= 0:
        raise TransportError("timeout", "deadline reached before the request")
    try:
        sock = _connect(target, min(connect_timeout, left), source_port, deadline)
    except Exception as exc:  # every transport failure becomes one typed error
        raise _classify(exc) from exc
    try:
        sock.settimeout(max(0.001, remaining(deadline)))
        sock.sendall(_request_bytes(method, target, headers, body))
        return read_response(sock, deadline, method, max_bytes)
    except BodyTooLarge:
        raise
    except Exception as exc:
        raise _classify(exc) from exc
    finally:
        sock.close()


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

    :raises TransportError: no HTTP answer (refused, timeout, ...); only resets are retried.
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
