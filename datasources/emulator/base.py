"""Shared machinery for the metadata-service emulators: a threaded loopback HTTP server with
failure modes every emulator supports.

An emulator subclasses :class:`Emulator` and implements :meth:`Emulator.route`. Failure modes
(``--fail``) apply to every request before routing:

- ``slow``: sleep ``slow_seconds`` before answering;
- ``hang``: accept the connection and never answer (until the server stops);
- ``500``: answer 500 to everything;
- ``garbage``: answer 200 with bytes that are not what the route would give;
- ``truncated``: announce a Content-Length larger than the body, then close.
"""

from __future__ import annotations

import argparse
import http.server
import socketserver
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import ClassVar

FAILURE_MODES = ("none", "slow", "hang", "500", "garbage", "truncated")


@dataclass
class Reply:
    """What a route answers."""

    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Request:
    """What a route sees of a request. ``headers`` keys are lower-case."""

    method: str
    path: str
    query: str
    headers: Mapping[str, str]
    client_port: int
    body: bytes


@dataclass
class EmulatorConfig:
    """Common emulator settings (``python -m datasources.emulator PROVIDER ...``)."""

    userdata: bytes | None = None
    hostname: str = "node-1"
    ssh_keys: list[str] = field(default_factory=list)
    instance_id: str = "i-0123456789abcdef0"
    region: str = "us-east-1"
    zone: str = "us-east-1a"
    public_ipv4: str = "203.0.113.10"
    local_ipv4: str = "10.0.0.10"
    fail: str = "none"
    slow_seconds: float = 5.0
    options: dict[str, str] = field(default_factory=dict)


class _Handler(http.server.BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib signature
        """Log requests to stderr only with ``--verbose``."""
        if self.server.emulator.verbose:
            super().log_message(format, *args)

    def _handle(self) -> None:
        emu = self.server.emulator
        path, _, query = self.path.partition("?")
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        req = Request(
            self.command,
            path,
            query,
            {k.lower(): v for k, v in self.headers.items()},
            self.client_address[1],
            body,
        )
        emu.requests.append(req)
        fail = emu.config.fail
        if fail == "hang":
            emu.stopping.wait()
            return
        if fail == "slow" and emu.stopping.wait(emu.config.slow_seconds):
            return
        if fail == "500":
            reply = Reply(500, b"internal error\n")
        else:
            reply = emu.route(req)
            if fail == "garbage":
                reply = Reply(200, b"\x00\xff<html>{not: [what you expected", reply.headers)
        declared = len(reply.body) + (1000 if fail == "truncated" else 0)
        self.send_response(reply.status)
        for key, value in reply.headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(declared))
        if fail == "truncated":
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(reply.body)
        if fail == "truncated":
            self.close_connection = True

    do_GET = do_PUT = do_POST = do_HEAD = do_PATCH = _handle


class _Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128  # a fetch opens several connections at once; 5 made clients time out
    emulator: Emulator


class Emulator:
    """A metadata service on loopback. Use as a context manager or call start()/stop()."""

    provider: ClassVar[str] = ""

    def __init__(self, config: EmulatorConfig, host: str = "127.0.0.1", port: int = 0) -> None:
        self.config = config
        self.requests: list[Request] = []
        self.stopping = threading.Event()
        self.verbose = False
        self._server = _Server((host, port), _Handler)
        self._server.emulator = self
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        """The TCP port the emulator listens on."""
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        """Base URL (no trailing slash), e.g. ``http://127.0.0.1:PORT``."""
        return f"http://127.0.0.1:{self.port}"

    def route(self, req: Request) -> Reply:
        """Answer one request as the real service would."""
        raise NotImplementedError

    def start(self) -> Emulator:
        """Serve in a background thread."""
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        """Serve in the calling thread until interrupted."""
        self._server.serve_forever(poll_interval=0.05)

    def stop(self) -> None:
        """Stop serving and release hanging handlers."""
        self.stopping.set()
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> Emulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags every emulator takes."""
    parser.add_argument("--port", type=int, default=0, help="TCP port (default: any free port)")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--userdata", help="file whose bytes are served as userdata")
    parser.add_argument("--hostname", default="node-1")
    parser.add_argument("--ssh-key", action="append", default=[], dest="ssh_keys", help="repeatable")
    parser.add_argument("--instance-id", default=None)
    parser.add_argument("--fail", choices=FAILURE_MODES, default="none")
    parser.add_argument("--slow-seconds", type=float, default=5.0)
    parser.add_argument(
        "--option", action="append", default=[], metavar="KEY=VALUE", help="provider-specific mode"
    )


def time_now() -> float:
    """Wall-clock seconds (a seam for emulators that expire tokens)."""
    return time.time()
