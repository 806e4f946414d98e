"""A raw GET against an emulator, for checking what the emulator itself answers."""

from __future__ import annotations

import time

from datasources import http
from datasources.emulator.base import Emulator


def get(emu: Emulator, path: str, headers: dict[str, str] | None = None, **kw: object) -> http.Response:
    """GET ``path`` from ``emu`` (2 s deadline, no retries of 5xx)."""
    return http.request(
        "GET",
        emu.url + path,
        deadline=time.monotonic() + 2,
        headers=headers or {},
        retry_server_errors=False,
        **kw,  # type: ignore[arg-type]
    )
