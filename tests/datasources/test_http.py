"""The socket HTTP/1.1 client (datasources.http, datasources.httpwire) against a scripted raw TCP server.

Every case is a real connection: the server reads the request and answers with exactly the
bytes a test gives (or closes, or hangs), so framing, limits and deadlines are exercised as
they would be against a broken metadata service.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from datasources import http
from datasources.http import BodyTooLarge, TransportError, request, split_url

from .conftest import refused_url


@dataclass
class RawServer:
    """Answers every connection with ``reply`` (then closes, unless ``hang``)."""

    reply: bytes = b""
    hang: bool = False
    requests: list[bytes] = field(default_factory=list)
    sock: socket.socket = field(default_factory=socket.socket)
    stop: threading.Event = field(default_factory=threading.Event)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.sock.getsockname()[1]}"

    def serve(self) -> None:
        self.sock.settimeout(0.05)
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            with conn:
                data = b""
                conn.settimeout(2)
                while b"\r\n\r\n" not in data:
                    piece = conn.recv(4096)
                    if not piece:
                        break
                    data += piece
                self.requests.append(data)
                conn.sendall(self.reply)
                if self.hang:
                    self.stop.wait()


@pytest.fixture
def raw() -> Iterator[RawServer]:
    server = RawServer()
    server.sock.bind(("127.0.0.1", 0))
    server.sock.listen(16)
    thread = threading.Thread(target=server.serve, daemon=True)
    thread.start()
    yield server
    server.stop.set()
    thread.join(2)
    server.sock.close()


def get(server: RawServer, reply: bytes, timeout: float = 2, **kw: object) -> http.Response:
    server.reply = reply
    return request("GET", server.url + "/p?q=1", deadline=time.monotonic() + timeout, **kw)  # type: ignore[arg-type]


def test_content_length_body_and_headers(raw: RawServer) -> None:
    resp = get(
        raw, b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-Thing:  a b \r\nSet-X: 1\r\nset-x: 2\r\n\r\nhello"
    )
    assert (resp.status, resp.body) == (200, b"hello")
    assert resp.headers["x-thing"] == "a b" and resp.headers["set-x"] == "1, 2"
    sent = raw.requests[0].decode()
    assert sent.startswith("GET /p?q=1 HTTP/1.1\r\n")
    assert f"Host: 127.0.0.1:{raw.url.rsplit(':', 1)[1]}\r\n" in sent
    assert "Connection: close\r\n" in sent and "Accept: */*\r\n" in sent


def test_chunked_body_with_extensions_and_trailer(raw: RawServer) -> None:
    reply = (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5;ext=1\r\nhello\r\n1\r\n \r\n5\r\nworld\r\n0\r\nX-Trailer: t\r\n\r\n"
    )
    assert get(raw, reply).body == b"hello world"


def test_body_to_the_end_of_the_connection(raw: RawServer) -> None:
    assert get(raw, b"HTTP/1.0 200 OK\r\n\r\nuntil close").body == b"until close"


def test_interim_100_and_bodiless_answers(raw: RawServer) -> None:
    resp = get(raw, b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n")
    assert (resp.status, resp.body) == (204, b"")


@pytest.mark.parametrize(
    ("reply", "kind"),
    [
        (b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort", "truncated"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nA\r\nabc", "truncated"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n", "truncated"),
        (b"HTTP/1.1 200 OK\r\nContent-Le", "truncated"),
        (b"SSH-2.0-OpenSSH_9.2\r\n\r\n", "garbage"),
        (b"HTTP/1.1 2x0 OK\r\n\r\n", "garbage"),
        (b"\x00\xff\xfe garbage\r\n\r\n", "garbage"),
        (b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n", "garbage"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: -3\r\n\r\n", "garbage"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", "garbage"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabXY\r\n0\r\n\r\n", "garbage"),
        (b"HTTP/1.1 200 OK\r\nX: " + b"a" * 70_000 + b"\r\n\r\n", "garbage"),
        (b"HTTP/1.1 200 OK\r\n" + b"X: y\r\n" * 101 + b"\r\n", "garbage"),
    ],
)
def test_broken_answers_are_typed_transport_errors(raw: RawServer, reply: bytes, kind: str) -> None:
    with pytest.raises(TransportError) as err:
        get(raw, reply)
    assert err.value.kind == kind, err.value


def test_close_without_an_answer_is_a_reset_and_retried(raw: RawServer) -> None:
    start = time.monotonic()
    with pytest.raises(TransportError) as err:
        get(raw, b"", timeout=0.5)
    assert err.value.kind == "reset"
    assert len(raw.requests) >= 2, "resets are retried within the deadline"
    assert time.monotonic() - start < 0.7


@pytest.mark.parametrize(
    "reply",
    [
        b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n" + b"x" * 100,
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n40\r\n" + b"x" * 64 + b"\r\n0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\n\r\n" + b"x" * 100,
    ],
)
def test_body_cap_holds_for_every_framing(raw: RawServer, reply: bytes) -> None:
    with pytest.raises(BodyTooLarge):
        get(raw, reply, max_bytes=50)
    assert get(raw, reply, max_bytes=100).body.strip(b"x") == b""


def test_big_body_is_read_in_linear_time(raw: RawServer) -> None:
    body = b"y" * (8 * 1024 * 1024)
    start = time.monotonic()
    resp = get(raw, b"HTTP/1.1 200 OK\r\n\r\n" + body, timeout=10)
    assert resp.body == body
    assert time.monotonic() - start < 2.0


@pytest.mark.parametrize(
    "reply",
    [b"", b"HTTP/1.1 200 OK\r\n", b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nabc"],
)
def test_a_server_that_stops_talking_never_holds_past_the_deadline(raw: RawServer, reply: bytes) -> None:
    raw.hang = True
    start = time.monotonic()
    with pytest.raises(TransportError) as err:
        get(raw, reply, timeout=0.4)
    assert err.value.kind == "timeout"
    assert 0.35 < time.monotonic() - start < 0.6


def test_refused_costs_milliseconds() -> None:
    start = time.monotonic()
    with pytest.raises(TransportError) as err:
        request("GET", refused_url() + "/", deadline=time.monotonic() + 5)
    assert err.value.kind == "refused"
    assert time.monotonic() - start < 0.1


def test_put_sends_an_empty_length_and_source_port_is_bound(raw: RawServer) -> None:
    raw.reply = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    resp = request(
        "PUT", raw.url + "/t", deadline=time.monotonic() + 2, headers={"X-Ttl": "5"}, source_port=port
    )
    assert resp.body == b"ok"
    sent = raw.requests[0].decode()
    assert (
        sent.startswith("PUT /t HTTP/1.1\r\n") and "Content-Length: 0\r\n" in sent and "X-Ttl: 5\r\n" in sent
    )


def test_https_handshake_never_holds_past_the_deadline(raw: RawServer) -> None:
    # The raw server waits for a blank line that a TLS ClientHello never sends.
    raw.reply = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
    start = time.monotonic()
    with pytest.raises(TransportError) as err:
        request("GET", raw.url.replace("http://", "https://") + "/", deadline=time.monotonic() + 0.4)
    assert err.value.kind == "timeout"
    assert time.monotonic() - start < 0.6
    assert raw.requests == [] or raw.requests[0].startswith(b"\x16\x03"), "a TLS handshake was attempted"


def test_header_injection_is_refused(raw: RawServer) -> None:
    with pytest.raises(TransportError):
        get(raw, b"HTTP/1.1 200 OK\r\n\r\n", headers={"X": "a\r\nEvil: 1"})


@pytest.mark.parametrize(
    ("url", "want"),
    [
        ("http://169.254.169.254", ("http", "169.254.169.254", 80, "/", "169.254.169.254")),
        ("http://127.0.0.1:8080/a/b?c=d", ("http", "127.0.0.1", 8080, "/a/b?c=d", "127.0.0.1:8080")),
        ("https://md.example/m", ("https", "md.example", 443, "/m", "md.example")),
        ("https://md.example:8443/m", ("https", "md.example", 8443, "/m", "md.example:8443")),
        ("http://[::1]:81/x#frag", ("http", "::1", 81, "/x", "[::1]:81")),
        ("HTTP://h?x=1", ("http", "h", 80, "/?x=1", "h")),
    ],
)  # fmt: skip
def test_split_url(url: str, want: tuple[str, str, int, str, str]) -> None:
    t = split_url(url)
    assert (t.scheme, t.host, t.port, t.path, t.host_header) == want


@pytest.mark.parametrize("url", ["ftp://h/", "http://", "http://h:99999/", "http://h:x/", "169.254.169.254/"])
def test_split_url_rejects(url: str) -> None:
    with pytest.raises(TransportError):
        split_url(url)
