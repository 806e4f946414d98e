"""hcloud-python plumbing for the Hetzner backend: the client (token and endpoint from the standard
env), error classification, label helpers and the removal of servers and images. The SDK is imported
here (and so only when the Hetzner backend is used).

Labels: Hetzner label keys may not contain ``:`` (key = optional DNS-subdomain prefix, ``/``, a name of
at most 63 of ``[A-Za-z0-9._-]``; values the same without ``/``). The factory's tags are therefore
mapped ``k3os-factory:bake-id`` -> ``k3os-factory/bake-id``, ``k3os-factory:state`` ->
``k3os-factory/state``, ``k3os-factory:created`` -> ``k3os-factory/created`` (Unix seconds: ``:`` is
not allowed in values either). ``factory gc hetzner`` selects on the same keys.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable
from typing import TypeVar

import requests
from hcloud import APIException, Client
from hcloud.images import Image
from hcloud.servers import Server

from factory.clouds import common
from factory.pipeline import UsageError

T = TypeVar("T")

TOKEN_ENV = "HCLOUD_TOKEN"
ENDPOINT_ENV = "HCLOUD_ENDPOINT"
DEFAULT_ENDPOINT = "https://api.hetzner.cloud/v1"
BAKE_ID_LABEL = "k3os-factory/bake-id"
STATE_LABEL = "k3os-factory/state"
CREATED_LABEL = "k3os-factory/created"
TRANSIENT_CODES = frozenset(
    {"rate_limit_exceeded", "conflict", "locked", "service_error", "server_error", "unavailable",
     "maintenance", "timeout", "bad_gateway", "resource_unavailable"}
)  # fmt: skip
CREDENTIAL_CODES = frozenset({"unauthorized", "token_readonly"})
_LABEL_NAME = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9._-]{0,61}[A-Za-z0-9])?$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*$")


def endpoint() -> str:
    """The API base URL: ``$HCLOUD_ENDPOINT`` (as the hcloud CLI and Packer read it), else the public API."""
    return (os.environ.get(ENDPOINT_ENV) or DEFAULT_ENDPOINT).rstrip("/")


def make_client(poll_s: float = 1.0) -> Client:
    """An hcloud ``Client`` for ``$HCLOUD_TOKEN`` at :func:`endpoint`. UsageError without a token."""
    token = (os.environ.get(TOKEN_ENV) or "").strip()
    if not token:
        raise UsageError(f"no Hetzner Cloud token: set {TOKEN_ENV} (a project API token, read & write)")
    url = endpoint()
    if not re.match(r"^https?://[^\s/]+", url):
        raise UsageError(f"{ENDPOINT_ENV}={url!r} is not an http(s) URL")
    return Client(
        token=token,
        api_endpoint=url,
        application_name="k3os-factory",
        poll_interval=max(0.05, poll_s),
        timeout=(10, 60),
    )


def error_code(exc: BaseException) -> str:
    """The Hetzner error code of an APIException (``not_found``, ``locked``, ...), else ""."""
    return str(exc.code) if isinstance(exc, APIException) else ""


def is_transient(exc: BaseException) -> bool:
    """Rate limits, locks, 5xx and connection hiccups: worth another poll."""
    if isinstance(exc, APIException):
        if isinstance(exc.code, int):
            return exc.code >= 500 or exc.code == 429
        return exc.code in TRANSIENT_CODES
    return isinstance(exc, requests.ConnectionError | requests.Timeout)


def is_not_found(exc: BaseException) -> bool:
    """The resource is gone."""
    return error_code(exc) == "not_found" or (isinstance(exc, APIException) and exc.code == 404)


def credentials_error(exc: BaseException) -> UsageError | None:
    """A one-line UsageError for a rejected token or an unreachable endpoint, else None."""
    code = error_code(exc)
    if code in CREDENTIAL_CODES or (isinstance(exc, APIException) and exc.code == 401):
        return UsageError(
            f"Hetzner Cloud rejected the token in {TOKEN_ENV} ({code}): check the project token"
        )
    if isinstance(exc, requests.ConnectionError):
        return UsageError(f"cannot reach the Hetzner Cloud API at {endpoint()} (set {ENDPOINT_ENV}?)")
    return None


def describe(exc: BaseException) -> str:
    """A one-line description of an SDK error (code, message, correlation id)."""
    if isinstance(exc, APIException):
        cid = f", correlation id {exc.correlation_id}" if exc.correlation_id else ""
        return f"{exc.code}: {exc.message}{cid}"
    return " ".join(str(exc).split()) or type(exc).__name__


def label_problem(key: str, value: str) -> str | None:
    """Why ``key=value`` is not a valid Hetzner label (None when it is)."""
    prefix, slash, name = key.rpartition("/")
    if not _LABEL_NAME.match(name) or (slash and (len(prefix) > 253 or not _DNS_SUBDOMAIN.match(prefix))):
        return (
            f"label key {key!r}: [prefix/]name with name 1-63 of letters, digits, '-', '_', '.' "
            "(no ':'; prefix a DNS subdomain)"
        )
    if prefix == "hetzner.cloud" or prefix.endswith(".hetzner.cloud"):
        return f"label key {key!r}: the hetzner.cloud/ prefix is reserved"
    if value and not _LABEL_NAME.match(value):
        return f"label {key}={value!r}: values are 0-63 of letters, digits, '-', '_', '.' (no ':' or '/')"
    return None


def base_labels(bake_id: str, user_tags: dict[str, str], state: str | None = None) -> dict[str, str]:
    """Labels every resource of a bake carries: the user's ``--tag``s, bake id, creation time, state."""
    keys = (BAKE_ID_LABEL, CREATED_LABEL, STATE_LABEL)
    return common.bake_labels(keys, bake_id, user_tags, str(int(time.time())), state)


def retry_transient(func: Callable[[], T], deadline: float, poll_s: float) -> T:
    """Call ``func`` until it does not raise a transient error or ``deadline`` (monotonic) passed."""
    return common.retry_transient(func, is_transient, deadline, poll_s)


def rid(value: int | None) -> int:
    """A resource id from an SDK object (always set on objects the API returned)."""
    if value is None:
        raise RuntimeError("the API returned an object without an id")
    return int(value)


def action_status(client: Client, action_id: int) -> tuple[str, str]:
    """``(status, error message)`` of an action; status is ``running``, ``success`` or ``error``."""
    action = client.actions.get_by_id(action_id)
    error = action.error
    message = f"{error['code']}: {error['message']}" if error else ""
    return str(action.status), message


def delete_server(client: Client, server_id: int, timeout_s: float, poll_s: float) -> None:
    """Delete a server and wait (bounded, without the bake's cancellable wait) until it is gone."""
    deadline = time.monotonic() + timeout_s
    try:
        action = retry_transient(lambda: client.servers.delete(Server(id=server_id)), deadline, poll_s)
    except APIException as exc:
        if is_not_found(exc):
            return
        raise
    while time.monotonic() < deadline:
        try:
            status, error = action_status(client, rid(action.id))
        except Exception as exc:
            if not (is_transient(exc) or is_not_found(exc)):
                raise
            status, error = "running", ""
        if status == "success":
            return
        if status == "error":
            raise RuntimeError(f"deleting server {server_id} failed: {error}")
        time.sleep(poll_s)
    raise TimeoutError(f"server {server_id} still not deleted after {int(timeout_s)}s")


def delete_image(client: Client, image_id: int, timeout_s: float = 120.0, poll_s: float = 2.0) -> None:
    """Delete an image/snapshot (gone already is fine); locks and rate limits are retried."""
    deadline = time.monotonic() + timeout_s
    try:
        retry_transient(lambda: client.images.delete(Image(id=image_id)), deadline, poll_s)
    except APIException as exc:
        if not is_not_found(exc):
            raise
