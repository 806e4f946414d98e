"""The loopback file server hands the ISO to the guest: whole file, byte ranges, HEAD, 404, 416."""

from __future__ import annotations

import http.client
from collections.abc import Iterator
from pathlib import Path

import pytest

from factory.qemu.fileserver import FileServer

DATA = bytes(range(256)) * 4096 + b"tail"  # 1 MiB + 4 bytes: more than one chunk


@pytest.fixture
def server(tmp_path: Path) -> Iterator[FileServer]:
    iso = tmp_path / "k3os.iso"
    iso.write_bytes(DATA)
    with FileServer({"k3os.iso": iso}) as srv:
        yield srv


def _get(
    srv: FileServer, path: str, method: str = "GET", headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=10)
    try:
        conn.request(method, path, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


def test_whole_file(server: FileServer) -> None:
    status, headers, body = _get(server, "/k3os.iso")
    assert status == 200 and body == DATA
    assert headers["content-length"] == str(len(DATA))
    assert headers["accept-ranges"] == "bytes"
    assert server.url("k3os.iso", host="10.0.2.2") == f"http://10.0.2.2:{server.port}/k3os.iso"


@pytest.mark.parametrize(
    ("header", "start", "end"),
    [
        ("bytes=0-9", 0, 9),
        ("bytes=1048570-", 1048570, len(DATA) - 1),
        ("bytes=-4", len(DATA) - 4, len(DATA) - 1),
        ("bytes=5-99999999", 5, len(DATA) - 1),
    ],
)
def test_ranges(server: FileServer, header: str, start: int, end: int) -> None:
    status, headers, body = _get(server, "/k3os.iso", headers={"Range": header})
    assert status == 206
    assert body == DATA[start : end + 1]
    assert headers["content-range"] == f"bytes {start}-{end}/{len(DATA)}"


def test_unsatisfiable_range_missing_file_and_head(server: FileServer) -> None:
    status, headers, _ = _get(server, "/k3os.iso", headers={"Range": f"bytes={len(DATA)}-"})
    assert status == 416 and headers["content-range"] == f"bytes */{len(DATA)}"
    assert _get(server, "/etc/passwd")[0] == 404
    assert _get(server, "/../k3os.iso.bak")[0] == 404
    status, headers, body = _get(server, "/k3os.iso", method="HEAD")
    assert status == 200 and body == b"" and headers["content-length"] == str(len(DATA))


def test_binds_loopback_only_and_stops(tmp_path: Path) -> None:
    srv = FileServer({"a": tmp_path}).start()
    port = srv.port
    assert srv._server.server_address[0] == "127.0.0.1"
    srv.stop()
    with pytest.raises(OSError):
        http.client.HTTPConnection("127.0.0.1", port, timeout=2).connect()
