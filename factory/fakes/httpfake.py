"""What the fake cloud APIs share (:mod:`factory.fakes.gcp_api`, :mod:`factory.fakes.openstack_api`,
:mod:`factory.fakes.hetzner_api`): a threaded HTTP server on 127.0.0.1 that hands every request to one
``answer`` callable, the injected-fault counter, a route table of path templates, and serving until
SIGINT/SIGTERM for the ``python -m`` entry points. Each fake keeps what is its cloud's own: error
documents, authentication, the route names its tests use."""

from __future__ import annotations

import functools
import http.server
import re
import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from email.message import Message
from types import FrameType
from typing import Any, Generic, TypeVar

H = TypeVar("H")
#: how often the serving thread looks for :meth:`LoopbackServer.stop` (the standard 0.5 s made every
#: fake's stop, i.e. every test's teardown, cost up to half a second)
STOP_POLL_S = 0.02


@dataclass
class Reply:
    """One HTTP answer: status, body bytes, ``Content-Type`` (sent only with a body) and more headers
    (sent after ``Content-Length``, in order)."""

    status: int
    body: bytes = b""
    content_type: str | None = None
    headers: list[tuple[str, str]] = field(default_factory=list)


#: ``answer(method, raw path with query, request headers (case-insensitive), raw body)``
Answer = Callable[[str, str, Message, bytes], Reply]


@dataclass
class Fault:
    """An injected failure of one route: the first ``after`` calls pass, then ``times`` calls fail
    (negative: every call); ``hits`` counts the failed ones. Each fake adds what the error says."""

    times: int = -1
    after: int = 0
    hits: int = 0

    def due(self) -> bool:
        """Count one call of the route; True when this call is to fail."""
        if self.after > 0:
            self.after -= 1
            return False
        if self.times == 0:
            return False
        self.times -= 1
        self.hits += 1
        return True


class LoopbackServer:
    """A :class:`http.server.ThreadingHTTPServer` on 127.0.0.1 in a daemon thread; every request of
    the given ``methods`` goes to ``answer`` (others get the standard library's 501)."""

    def __init__(self, name: str, answer: Answer, methods: tuple[str, ...]) -> None:
        """``name`` names the serving thread; nothing is bound until :meth:`start`."""
        self.name = name
        self.answer = answer
        self.methods = methods
        self._server: http.server.ThreadingHTTPServer | None = None

    @property
    def port(self) -> int:
        """The bound port (after :meth:`start`)."""
        assert self._server is not None, "not started"
        return int(self._server.server_address[1])

    @property
    def running(self) -> bool:
        """True between :meth:`start` and :meth:`stop`."""
        return self._server is not None

    def start(self, port: int = 0) -> int:
        """Bind 127.0.0.1:``port`` (0: any free one), serve in a daemon thread; return the port."""
        answer = self.answer

        def handle(request: http.server.BaseHTTPRequestHandler) -> None:
            length = int(request.headers.get("Content-Length") or 0)
            raw = request.rfile.read(length) if length else b""
            reply = answer(request.command, request.path, request.headers, raw)
            request.send_response(reply.status)
            if reply.body and reply.content_type:
                request.send_header("Content-Type", reply.content_type)
            request.send_header("Content-Length", str(len(reply.body)))
            for key, value in reply.headers:
                request.send_header(key, value)
            request.end_headers()
            request.wfile.write(reply.body)

        def log_message(request: http.server.BaseHTTPRequestHandler, *args: Any) -> None:
            return None

        attrs: dict[str, Any] = {"protocol_version": "HTTP/1.1", "log_message": log_message}
        attrs.update({f"do_{method}": handle for method in self.methods})
        handler = type("RequestHandler", (http.server.BaseHTTPRequestHandler,), attrs)
        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", port), handler)
        self._server.daemon_threads = True
        serve = functools.partial(self._server.serve_forever, poll_interval=STOP_POLL_S)
        threading.Thread(target=serve, name=self.name, daemon=True).start()
        return self.port

    def stop(self) -> None:
        """Stop serving and close the socket (again: nothing)."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


@dataclass(frozen=True)
class Route(Generic[H]):
    """One entry of a :class:`Routes` table: the ``name`` tests and faults use, and its handler."""

    method: str
    name: str
    pattern: re.Pattern[str]
    handler: H


class Routes(Generic[H]):
    """Path templates with ``{...}`` placeholders (each matching ``placeholder``, one path segment by
    default), tried in the order added; the first whose method and path match wins."""

    def __init__(self, placeholder: str = r"[^/]+") -> None:
        """An empty table."""
        self.placeholder = placeholder
        self.routes: list[Route[H]] = []

    def add(self, method: str, template: str, handler: H, name: str | None = None) -> None:
        """Route ``method template`` to ``handler``; its name is ``name`` (default ``"METHOD template"``)."""
        parts = re.split(r"\{[^}]*\}", template)
        regex = f"({self.placeholder})".join(re.escape(p) for p in parts)
        route = Route(method, name or f"{method} {template}", re.compile(f"^{regex}$"), handler)
        self.routes.append(route)

    def match(self, method: str, path: str) -> tuple[Route[H], list[str]] | None:
        """The first route matching, with the placeholders' values; None if none does."""
        for route in self.routes:
            if route.method == method:
                found = route.pattern.match(path)
                if found:
                    return route, list(found.groups())
        return None


def serve_until_signalled(stop: Callable[[], None]) -> None:
    """Block until SIGINT or SIGTERM, then call ``stop`` (a fake's ``python -m`` entry point)."""
    done = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        done.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    done.wait()
    stop()
