"""The live-node ``github:USER`` key fetcher, against a loopback HTTP server."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from image_base.config.cli import github_key_fetcher


class _Keys(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path == "/octocat.keys":
            body = b"ssh-ed25519 AAAA one\nssh-rsa BBBB two\n"
            self.send_response(200)
        else:
            body = b"Not Found"
            self.send_response(404)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def keys_url(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Keys)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_address[1]}/{{user}}.keys"
    monkeypatch.setenv("K3OS_GITHUB_KEYS_URL", url)
    yield url
    server.shutdown()
    server.server_close()


def test_fetches_keys_of_a_user(keys_url: str) -> None:
    assert github_key_fetcher()("octocat") == ["ssh-ed25519 AAAA one", "ssh-rsa BBBB two"]


def test_unknown_user_raises_oserror(keys_url: str) -> None:
    with pytest.raises(OSError, match="HTTP 404"):
        github_key_fetcher()("nobody")
