"""Central userdata decoding: gzip is decompressed here (streaming, capped), not by providers.

Base64 is the providers' business (only where their cloud marks it). An empty payload means
"no userdata".
"""

from __future__ import annotations

from collections.abc import Iterator

MAX_USERDATA = 16 * 1024 * 1024
GZIP_MAGIC = b"\x1f\x8b"
_CHUNK = 256 * 1024


class UserdataError(Exception):
    """The userdata cannot be used: corrupt gzip, or larger than :data:`MAX_USERDATA` decompressed."""


def decode_userdata(raw: bytes | None, limit: int = MAX_USERDATA) -> bytes | None:
    """Return the userdata to write: None when there is none, gunzipped when gzip.

    Decompression is streamed with ``max_length`` so a compression bomb never holds more than
    ``limit`` bytes plus one chunk in memory.

    Gzip inside gzip is refused rather than written: k3OS would take the still-compressed bytes
    (they hold NULs) for a binary script, and nesting is how compression bombs multiply.

    :raises UserdataError: corrupt or nested gzip, or more than ``limit`` bytes once decompressed.
    """
    if not raw:
        return None
    if raw[:2] != GZIP_MAGIC:
        if len(raw) > limit:
            raise UserdataError(f"userdata larger than {limit} bytes")
        return raw
    data = _gunzip(raw, limit)
    if data[:2] == GZIP_MAGIC:
        raise UserdataError("gzip userdata that holds gzip again (decompress it once before uploading)")
    return data or None


def _gunzip(raw: bytes, limit: int) -> bytes:
    """Decompress every gzip member of ``raw``; the size is checked first, holding nothing, so a
    compression bomb costs one chunk of memory, not ``limit`` bytes."""
    for _ in _gunzip_pieces(raw, limit):
        pass
    return b"".join(_gunzip_pieces(raw, limit))


def _gunzip_pieces(raw: bytes, limit: int) -> Iterator[bytes]:
    """The decompressed data of ``raw`` in pieces of at most one chunk.

    :raises UserdataError: corrupt or truncated gzip, or more than ``limit`` bytes in all.
    """
    import zlib

    size = 0
    pending = raw
    while pending:
        d = zlib.decompressobj(16 + zlib.MAX_WBITS)
        chunk_in = pending
        while True:
            try:
                piece = d.decompress(chunk_in, _CHUNK)
            except zlib.error as exc:
                raise UserdataError(f"corrupt gzip userdata: {exc}") from None
            size += len(piece)
            if size > limit:
                raise UserdataError(f"gzip userdata larger than {limit} bytes once decompressed")
            if piece:
                yield piece
            chunk_in = d.unconsumed_tail
            if d.eof or (not chunk_in and not piece):
                break
        if not d.eof:
            raise UserdataError("corrupt gzip userdata: truncated stream")
        # A gzip file may hold several members; anything else after the end is ignored.
        pending = d.unused_data if d.unused_data[:2] == GZIP_MAGIC else b""
