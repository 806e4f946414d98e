"""google-cloud-compute plumbing for the gcp backend: credentials, project, REST clients, errors,
labels and the operation polling. The SDK is imported here (and in the gcp_* modules) only, i.e. only
when the gcp backend is used.

- Credentials: Application Default Credentials (``google.auth.default``): ``GOOGLE_APPLICATION_CREDENTIALS``
  (service-account or external-account file), ``gcloud auth application-default login``, or the
  metadata server when running on GCP.
- Project: ``--project``, else ``CLOUDSDK_CORE_PROJECT``, else ``GOOGLE_CLOUD_PROJECT``, else the one
  the credentials name.
- Endpoint: ``FACTORY_GCP_ENDPOINT`` (e.g. ``http://127.0.0.1:8089``, the fake in
  :mod:`factory.fakes.gcp_api`) is passed as ``client_options={"api_endpoint": ...}`` to every client,
  REST transport; an ``http://`` scheme is kept as given.
- The SDK's ``ExtendedOperation.result()`` polls through an operations client that ignores
  ``client_options``; we call the ``*_unary`` methods and poll operations ourselves instead.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable
from typing import Any, TypeVar

import google.auth
import google.auth.exceptions
import requests
from google.api_core import exceptions as gexc
from google.cloud import compute_v1

from factory.clouds.common import bake_labels
from factory.clouds.gcp import env_project
from factory.pipeline import BAKE_ID_TAG, CREATED_TAG, STATE_TAG, UsageError

T = TypeVar("T")
ENDPOINT_ENV = "FACTORY_GCP_ENDPOINT"
SCOPES = ["https://www.googleapis.com/auth/cloud-platform"]
CLEANUP_WAIT_S = 600.0
RATE_REASONS = frozenset({"rateLimitExceeded", "userRateLimitExceeded", "quotaExceeded", "backendError"})


def label_key(tag: str) -> str:
    """GCE label keys allow no ``:``: ``k3os-factory:bake-id`` -> ``k3os-factory-bake-id``."""
    return tag.replace(":", "-")


BAKE_ID_LABEL = label_key(BAKE_ID_TAG)
CREATED_LABEL = label_key(CREATED_TAG)
STATE_LABEL = label_key(STATE_TAG)


def base_labels(bake_id: str, user_tags: dict[str, str], state: str | None = None) -> dict[str, str]:
    """Labels every resource of a bake carries: user tags, bake id, creation time (epoch seconds)."""
    keys = (BAKE_ID_LABEL, CREATED_LABEL, STATE_LABEL)
    return bake_labels(keys, bake_id, user_tags, str(int(time.time())), state)


def credentials_error(exc: BaseException) -> UsageError | None:
    """A one-line UsageError for missing or rejected credentials, else None."""
    if isinstance(exc, google.auth.exceptions.DefaultCredentialsError):
        return UsageError(
            "no GCP credentials found: set GOOGLE_APPLICATION_CREDENTIALS to a key file or run "
            "`gcloud auth application-default login` (see docs/gcp.md)"
        )
    if isinstance(exc, google.auth.exceptions.RefreshError):
        return UsageError(f"GCP credentials could not be refreshed: {exc}")
    if isinstance(exc, gexc.Unauthorized):
        return UsageError(f"GCP credentials rejected (401): {exc.message}")
    if isinstance(exc, gexc.Forbidden) and not reasons(exc) & RATE_REASONS:
        return UsageError(f"GCP permission denied (403): {exc.message}")
    return None


def reasons(exc: BaseException) -> set[str]:
    """The ``errors[].reason`` values of an API error."""
    out: set[str] = set()
    for err in getattr(exc, "errors", None) or []:
        if isinstance(err, dict) and err.get("reason"):
            out.add(str(err["reason"]))
    return out


def is_not_found(exc: BaseException) -> bool:
    """404 from the API."""
    return isinstance(exc, gexc.NotFound)


def is_transient(exc: BaseException) -> bool:
    """Rate limits, 5xx and connection errors: worth another try."""
    if isinstance(exc, gexc.TooManyRequests | gexc.ServerError):
        return True
    if isinstance(exc, gexc.Forbidden):
        return bool(reasons(exc) & {"rateLimitExceeded", "userRateLimitExceeded"})
    return isinstance(
        exc, requests.ConnectionError | requests.Timeout | google.auth.exceptions.TransportError
    )


def retry_call(func: Callable[[], T], *, attempts: int = 6, delay: float = 0.5) -> T:
    """Call ``func`` again on transient errors, with backoff (mutations carry a requestId, so it is safe)."""
    for attempt in range(attempts):
        try:
            return func()
        except Exception as exc:
            if attempt == attempts - 1 or not is_transient(exc):
                raise
        time.sleep(min(delay * 2**attempt, 8.0))
    raise AssertionError("unreachable")


def operation_error(op: Any) -> str:
    """The errors of a finished operation as one line ("" when it succeeded)."""
    errors = [f"{e.code}: {e.message}" for e in op.error.errors] if op.error else []
    if not errors and op.http_error_status_code and op.http_error_status_code >= 400:
        errors.append(f"HTTP {op.http_error_status_code} {op.http_error_message}")
    return "; ".join(errors)


class Clients:
    """Credentials, project and a cache of REST clients. Nothing is called until a client is used."""

    def __init__(self, project: str | None = None) -> None:
        """``project`` falls back to the environment, then to the credentials' project."""
        self._project = project or env_project()
        self._credentials: Any = None
        self._cache: dict[str, Any] = {}
        endpoint = os.environ.get(ENDPOINT_ENV, "").strip()
        self.endpoint = endpoint or None
        if endpoint and not endpoint.startswith(("http://", "https://")):
            raise UsageError(f"{ENDPOINT_ENV}={endpoint!r}: expected http://HOST:PORT or https://HOST")

    @property
    def credentials(self) -> Any:
        """Application Default Credentials (UsageError when there are none)."""
        if self._credentials is None:
            try:
                creds, project = google.auth.default(scopes=SCOPES)
            except google.auth.exceptions.DefaultCredentialsError as exc:
                raise credentials_error(exc) from None  # type: ignore[misc]
            self._credentials = creds
            self._project = self._project or project
        return self._credentials

    @property
    def project(self) -> str:
        """The project every call goes to."""
        if not self._project:
            _ = self.credentials
        if not self._project:
            raise UsageError(
                "no GCP project: pass --project or set CLOUDSDK_CORE_PROJECT / GOOGLE_CLOUD_PROJECT"
            )
        return self._project

    def principal(self) -> str:
        """Who the credentials are (service-account e-mail when known)."""
        creds = self.credentials
        for attr in ("service_account_email", "signer_email", "account"):
            value = getattr(creds, attr, None)
            if isinstance(value, str) and value and value != "default":
                return value
        return f"{type(creds).__module__}.{type(creds).__name__}"

    def _client(self, cls: Any) -> Any:
        key = cls.__name__
        if key not in self._cache:
            options = {"api_endpoint": self.endpoint} if self.endpoint else None
            self._cache[key] = cls(credentials=self.credentials, transport="rest", client_options=options)
        return self._cache[key]

    def instances(self) -> Any:
        """``compute_v1.InstancesClient``."""
        return self._client(compute_v1.InstancesClient)

    def images(self) -> Any:
        """``compute_v1.ImagesClient``."""
        return self._client(compute_v1.ImagesClient)

    def disks(self) -> Any:
        """``compute_v1.DisksClient``."""
        return self._client(compute_v1.DisksClient)

    def projects(self) -> Any:
        """``compute_v1.ProjectsClient``."""
        return self._client(compute_v1.ProjectsClient)

    def get_operation(self, op_name: str, zone: str | None) -> Any:
        """One GET of a zonal (``zone``) or global operation."""
        if zone:
            zonal = self._client(compute_v1.ZoneOperationsClient)
            return zonal.get(project=self.project, zone=zone, operation=op_name)
        return self._client(compute_v1.GlobalOperationsClient).get(project=self.project, operation=op_name)

    def operation_done(self, op_name: str, zone: str | None, what: str) -> bool | None:
        """Poll check for ``ctx.wait``: True when done, None while running; errors raise RuntimeError."""
        op = self.get_operation(op_name, zone)
        if op.status != compute_v1.Operation.Status.DONE:
            return None
        error = operation_error(op)
        if error:
            raise OperationFailed(f"{what} failed: {error}")
        return True

    def wait_operation(self, op: Any, zone: str | None, what: str, timeout_s: float, poll_s: float) -> None:
        """Plain bounded wait (for cleanups and gc, which run outside the pipeline's waits)."""
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                if self.operation_done(op.name, zone, what):
                    return
            except Exception as exc:
                if not is_transient(exc):
                    raise
            if time.monotonic() >= deadline:
                raise TimeoutError(f"{what}: operation {op.name} still running after {int(timeout_s)}s")
            time.sleep(poll_s)


class OperationFailed(RuntimeError):
    """A long-running operation finished with an error (quota, capacity, bad argument...)."""


def delete_and_wait(
    clients: Clients, kind: str, name: str, zone: str | None, timeout_s: float, poll_s: float
) -> bool:
    """Delete an instance, disk or image and wait for the operation; False when it was already gone."""
    project = clients.project
    request_id = new_request_id()
    try:
        if kind == "instance":
            op = retry_call(
                lambda: clients.instances().delete_unary(
                    request=compute_v1.DeleteInstanceRequest(
                        project=project, zone=zone, instance=name, request_id=request_id
                    )
                )
            )
        elif kind == "disk":
            op = retry_call(
                lambda: clients.disks().delete_unary(
                    request=compute_v1.DeleteDiskRequest(
                        project=project, zone=zone, disk=name, request_id=request_id
                    )
                )
            )
        elif kind == "image":
            op = retry_call(
                lambda: clients.images().delete_unary(
                    request=compute_v1.DeleteImageRequest(project=project, image=name, request_id=request_id)
                )
            )
        else:
            raise ValueError(f"cannot delete a {kind}")
    except gexc.NotFound:
        return False
    clients.wait_operation(op, zone if kind != "image" else None, f"delete {kind} {name}", timeout_s, poll_s)
    return True


def remover(clients: Clients, kind: str, name: str, zone: str | None, poll_s: float) -> Callable[[], None]:
    """A cleanup for the pipeline: delete the resource (gone already is fine) and wait, bounded."""

    def undo() -> None:
        delete_and_wait(clients, kind, name, zone, CLEANUP_WAIT_S, poll_s)

    return undo


def new_request_id() -> str:
    """A requestId (uuid4): the API ignores a repeated mutation with the same id, so retries are safe."""
    return str(uuid.uuid4())
