"""boto3 plumbing for the AWS backend: clients with botocore retries, error helpers, tag helpers and
the removal of images/instances. boto3 is imported here only, and only when the AWS backend is used.

Endpoints and credentials come from the standard boto3 chain (env, profiles, SSO, IMDS); boto3 >= 1.28
honours ``AWS_ENDPOINT_URL`` / ``AWS_ENDPOINT_URL_EC2`` natively, which is how tests reach a moto server.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable
from functools import partial
from typing import TYPE_CHECKING, Any

import boto3
import botocore.config
import botocore.exceptions

from factory.pipeline import BAKE_ID_TAG, CREATED_TAG, UsageError

if TYPE_CHECKING:
    from mypy_boto3_ec2.client import EC2Client

THROTTLE_CODES = frozenset(
    {
        "RequestLimitExceeded",
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "TooManyRequestsException",
        "RequestThrottled",
        "RequestThrottledException",
        "SlowDown",
        "ServiceUnavailable",
        "Unavailable",
        "InternalError",
        "InternalFailure",
    }
)
NOT_FOUND_SUFFIXES = (".NotFound", ".Malformed")


def retry_config() -> botocore.config.Config:
    """botocore retries: ``AWS_RETRY_MODE`` (default ``standard``) and ``AWS_MAX_ATTEMPTS`` (default 8),
    which counts every attempt, the first included, as in the AWS CLI and SDKs (botocore's own
    ``max_attempts`` key counts retries only, hence ``total_max_attempts``)."""
    mode = os.environ.get("AWS_RETRY_MODE") or "standard"
    if mode not in ("standard", "adaptive", "legacy"):
        raise UsageError(f"AWS_RETRY_MODE={mode!r}: use standard or adaptive")
    raw = os.environ.get("AWS_MAX_ATTEMPTS") or "8"
    try:
        attempts = int(raw)
    except ValueError:
        raise UsageError(f"AWS_MAX_ATTEMPTS={raw!r}: not an integer") from None
    if attempts < 1:
        raise UsageError(f"AWS_MAX_ATTEMPTS={raw!r}: must be at least 1 (the first attempt counts)")
    return botocore.config.Config(
        retries={"mode": mode, "total_max_attempts": attempts},  # type: ignore[arg-type]
        user_agent_extra="k3os-factory",
        connect_timeout=10,
        read_timeout=60,
    )


class Clients:
    """One boto3 session and a cache of clients per (service, region). Thread-safe enough for our use:
    clients are created up front for every region before threads start."""

    def __init__(self, region: str | None = None) -> None:
        """Create the session; ``region`` falls back to the boto3 chain (AWS_REGION, profile).
        UsageError for an unknown ``AWS_PROFILE`` or no region at all."""
        try:
            self.session = boto3.session.Session()
            # AWS_REGION is what the other AWS SDKs and the CLI v2 read first; botocore reads only
            # AWS_DEFAULT_REGION (and the profile), so honour AWS_REGION here or it silently does nothing.
            self.region = region or os.environ.get("AWS_REGION") or self.session.region_name or ""
        except botocore.exceptions.BotoCoreError as exc:
            usage = credentials_error(exc)
            if usage is None:
                raise
            raise usage from None
        if not self.region:
            raise UsageError("no AWS region: pass --region or set AWS_REGION / AWS_DEFAULT_REGION")
        self._config = retry_config()
        self._cache: dict[tuple[str, str], Any] = {}

    def ec2(self, region: str | None = None) -> EC2Client:
        """EC2 client for ``region`` (default: the main region)."""
        return self._client("ec2", region or self.region)  # type: ignore[no-any-return]

    def client(self, service: str, region: str | None = None) -> Any:
        """Any other client (``sts``, ``ssm``)."""
        return self._client(service, region or self.region)

    def _client(self, service: str, region: str) -> Any:
        key = (service, region)
        if key not in self._cache:
            self._cache[key] = self.session.client(service, region_name=region, config=self._config)  # type: ignore[call-overload]
        return self._cache[key]


def error_code(exc: BaseException) -> str:
    """The AWS error code of a botocore ClientError ("" for anything else)."""
    if isinstance(exc, botocore.exceptions.ClientError):
        return str(exc.response.get("Error", {}).get("Code", ""))
    return ""


def is_transient(exc: BaseException) -> bool:
    """Throttling, 5xx and connection hiccups: worth another poll."""
    if isinstance(exc, botocore.exceptions.ClientError):
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        return error_code(exc) in THROTTLE_CODES or status >= 500
    return isinstance(exc, botocore.exceptions.EndpointConnectionError | botocore.exceptions.ReadTimeoutError)


def is_not_found(exc: BaseException) -> bool:
    """``InvalidInstanceID.NotFound``, ``InvalidAMIID.NotFound``, ``InvalidSnapshot.NotFound``, ..."""
    return error_code(exc).endswith(NOT_FOUND_SUFFIXES)


def credentials_error(exc: BaseException) -> UsageError | None:
    """A clear UsageError for missing/invalid credentials, else None."""
    if isinstance(exc, botocore.exceptions.NoCredentialsError | botocore.exceptions.PartialCredentialsError):
        return UsageError(
            "no AWS credentials found: set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE, "
            "or run in an environment with a role (see docs/aws.md)"
        )
    if isinstance(exc, botocore.exceptions.ProfileNotFound | botocore.exceptions.SSOError):
        return UsageError(f"AWS credentials: {exc}")
    if isinstance(
        exc, botocore.exceptions.TokenRetrievalError | botocore.exceptions.UnauthorizedSSOTokenError
    ):
        return UsageError(f"AWS credentials: {exc}")
    code = error_code(exc)
    if code in (
        "InvalidClientTokenId",
        "SignatureDoesNotMatch",
        "ExpiredToken",
        "UnrecognizedClientException",
    ):
        return UsageError(f"AWS credentials rejected ({code}): {exc}")
    return None


def tag_list(tags: dict[str, str]) -> list[Any]:
    """``{"k": "v"}`` -> ``[{"Key": "k", "Value": "v"}]``."""
    return [{"Key": k, "Value": v} for k, v in tags.items()]


def tag_dict(tags: Iterable[Any] | None) -> dict[str, str]:
    """AWS ``Tags`` list -> dict."""
    return {str(t["Key"]): str(t.get("Value", "")) for t in tags or []}


def base_tags(bake_id: str, name: str, user_tags: dict[str, str]) -> dict[str, str]:
    """Tags every resource of a bake carries: user tags, Name, bake id and creation time."""
    return {
        **user_tags,
        "Name": name,
        BAKE_ID_TAG: bake_id,
        CREATED_TAG: time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def retry_call(
    func: Callable[[], Any], *, attempts: int = 6, delay: float = 1.0, retry_codes: Iterable[str] = ()
) -> Any:
    """Call ``func`` again on transient errors or the given codes (eventual consistency), with backoff."""
    codes = set(retry_codes)
    for attempt in range(attempts):
        try:
            return func()
        except botocore.exceptions.ClientError as exc:
            last = attempt == attempts - 1
            if last or not (is_transient(exc) or error_code(exc) in codes):
                raise
        time.sleep(min(delay * 2**attempt, 10.0))
    return None


def image_snapshots(ec2: EC2Client, image_id: str) -> list[str]:
    """Snapshot ids behind an AMI ([] if the AMI is gone)."""
    try:
        images = ec2.describe_images(ImageIds=[image_id])["Images"]
    except botocore.exceptions.ClientError as exc:
        if is_not_found(exc):
            return []
        raise
    snaps: list[str] = []
    for image in images:
        for bdm in image.get("BlockDeviceMappings", []):
            snap = bdm.get("Ebs", {}).get("SnapshotId")
            if snap:
                snaps.append(snap)
    return snaps


def delete_image(ec2: EC2Client, image_id: str, snapshots: list[str] | None = None) -> None:
    """Deregister an AMI and delete its snapshots (deregister first: a used snapshot cannot go)."""
    snaps = image_snapshots(ec2, image_id) if snapshots is None else snapshots
    try:
        ec2.deregister_image(ImageId=image_id)
    except botocore.exceptions.ClientError as exc:
        if not is_not_found(exc):
            raise
    for snap in snaps:
        try:
            retry_call(partial(ec2.delete_snapshot, SnapshotId=snap), retry_codes=["InvalidSnapshot.InUse"])
        except botocore.exceptions.ClientError as exc:
            if not is_not_found(exc):
                raise


def terminate_instance(ec2: EC2Client, instance_id: str, timeout_s: float, poll_s: float) -> None:
    """Terminate an instance and wait (bounded) until it is ``terminated``."""
    try:
        ec2.terminate_instances(InstanceIds=[instance_id])
    except botocore.exceptions.ClientError as exc:
        if is_not_found(exc):
            return
        raise
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            state = instance_state(ec2, instance_id)
        except botocore.exceptions.ClientError as exc:
            if not is_transient(exc):
                raise
            state = ""
        if state in ("terminated", "gone"):
            return
        time.sleep(poll_s)
    raise TimeoutError(f"instance {instance_id} still not terminated after {int(timeout_s)}s")


def instance_state(ec2: EC2Client, instance_id: str) -> str:
    """The instance's state name, or ``gone`` if EC2 no longer knows it."""
    return str(describe_instance(ec2, instance_id).get("State", {}).get("Name", "gone"))


def describe_instance(ec2: EC2Client, instance_id: str) -> dict[str, Any]:
    """``describe_instances`` for one id ({} when unknown)."""
    try:
        reservations = ec2.describe_instances(InstanceIds=[instance_id])["Reservations"]
    except botocore.exceptions.ClientError as exc:
        if is_not_found(exc):
            return {}
        raise
    for res in reservations:
        for inst in res.get("Instances", []):
            return dict(inst)
    return {}
