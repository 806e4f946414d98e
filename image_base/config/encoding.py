"""``write_files`` content encodings (k3OS/cloud-init names) and their decoding to bytes."""

from __future__ import annotations

import base64
import binascii
import gzip
import zlib

#: Accepted ``encoding`` values mapped to their canonical name.
ENCODINGS: dict[str, str] = {
    "": "",
    "text/plain": "",
    "b64": "b64",
    "base64": "b64",
    "gz": "gz",
    "gzip": "gz",
    "gz+b64": "gz+b64",
    "gzip+base64": "gz+b64",
    "gz+base64": "gz+b64",
    "gzip+b64": "gz+b64",
}

#: Cap on a decompressed ``write_files`` entry, so a gzip bomb in userdata cannot exhaust memory.
MAX_DECODED_BYTES = 64 * 1024 * 1024


def _gunzip(data: bytes) -> bytes:
    decompressor = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    out = decompressor.decompress(data, MAX_DECODED_BYTES + 1)
    if len(out) > MAX_DECODED_BYTES:
        raise ValueError(f"decompresses to more than {MAX_DECODED_BYTES} bytes")
    if not decompressor.eof:
        raise ValueError("truncated gzip data")
    return out


def decode_content(content: str | bytes, encoding: str) -> bytes:
    """Return the bytes a ``write_files`` entry writes; raise ValueError when the content is not valid.

    ``content`` is ``bytes`` when YAML ``!!binary`` was used (already decoded by YAML), else ``str``.
    """
    canonical = ENCODINGS.get(encoding.strip().lower())
    if canonical is None:
        raise ValueError(f"unknown encoding {encoding!r}")
    raw = content if isinstance(content, bytes) else content.encode("utf-8")
    try:
        if canonical in ("b64", "gz+b64"):
            raw = base64.b64decode(b"".join(raw.split()), validate=True)
        if canonical in ("gz", "gz+b64"):
            raw = _gunzip(raw)
    except binascii.Error:
        raise ValueError("not valid base64") from None
    except (OSError, zlib.error, EOFError, gzip.BadGzipFile):
        raise ValueError("not valid gzip data") from None
    return raw
