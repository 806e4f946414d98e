"""Plumbing shared by the HTTP metadata-service providers (gcp, openstack, packet, scaleway, vultr,
hetzner, digitalocean).

:class:`MetadataService` turns transport failures into the two outcomes the engine tells apart:
before the service has answered anything, silence (refused, timeout, unreachable) means
"not this cloud" (:class:`NotDetected`) unless DMI names the cloud; once it has answered, or when
what came back is broken (truncated, not HTTP, too large), it is "this cloud, but it failed"
(:class:`ProviderError`). The small coercion helpers read hostile documents without ever raising
anything but :class:`ProviderError`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from datasources import http
from datasources.model import FetchContext, NotDetected, ProviderError
from datasources.providers._documents import parse_json_object as parse_json_object  # re-exported

# Transport failures where nothing HTTP came back: the service may simply not be there.
_SILENT_KINDS = frozenset({"refused", "unreachable", "timeout", "dns", "reset"})
# GCP's metadata server (also reachable at 169.254.169.254) marks every answer with this.
_GCP_FLAVOR = ("metadata-flavor", "google")


def describe_transport_error(exc: http.TransportError) -> str:
    """A short human description of a transport failure."""
    if exc.kind == "timeout":
        return "no answer before deadline"
    if exc.kind == "refused":
        return "connection refused"
    return f"{exc.kind}: {exc.detail}"


class MetadataService:
    """One provider's conversation with its metadata service during one fetch.

    ``claimed`` says whether DMI names this cloud (then silence is an error, not absence);
    ``headers`` are sent with every request.
    """

    def __init__(self, ctx: FetchContext, *, claimed: bool, headers: Mapping[str, str] | None = None) -> None:
        self.ctx = ctx
        self.claimed = claimed
        self.headers = dict(headers or {})
        self.answered = False

    def get(
        self, path: str, *, headers: Mapping[str, str] | None = None, source_port: int | None = None
    ) -> http.Response:
        """GET ``base_url + path`` within the deadline (5xx/429 retried by the HTTP client).

        :raises NotDetected: no answer at all and nothing answered before (and DMI is silent).
        :raises ProviderError: any other failure to get an HTTP answer.
        """
        try:
            resp = http.request(
                "GET",
                self.ctx.base_url + path,
                deadline=self.ctx.deadline,
                headers={**self.headers, **(headers or {})},
                source_port=source_port,
            )
        except http.BodyTooLarge as exc:
            raise ProviderError(f"GET {path}: {exc}") from None
        except http.TransportError as exc:
            raise self.transport_failure(path, exc) from None
        self.answered = True
        return resp

    def not_this_cloud(self, why: str) -> NotDetected | ProviderError:
        """:class:`NotDetected`, or :class:`ProviderError` when DMI names this cloud."""
        if self.claimed:
            return ProviderError(f"{why} (DMI names this cloud)")
        return NotDetected(why)

    def probe(self, path: str, cloud: str) -> bytes:
        """GET the provider's native path (its first request): the body of a 2xx answer.

        Other clouds share the address 169.254.169.254 and answer a path they do not serve with
        a 4xx: 404, or 401/403 from AWS IMDS when tokens are required or the endpoint is off.
        That, or an answer marked as GCP's, is "not this cloud" (unless DMI names ``cloud``).
        A 5xx or 429 that outlasted the retries is "this cloud, but it failed".

        :raises NotDetected: see above.
        :raises ProviderError: no 2xx answer for another reason.
        """
        return self.first_answer(self.get(path), path, cloud)

    def first_answer(self, resp: http.Response, path: str, cloud: str) -> bytes:
        """Judge the answer to the native path as :meth:`probe` does (for callers that GET it)."""
        if resp.headers.get(_GCP_FLAVOR[0], "").strip().lower() == _GCP_FLAVOR[1]:
            raise self.not_this_cloud(f"GET {path}: answered by GCP's metadata server")
        if 400 <= resp.status < 500 and resp.status != 429:
            raise self.not_this_cloud(f"GET {path}: HTTP {resp.status} (no {cloud} metadata)")
        return require_ok(resp, path)

    def fetch_json(self, path: str, cloud: str, what: str) -> dict[str, Any]:
        """:meth:`probe` ``path`` and parse the answer as a JSON object (``what`` names it in errors)."""
        return parse_json_object(self.probe(path, cloud), what)

    def transport_failure(self, path: str, exc: http.TransportError) -> NotDetected | ProviderError:
        """The exception a transport failure on ``path`` stands for at this point of the fetch."""
        what = describe_transport_error(exc)
        if self.answered or exc.kind not in _SILENT_KINDS:
            return ProviderError(f"GET {path}: {what}")
        return self.not_this_cloud(f"GET {path}: {what}")


def status_error(resp: http.Response, path: str) -> ProviderError:
    """The error for an unexpected HTTP status."""
    retried = " after retries" if resp.status >= 500 or resp.status == 429 else ""
    return ProviderError(f"GET {path}: HTTP {resp.status}{retried}")


def require_ok(resp: http.Response, path: str) -> bytes:
    """The body of a 2xx answer, else :class:`ProviderError`."""
    if not resp.ok:
        raise status_error(resp, path)
    return resp.body


def body_unless_missing(resp: http.Response, path: str) -> bytes | None:
    """The body of a 2xx answer, None for 404 (and 204/empty), else :class:`ProviderError`."""
    if resp.status == 404:
        return None
    body = require_ok(resp, path)
    return body or None


def text(value: object) -> str | None:
    """A non-empty stripped string from a string or integer value, else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return value.strip() or None
    return None


def mapping(value: object) -> dict[str, Any]:
    """``value`` when it is a dict, else an empty dict."""
    return value if isinstance(value, dict) else {}


def sequence(value: object) -> list[Any]:
    """``value`` when it is a list, else an empty list."""
    return value if isinstance(value, list) else []


def ipv4(value: object) -> str | None:
    """``value`` when it is a dotted-quad IPv4 address, else None."""
    candidate = text(value)
    if candidate is None:
        return None
    octets = candidate.split(".")
    if len(octets) != 4 or not all(o.isdigit() and len(o) <= 3 and int(o) <= 255 for o in octets):
        return None
    return candidate


def key_lines(values: Iterable[object]) -> list[str]:
    """SSH key lines from strings (each may hold several lines): stripped, no blanks or comments,
    no duplicates, order kept. Non-strings are ignored."""
    keys: list[str] = []
    for value in values:
        if not isinstance(value, str):
            continue
        for line in value.splitlines():
            key = line.strip()
            if key and not key.startswith("#") and key not in keys:
                keys.append(key)
    return keys


def utf8(value: str) -> bytes:
    """Encode text from a document as UTF-8 without ever failing.

    Escaped bytes (``\\udc80``-``\\udcff``, how non-UTF-8 bytes travel in JSON strings) become
    those bytes again; other lone surrogates pass through as they are.
    """
    try:
        return value.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        return value.encode("utf-8", "surrogatepass")


def userdata_from_text(value: object) -> bytes | None:
    """Userdata carried as a string inside a document: None when absent or empty."""
    if isinstance(value, str) and value:
        return utf8(value)
    return None
