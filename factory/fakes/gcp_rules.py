"""The rules of the fake Compute Engine API (:mod:`factory.fakes.gcp_api`): name and label syntax,
reference formats, the catalogue (zones, machine types, public images) and the error document the real
API answers with."""

from __future__ import annotations

import re
import time
import uuid
from datetime import UTC, datetime
from typing import Any

API = "https://www.googleapis.com/compute/v1"
NAME_RE = re.compile(r"^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$")
LABEL_KEY_RE = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")
LABEL_VALUE_RE = re.compile(r"^[a-z0-9_-]{0,63}$")
IMAGE_REF_RE = re.compile(r"(?:^|/)projects/([^/]+)/global/images/(family/)?([^/]+)$")
DISK_REF_RE = re.compile(r"(?:^|/)(?:projects/[^/]+/)?zones/([^/]+)/disks/([^/]+)$")
MACHINE_TYPE_RE = re.compile(r"(?:^|/)zones/([^/]+)/machineTypes/([a-z0-9-]+)$")
ZONES = ("us-central1-a", "us-central1-b", "us-central1-f", "europe-west1-b", "europe-west4-a")
MACHINE_TYPES = ("e2-micro", "e2-small", "e2-medium", "e2-standard-2", "n2-standard-2", "t2a-standard-1")
PUBLIC_IMAGES = {
    "ubuntu-os-cloud": [
        ("ubuntu-2404-noble-amd64-v20250101", "ubuntu-2404-lts-amd64", "X86_64"),
        ("ubuntu-2404-noble-arm64-v20250101", "ubuntu-2404-lts-arm64", "ARM64"),
        ("ubuntu-2204-jammy-v20250101", "ubuntu-2204-lts", "X86_64"),
    ]
}


class ApiError(Exception):
    """An error the API answers: HTTP status, ``reason`` (errors[0].reason) and message."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason
        self.message = message

    def body(self) -> dict[str, Any]:
        """The JSON error document, shaped as Compute Engine shapes it."""
        status_names = {
            400: "INVALID_ARGUMENT",
            401: "UNAUTHENTICATED",
            403: "PERMISSION_DENIED",
            404: "NOT_FOUND",
            409: "ALREADY_EXISTS",
            412: "FAILED_PRECONDITION",
            429: "RESOURCE_EXHAUSTED",
            500: "INTERNAL",
            503: "UNAVAILABLE",
        }
        error: dict[str, Any] = {
            "code": self.status,
            "message": self.message,
            "errors": [{"message": self.message, "domain": "global", "reason": self.reason}],
        }
        if self.status in status_names:
            error["status"] = status_names[self.status]
        return {"error": error}


def not_found(what: str) -> ApiError:
    """The 404 Compute Engine answers for a missing resource."""
    return ApiError(404, "notFound", f"The resource '{what}' was not found")


def now_rfc3339(offset_s: float = 0.0) -> str:
    """A ``creationTimestamp`` like the API's (RFC 3339 with milliseconds)."""
    return datetime.fromtimestamp(time.time() + offset_s, UTC).isoformat(timespec="milliseconds")


def check_labels(labels: Any, field_name: str) -> dict[str, str]:
    """Validate labels as the API does (lowercase keys/values, letters, digits, ``_``, ``-``)."""
    if labels is None:
        return {}
    if not isinstance(labels, dict) or len(labels) > 64:
        raise ApiError(400, "invalid", f"Invalid value for field '{field_name}': at most 64 labels.")
    for key, value in labels.items():
        if not LABEL_KEY_RE.match(str(key)):
            raise ApiError(
                400,
                "invalid",
                f"Invalid value for field '{field_name}': Label key '{key}' violates format constraints. "
                "The key must start with a lowercase character, can only contain lowercase letters, "
                "numeric characters, underscores and dashes.",
            )
        if not isinstance(value, str) or not LABEL_VALUE_RE.match(value):
            raise ApiError(
                400,
                "invalid",
                f"Invalid value for field '{field_name}': Label value '{value}' violates format "
                "constraints. The value can only contain lowercase letters, numeric characters, "
                "underscores and dashes.",
            )
    return {str(k): str(v) for k, v in labels.items()}


def check_name(name: Any, field_name: str) -> str:
    """Validate a resource name (RFC 1035 label, as the API requires)."""
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise ApiError(
            400,
            "invalid",
            f"Invalid value for field '{field_name}': '{name}'. Must be a match of regex "
            "'(?:[a-z](?:[-a-z0-9]{0,61}[a-z0-9])?)'",
        )
    return name


def label_fingerprint(labels: dict[str, str]) -> str:
    """A fingerprint that changes whenever the labels change."""
    return uuid.uuid5(uuid.NAMESPACE_OID, repr(sorted(labels.items()))).hex[:16]
