"""AWS EC2 instance metadata (IMDS), token first (IMDSv2), plain v1 only on EC2 clones.

Protocol: ``PUT /latest/api/token`` with a TTL header gives a token that every GET carries. A
404/405 on the PUT means an EC2 clone without tokens: plain GETs (v1). A 403 means the endpoint
is disabled: an error, never v1. A PUT that gets no answer is the hop-limit trap (the reply is
dropped one hop too early, e.g. in a bridged container): after a short bound v1 is tried, and
used only if a GET works.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from datasources import hookimpl
from datasources.http import DEFAULT_MAX_BYTES, BodyTooLarge, Response, TransportError, request
from datasources.model import Dmi, FetchContext, Metadata, NotDetected, ProviderError, ProviderInfo

NAME = "aws"
CLOUD = "aws"
BASE_URL = "http://169.254.169.254"
TOKEN_PATH = "/latest/api/token"
TOKEN_TTL_HEADER = "X-aws-ec2-metadata-token-ttl-seconds"
TOKEN_HEADER = "X-aws-ec2-metadata-token"
TOKEN_TTL_SECONDS = 21600
# A token PUT that has not been answered after this long is taken as the hop-limit trap.
TOKEN_PUT_BOUND = 1.0
META = "/latest/meta-data/"
# Concurrent reads after the probe (the user-data and key reads dominate).
PARALLEL_READS = 3
HOP_LIMIT_HINT = (
    "IMDSv2 token request got no answer within {:.1f} s; the instance's "
    "HttpPutResponseHopLimit may be too low for this network path (e.g. a container): "
    "trying IMDSv1"
)


@hookimpl
def datasources_providers() -> list[ProviderInfo]:
    """The aws provider: EC2 IMDS at 169.254.169.254."""
    return [ProviderInfo(NAME, CLOUD, 10, description="AWS EC2 instance metadata (IMDSv2, v1 on clones)")]


@hookimpl
def datasources_base_url(provider: str) -> str | None:
    """The IMDS address."""
    return BASE_URL if provider == NAME else None


def claims_aws(dmi: Dmi) -> bool:
    """True when DMI names AWS: vendor ``Amazon EC2`` or a UUID starting with ``ec2`` (either byte order)."""
    if dmi.sys_vendor.strip() == "Amazon EC2":
        return True
    uuid = dmi.product_uuid.strip().lower()
    if uuid.startswith("ec2"):
        return True
    first = uuid[:8]
    swapped = first[6:8] + first[4:6] + first[2:4] + first[0:2]
    return len(first) == 8 and swapped.startswith("ec2")


@hookimpl
def datasources_dmi_claims(dmi: Dmi) -> list[str] | None:
    """Claim ``aws`` when DMI names Amazon EC2."""
    return [CLOUD] if claims_aws(dmi) else None


@hookimpl
def datasources_fetch(provider: str, ctx: FetchContext) -> Metadata | None:
    """Read instance id, hostnames, IPs, placement, public keys and user-data from IMDS."""
    if provider != NAME:
        return None
    return _Imds(ctx).crawl()


class _Imds:
    """One IMDS session: token handling and typed GETs."""

    def __init__(self, ctx: FetchContext) -> None:
        self.ctx = ctx
        self.base = ctx.base_url or BASE_URL
        self.token: str | None = None
        self.v1 = False
        self.claimed = claims_aws(ctx.dmi)

    # -- first contact ----------------------------------------------------------------------

    def _not_here(self, why: str) -> Exception:
        """NotDetected, or ProviderError when DMI says this is AWS."""
        if self.claimed:
            return ProviderError(f"{why} (DMI names AWS)")
        return NotDetected(why)

    def _put_token(self, first: bool) -> None:
        bound = min(self.ctx.deadline, time.monotonic() + TOKEN_PUT_BOUND) if first else self.ctx.deadline
        try:
            resp = request(
                "PUT",
                self.base + TOKEN_PATH,
                deadline=bound,
                headers={TOKEN_TTL_HEADER: str(TOKEN_TTL_SECONDS)},
                max_bytes=4096,
            )
        except TransportError as exc:
            if first and exc.kind in ("refused", "dns", "unreachable"):
                raise self._not_here(f"{exc.kind}: {self.base}") from None
            if first and exc.kind == "timeout":
                self._after_silent_put()
                return
            raise ProviderError(f"token request failed: {exc}") from None
        except BodyTooLarge:
            raise ProviderError("token answer too large") from None
        if _is_other_cloud(resp):
            raise NotDetected("the metadata server is GCP's")
        if resp.status == 200:
            token = resp.text().strip()
            if not token or not token.isascii() or not token.isprintable() or " " in token:
                raise ProviderError("token request answered with garbage")
            self.token = token
        elif resp.status in (404, 405) and first:
            self.v1 = True
        elif resp.status == 403:
            raise ProviderError("IMDS endpoint disabled (token request answered 403)")
        else:
            raise ProviderError(f"token request answered HTTP {resp.status}")

    def _after_silent_put(self) -> None:
        """The token PUT got no answer: use v1 only if a plain GET works."""
        try:
            resp = self._raw_get(META + "instance-id")
        except TransportError as exc:
            if exc.kind == "timeout":
                raise self._not_here("no answer before deadline") from None
            raise self._not_here(f"{exc.kind}: {self.base}") from None
        if resp.status == 200:
            self.ctx.log(HOP_LIMIT_HINT.format(TOKEN_PUT_BOUND))
            self.v1 = True
            return
        if resp.status == 401:
            raise ProviderError(
                "IMDSv2 is required but the token request got no answer "
                "(HttpPutResponseHopLimit too low for this network path?)"
            )
        raise self._not_here(f"token request unanswered and GET answered HTTP {resp.status}")

    # -- GETs -------------------------------------------------------------------------------

    def _raw_get(self, path: str, max_bytes: int | None = None) -> Response:
        headers = {TOKEN_HEADER: self.token} if self.token else {}
        return request(
            "GET",
            self.base + path,
            deadline=self.ctx.deadline,
            headers=headers,
            max_bytes=max_bytes or DEFAULT_MAX_BYTES,
        )

    def get(self, path: str, optional: bool = True, max_bytes: int | None = None) -> bytes | None:
        """GET ``path``: the body, or None on 404 when ``optional``.

        :raises ProviderError: any other failure (the cloud has answered before).
        """
        refreshed = False
        while True:
            try:
                resp = self._raw_get(path, max_bytes)
            except TransportError as exc:
                raise ProviderError(f"GET {path}: {exc}") from None
            except BodyTooLarge:
                raise ProviderError(f"GET {path}: body too large") from None
            if resp.status == 401 and not self.v1 and not refreshed:
                refreshed = True
                self._put_token(first=False)
                continue
            if resp.status == 200:
                return resp.body
            if resp.status == 404 and optional:
                return None
            if resp.status == 401:
                raise ProviderError(f"GET {path}: HTTP 401 (token refused)")
            raise ProviderError(f"GET {path}: HTTP {resp.status}")

    def text(self, path: str) -> str | None:
        """An optional leaf as stripped text (None when missing or empty)."""
        body = self.get(path)
        if body is None:
            return None
        value = body.decode("utf-8", errors="replace").strip()
        return value or None

    # -- the crawl --------------------------------------------------------------------------

    def crawl(self) -> Metadata:
        """Probe, then read everything the node needs."""
        self._put_token(first=True)
        first = self._first_get()
        if self.v1:
            self._reject_openstack()
        instance_id = first.decode("utf-8", errors="replace").strip()
        if not instance_id or not instance_id.isprintable():
            raise ProviderError("instance-id is empty or garbage")
        leaves = _in_parallel(
            {
                "userdata": lambda: self.get("/latest/user-data"),
                "ssh_keys": self._public_keys,
                "document": lambda: self.get("/latest/dynamic/instance-identity/document"),
                "hostname": lambda: self.text(META + "hostname"),
                "local_hostname": lambda: self.text(META + "local-hostname"),
                "local_ipv4": lambda: self.text(META + "local-ipv4"),
                "public_ipv4": lambda: self.text(META + "public-ipv4"),
                "zone": lambda: self.text(META + "placement/availability-zone"),
            }
        )
        zone = _opt_str(leaves["zone"])
        userdata = leaves["userdata"]
        return Metadata(
            provider=NAME,
            instance_id=instance_id,
            hostname=_opt_str(leaves["hostname"]),
            local_hostname=_opt_str(leaves["local_hostname"]),
            local_ipv4=_opt_str(leaves["local_ipv4"]),
            public_ipv4=_opt_str(leaves["public_ipv4"]),
            zone=zone,
            region=_region(leaves["document"], zone),
            ssh_keys=list(leaves["ssh_keys"]) if isinstance(leaves["ssh_keys"], list) else [],
            userdata=userdata if isinstance(userdata, bytes) else None,
        )

    def _first_get(self) -> bytes:
        """instance-id: on a v1 clone a 404 (or a refusal) means this is not an EC2 tree."""
        try:
            resp = self._raw_get(META + "instance-id")
        except TransportError as exc:
            raise ProviderError(f"GET instance-id: {exc}") from None
        except BodyTooLarge:
            raise ProviderError("GET instance-id: body too large") from None
        if resp.status == 200:
            return resp.body
        if resp.status == 401 and not self.v1:
            body = self.get(META + "instance-id", optional=False)
            assert body is not None
            return body
        if self.v1 and resp.status in (401, 403, 404):
            raise NotDetected(f"no EC2 metadata tree (instance-id answered HTTP {resp.status})")
        raise ProviderError(f"GET instance-id: HTTP {resp.status}")

    def _reject_openstack(self) -> None:
        """An EC2 clone that also serves ``/openstack`` is OpenStack's metadata service."""
        try:
            resp = self._raw_get("/openstack")
        except (TransportError, BodyTooLarge):
            return
        if resp.status == 200:
            raise NotDetected("EC2-compatible endpoint belongs to OpenStack")

    def _public_keys(self) -> list[str]:
        listing = self.text(META + "public-keys/")
        keys: list[str] = []
        for line in (listing or "").splitlines():
            index = line.split("=", 1)[0].strip()
            if not index.isdigit():
                continue
            body = self.text(f"{META}public-keys/{index}/openssh-key")
            keys.extend(k.strip() for k in (body or "").splitlines() if k.strip())
        return keys


def _opt_str(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _region(document: object, zone: str | None) -> str | None:
    """The region of the identity document, else the zone without its letter."""
    if isinstance(document, bytes) and document:
        from datasources.providers._documents import parse_json_object

        try:
            region = parse_json_object(document, "instance identity document").get("region")
        except ProviderError:
            region = None  # the zone still gives it
        if isinstance(region, str) and region.strip():
            return region.strip()
    if zone and zone[-1].isalpha():
        return zone[:-1]
    return None


def _in_parallel(jobs: dict[str, Callable[[], object]], workers: int = PARALLEL_READS) -> dict[str, object]:
    """Run the reads on a few threads (each is one or a few GETs); re-raise the first failure in order.

    Few workers: IMDS is fast, and small servers (the emulator, clones) have small accept queues.
    """
    results: dict[str, object] = {}
    errors: dict[str, BaseException] = {}
    pending = list(jobs.items())
    lock = threading.Lock()

    def worker() -> None:
        while True:
            with lock:
                if not pending:
                    return
                name, job = pending.pop(0)
            try:
                results[name] = job()
            except BaseException as exc:  # handed to the caller below
                errors[name] = exc

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for name in jobs:
        if name in errors:
            raise errors[name]
    return results


def _is_other_cloud(resp: Response) -> bool:
    """GCP's metadata server (also at 169.254.169.254) marks every answer with Metadata-Flavor."""
    return resp.headers.get("metadata-flavor", "").lower() == "google"
