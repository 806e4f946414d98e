"""SHA-512 ``crypt(3)`` (``$6$``) in pure Python: the ``crypt`` module is gone in Python 3.13.

Implements Ulrich Drepper's published "Unix crypt using SHA-256 and SHA-512" specification with the
default 5000 rounds; the result is what ``openssl passwd -6`` and glibc produce.
"""

from __future__ import annotations

import hashlib
import re
import secrets

_ALPHABET = "./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_ROUNDS = 5000
#: Shadow hashes we pass through untouched: md5 ($1$), sha256 ($5$), sha512 ($6$), bcrypt, yescrypt...
_PRE_HASHED = re.compile(r"^\$(1|2[abxy]?|5|6|7|y|gy|sha1|md5)\$[./0-9A-Za-z$=,]+$")


def is_pre_hashed(password: str) -> bool:
    """True when ``password`` already is a crypt(3) hash (copied from /etc/shadow or ``openssl passwd``)."""
    return bool(_PRE_HASHED.match(password))


def _repeat_to(digest: bytes, length: int) -> bytes:
    return (digest * (length // len(digest) + 1))[:length]


def _encode(c: bytes) -> str:
    out = []
    for k in range(21):
        a, b, d = c[k], c[k + 21], c[k + 42]
        triple = ((a, b, d), (b, d, a), (d, a, b))[k % 3]
        word = (triple[0] << 16) | (triple[1] << 8) | triple[2]
        for _ in range(4):
            out.append(_ALPHABET[word & 0x3F])
            word >>= 6
    word = c[63]
    for _ in range(2):
        out.append(_ALPHABET[word & 0x3F])
        word >>= 6
    return "".join(out)


def sha512_crypt(password: str, salt: str | None = None) -> str:
    """``$6$salt$hash`` for ``password``; a random 16-character salt unless one is given."""
    if salt is None:
        salt = "".join(secrets.choice(_ALPHABET) for _ in range(16))
    key, salt_bytes = password.encode("utf-8"), salt.encode("ascii")[:16]
    alternate = hashlib.sha512(key + salt_bytes + key).digest()
    ctx = hashlib.sha512(key + salt_bytes)
    ctx.update(_repeat_to(alternate, len(key)))
    length = len(key)
    while length > 0:
        ctx.update(alternate if length & 1 else key)
        length >>= 1
    digest = ctx.digest()
    p_bytes = _repeat_to(hashlib.sha512(key * len(key)).digest(), len(key))
    s_bytes = _repeat_to(hashlib.sha512(salt_bytes * (16 + digest[0])).digest(), len(salt_bytes))
    for rnd in range(_ROUNDS):
        ctx = hashlib.sha512(p_bytes if rnd & 1 else digest)
        if rnd % 3:
            ctx.update(s_bytes)
        if rnd % 7:
            ctx.update(p_bytes)
        ctx.update(digest if rnd & 1 else p_bytes)
        digest = ctx.digest()
    return f"$6${salt_bytes.decode('ascii')}${_encode(digest)}"
