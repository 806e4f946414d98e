"""openstacksdk plumbing for the OpenStack backend: the connection (``--os-cloud``/``OS_CLOUD`` with
clouds.yaml, or the standard ``OS_*`` environment), error classification, the factory's metadata keys,
and the removal of servers and images. The SDK is imported here, i.e. only when OpenStack is used.

Labels: Nova server metadata keys may contain ``[a-zA-Z0-9-_:. ]`` (at most 255 characters, values
too) and Glance property names are free strings, so the factory's tags are used unchanged:
``k3os-factory:bake-id``, ``k3os-factory:created``, ``k3os-factory:state`` as server metadata and image
properties. The finished image also carries the Glance tags ``k3os`` and ``k3os-factory``.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from typing import Any, TypeVar

import keystoneauth1.exceptions as ks_exc
import openstack
import openstack.connection
import openstack.exceptions as os_exc

from factory.clouds import common
from factory.pipeline import BAKE_ID_TAG, CREATED_TAG, STATE_TAG, UsageError

T = TypeVar("T")

BAKE_ID_KEY = BAKE_ID_TAG
STATE_KEY = STATE_TAG
CREATED_KEY = CREATED_TAG
IMAGE_TAGS = ("k3os", "k3os-factory")
#: Glance core attributes a ``--tag`` may not overwrite
GLANCE_RESERVED = frozenset(
    {
        "id",
        "name",
        "status",
        "visibility",
        "protected",
        "os_hidden",
        "owner",
        "container_format",
        "disk_format",
        "min_disk",
        "min_ram",
        "size",
        "virtual_size",
        "checksum",
        "os_hash_algo",
        "os_hash_value",
        "created_at",
        "updated_at",
        "tags",
        "self",
        "file",
        "schema",
        "direct_url",
        "locations",
        "image_type",
        "instance_uuid",
        "base_image_ref",
        "user_id",
        "block_device_mapping",
        "bdm_v2",
        "root_device_name",
    }
)
CREDENTIAL_HINT = (
    "set OS_CLOUD (or --os-cloud) to a clouds.yaml entry, or OS_AUTH_URL with OS_USERNAME, OS_PASSWORD, "
    "OS_PROJECT_NAME, OS_USER_DOMAIN_NAME, OS_PROJECT_DOMAIN_NAME (or OS_APPLICATION_CREDENTIAL_ID and "
    "OS_APPLICATION_CREDENTIAL_SECRET with OS_AUTH_TYPE=v3applicationcredential)"
)
TRANSIENT_STATUS = frozenset({408, 413, 429, 500, 502, 503, 504})


def _quiet_sdk_logs() -> None:
    """keystoneauth/openstacksdk warn on stderr through logging's last resort; the factory prints its
    own one-line errors instead (and their debug output could carry request bodies)."""
    for name in ("keystoneauth", "openstack", "stevedore", "urllib3"):
        logging.getLogger(name).setLevel(logging.CRITICAL)


def connect(os_cloud: str | None, region: str | None) -> openstack.connection.Connection:
    """A Connection for ``os_cloud`` (else ``$OS_CLOUD``, else the ``OS_*`` environment) in ``region``.
    UsageError when no credentials are configured at all or the clouds.yaml entry does not exist."""
    _quiet_sdk_logs()
    cloud = os_cloud or os.environ.get("OS_CLOUD") or None
    if cloud is None and not os.environ.get("OS_AUTH_URL"):
        raise UsageError(f"no OpenStack credentials: {CREDENTIAL_HINT}")
    kwargs: dict[str, Any] = {"app_name": "k3os-factory", "api_timeout": 60}
    if region:
        kwargs["region_name"] = region
    try:
        return openstack.connect(cloud=cloud, **kwargs)
    except (os_exc.ConfigException, ks_exc.AuthPluginException) as exc:
        raise UsageError(f"OpenStack configuration: {one_line(exc)}") from None


def one_line(exc: BaseException) -> str:
    """The exception as one short line (HTTP status and the service's message where there is one)."""
    if isinstance(exc, os_exc.HttpException):
        status = exc.status_code
        details = exc.details or exc.message or ""
        if "<html" in details:
            details = " ".join(details.split("</h1>")[-1].split("<br")[0].split())
        return f"HTTP {status}: {' '.join(str(details).split())}"[:400]
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text[:400]


def status_of(exc: BaseException) -> int:
    """The HTTP status of an SDK or keystoneauth error, else 0."""
    for attr in ("status_code", "http_status"):
        value = getattr(exc, attr, None)
        if isinstance(value, int):
            return value
    return 0


def is_not_found(exc: BaseException) -> bool:
    """The resource is gone (404)."""
    return isinstance(exc, os_exc.NotFoundException) or status_of(exc) == 404


def is_transient(exc: BaseException) -> bool:
    """Rate limits, 5xx and connection hiccups: worth another poll."""
    if status_of(exc) in TRANSIENT_STATUS:
        return True
    return isinstance(exc, ks_exc.ConnectFailure | ks_exc.ConnectTimeout | ks_exc.RetriableConnectionFailure)


def credentials_error(exc: BaseException) -> UsageError | None:
    """A one-line UsageError for rejected or incomplete credentials or an unreachable Keystone, else None."""
    if isinstance(exc, UsageError):
        return exc
    text = one_line(exc)
    if isinstance(exc, ks_exc.Unauthorized) or status_of(exc) == 401 or "401" in text.split(":")[0]:
        return UsageError(f"OpenStack rejected the credentials: {text}")
    if isinstance(exc, ks_exc.AuthPluginException | os_exc.ConfigException):
        return UsageError(f"OpenStack credentials incomplete: {text} ({CREDENTIAL_HINT})")
    if isinstance(exc, ks_exc.DiscoveryFailure | ks_exc.ConnectFailure | ks_exc.EndpointNotFound):
        return UsageError(
            f"cannot reach OpenStack (check OS_AUTH_URL/clouds.yaml and OS_REGION_NAME): {text}"
        )
    plain_sdk = isinstance(exc, os_exc.SDKException) and not isinstance(exc, os_exc.HttpException)
    if plain_sdk and ("Unable to establish connection" in text or "authenticat" in text.lower()):
        return UsageError(f"cannot authenticate with OpenStack: {text}")
    return None


def retry_transient(call: Callable[[], T], deadline: float, poll_s: float) -> T:
    """``call()``, retried on transient errors until ``deadline`` (monotonic)."""
    return common.retry_transient(call, is_transient, deadline, poll_s)


def delete_server(
    conn: openstack.connection.Connection, server_id: str, timeout_s: float = 600.0, poll_s: float = 2.0
) -> None:
    """Delete a server (gone already is fine) and poll until Nova no longer shows it."""
    deadline = time.monotonic() + timeout_s
    try:
        retry_transient(lambda: conn.compute.delete_server(server_id), deadline, poll_s)
    except Exception as exc:
        if is_not_found(exc):
            return
        raise
    while time.monotonic() < deadline:
        try:
            server = conn.compute.get_server(server_id)
        except Exception as exc:
            if is_not_found(exc):
                return
            if not is_transient(exc):
                raise
            server = None
        if server is not None and server.status == "ERROR" and not server.task_state:
            raise RuntimeError(f"deleting server {server_id} failed: it is in ERROR")
        time.sleep(poll_s)
    raise TimeoutError(f"server {server_id} still not deleted after {int(timeout_s)}s")


def delete_image(conn: openstack.connection.Connection, image_id: str, timeout_s: float = 120.0) -> None:
    """Delete a Glance image (gone already is fine); transient errors are retried."""
    deadline = time.monotonic() + timeout_s
    try:
        retry_transient(lambda: conn.image.delete_image(image_id, ignore_missing=False), deadline, 1.0)
    except Exception as exc:
        if not is_not_found(exc):
            raise


def base_metadata(bake_id: str, tags: dict[str, str], state: str | None = None) -> dict[str, str]:
    """The user's tags plus the factory's keys (bake id, creation time in UTC, optional state)."""
    created = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    return common.bake_labels((BAKE_ID_KEY, CREATED_KEY, STATE_KEY), bake_id, tags, created, state)
