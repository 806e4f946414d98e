"""Authentication of the fake Compute Engine API: service-account key files it trusts and the
verification of the self-signed JWTs (RS256) the SDK sends as ``Authorization: Bearer`` tokens."""

from __future__ import annotations

import base64
import json
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

from factory.fakes.gcp_rules import ApiError

if TYPE_CHECKING:
    from factory.fakes.gcp_api import FakeGcp


def _b64url(data: str) -> bytes:
    return base64.urlsafe_b64decode(data + "=" * (-len(data) % 4))


def verify_jwt(token: str, public_keys: dict[str, Any]) -> None:
    """Accept a JWT signed (RS256) by a trusted service account and not expired; else the API's 401."""
    invalid = ApiError(
        401,
        "authError",
        "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie "
        "or other valid authentication credential.",
    )
    try:
        head_b64, claims_b64, sig_b64 = token.split(".")
        header = json.loads(_b64url(head_b64))
        claims = json.loads(_b64url(claims_b64))
        signature = _b64url(sig_b64)
    except (ValueError, json.JSONDecodeError):
        raise invalid from None
    key = public_keys.get(str(claims.get("iss", "")))
    if header.get("alg") != "RS256" or key is None or float(claims.get("exp", 0)) < time.time():
        raise invalid
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding

    try:
        key.verify(signature, f"{head_b64}.{claims_b64}".encode(), padding.PKCS1v15(), hashes.SHA256())
    except InvalidSignature:
        raise invalid from None


def write_service_account_file(
    path: Path,
    fake: FakeGcp | None = None,
    project: str = "fake-project",
    email: str = "",
    private_key_pem: bytes | None = None,
) -> dict[str, Any]:
    """Write a service-account key file whose ``token_uri`` is the fake's; register its key with it.

    The key is generated here (never a real credential) unless ``private_key_pem`` is given (tests
    reuse one key to save time). Returns the JSON written.
    """
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    email = email or f"baker@{project}.iam.gserviceaccount.com"
    if private_key_pem is None:
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    else:
        pem = private_key_pem
    loaded = serialization.load_pem_private_key(pem, password=None)
    public = loaded.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    info = {
        "type": "service_account",
        "project_id": project,
        "private_key_id": uuid.uuid4().hex,
        "private_key": pem.decode(),
        "client_email": email,
        "client_id": "100000000000000000001",
        "token_uri": f"{fake.url}/token" if fake else "http://127.0.0.1:1/token",
    }
    path.write_text(json.dumps(info, indent=2))
    path.chmod(0o600)
    if fake is not None:
        fake.add_service_account(email, public)
        fake.model.principal = email
    return info
