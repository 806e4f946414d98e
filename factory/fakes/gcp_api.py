"""A fake of the Compute Engine REST API on 127.0.0.1, for ``factory bake gcp`` tests and local trials.

It speaks the real wire protocol to the real ``google-cloud-compute`` SDK (REST transport): the same
paths (``/compute/v1/projects/{project}/zones/{zone}/instances/{name}`` ...), JSON bodies, status codes,
error documents (``{"error": {"code", "message", "errors": [{"reason"}]}}``) and long-running
``Operation`` objects that complete after a few polls. Only the calls the gcp backend makes exist:

``projects.get``, ``images.{get,getFromFamily,insert,delete,list,setLabels}``,
``instances.{insert,get,delete,getSerialPortOutput,aggregatedList}``, ``disks.{aggregatedList,delete}``,
``zoneOperations.get``, ``globalOperations.get``, and the OAuth token endpoint ``POST /token``.

Authentication is checked: every API call needs ``Authorization: Bearer <token>`` where the token is
either a service-account self-signed JWT (RS256, verified against the public key of a key file made
by :func:`write_service_account_file`) or an access token issued by ``/token``. Missing or bad
credentials get the API's 401 ``UNAUTHENTICATED``.

Faults: :meth:`FakeGcp.fail` answers a chosen call (by its API method name, e.g. ``images.insert``)
with an HTTP error; :meth:`FakeGcp.fail_operation` makes the next operation of a call end with an
error, as quota or capacity errors do. ``python -m factory.fakes.gcp_api --help`` runs it standalone.
"""

from __future__ import annotations

import argparse
import json
import re
import urllib.parse
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from email.message import Message
from pathlib import Path
from typing import Any

from factory.fakes import httpfake
from factory.fakes.gcp_auth import verify_jwt, write_service_account_file
from factory.fakes.gcp_model import Model
from factory.fakes.gcp_rules import ZONES, ApiError
from factory.fakes.httpfake import LoopbackServer, Reply, Routes, serve_until_signalled

PREFIX = "/compute/v1/projects/"
FILTER_RE = re.compile(r'^\(?\s*labels\.([a-z0-9_-]+)\s*(=|!=|:)\s*"?([a-z0-9_*-]*)"?\s*\)?$')


@dataclass
class Fault(httpfake.Fault):
    """Answer a call with this HTTP error ``times`` times (negative: always), after ``after`` good calls."""

    times: int = 1
    status: int = 503
    reason: str = "backendError"
    message: str = ""


@dataclass
class Parsed:
    """What a handler sees of a request."""

    method: str
    parts: list[str]
    query: dict[str, str]
    body: dict[str, Any]


Handler = Callable[[Parsed], dict[str, Any]]


def _matches(labels: dict[str, str], flt: str) -> bool:
    if not flt:
        return True
    match = FILTER_RE.match(flt.strip())
    if not match:
        raise ApiError(
            400, "invalid", f"Invalid value for field 'filter': '{flt}'. Invalid list filter expression."
        )
    key, op, value = match.groups()
    if op == ":":
        return key in labels if value == "*" else labels.get(key, "").startswith(value)
    return (labels.get(key) == value) == (op == "=")


@dataclass
class FakeGcp:
    """The fake API: a :class:`Model` behind a threaded HTTP server. Use as a context manager."""

    model: Model = field(default_factory=Model)
    faults: dict[str, Fault] = field(default_factory=dict)
    calls: list[str] = field(default_factory=list)
    bodies: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    public_keys: dict[str, Any] = field(default_factory=dict)
    tokens: set[str] = field(default_factory=set)
    require_auth: bool = True

    def __post_init__(self) -> None:
        """The route table (named by API method) and the loopback server (not started)."""
        self.routes: Routes[Handler] = Routes()
        for verb, template, call, handler in self._route_table():
            self.routes.add(verb, template, handler, name=call)
        self._http = LoopbackServer("fake-gcp", self._answer, ("GET", "POST", "DELETE", "PATCH"))

    # -- control -----------------------------------------------------------------------------------
    def fail(
        self,
        call: str,
        status: int = 503,
        reason: str = "backendError",
        times: int = 1,
        after: int = 0,
        message: str = "",
    ) -> None:
        """Answer ``call`` (``images.insert``, ``zoneOperations.get``, ...) with an HTTP error."""
        message = message or f"Injected failure of {call}"
        self.faults[call] = Fault(times, after, status=status, reason=reason, message=message)

    def fail_operation(
        self, call: str, code: str = "QUOTA_EXCEEDED", message: str = "", http_status: int = 403
    ) -> None:
        """Make the next operation started by ``call`` finish with an error."""
        with self.model.lock:
            self.model.op_faults[call] = (code, message or f"Injected operation error of {call}", http_status)

    def add_service_account(self, email: str, public_key_pem: bytes) -> None:
        """Trust self-signed JWTs of ``email`` signed by this key."""
        from cryptography.hazmat.primitives.serialization import load_pem_public_key

        self.public_keys[email] = load_pem_public_key(public_key_pem)

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT`` (use as ``FACTORY_GCP_ENDPOINT``)."""
        return f"http://127.0.0.1:{self._http.port}"

    def start(self, port: int = 0) -> FakeGcp:
        """Serve on 127.0.0.1 in a daemon thread."""
        self._http.start(port)
        return self

    def stop(self) -> None:
        """Stop serving."""
        self._http.stop()

    def _answer(self, method: str, path: str, headers: Message, raw: bytes) -> Reply:
        status, doc = self.handle(method, path, dict(headers.items()), raw)
        return Reply(status, json.dumps(doc).encode(), "application/json; charset=UTF-8")

    def __enter__(self) -> FakeGcp:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- request handling ---------------------------------------------------------------------------
    def handle(
        self, method: str, path: str, headers: dict[str, str], raw: bytes
    ) -> tuple[int, dict[str, Any]]:
        """Answer one request: (status, JSON document)."""
        url = urllib.parse.urlsplit(path)
        query = {k: v[0] for k, v in urllib.parse.parse_qs(url.query).items()}
        try:
            body = json.loads(raw) if raw.strip() else {}
        except json.JSONDecodeError:
            return 400, ApiError(400, "parseError", "Parse Error").body()
        if method == "POST" and url.path == "/token":
            return self._token(raw)
        try:
            call, handler, parts = self._route(method, url.path)
            self.calls.append(call)
            if body:
                self.bodies.append((call, body))
            self._check_auth(headers)
            fault = self.faults.get(call)
            if fault and fault.due():
                raise ApiError(fault.status, fault.reason, fault.message)
            with self.model.lock:
                return 200, handler(Parsed(method, parts, query, body))
        except ApiError as exc:
            return exc.status, exc.body()

    def _token(self, raw: bytes) -> tuple[int, dict[str, Any]]:
        form = urllib.parse.parse_qs(raw.decode(errors="replace"))
        if form.get("grant_type", [""])[0] != "urn:ietf:params:oauth:grant-type:jwt-bearer":
            return 400, {"error": "unsupported_grant_type", "error_description": "Invalid grant_type"}
        try:
            self._verify_jwt(form.get("assertion", [""])[0])
        except ApiError:
            return 400, {"error": "invalid_grant", "error_description": "Invalid JWT Signature."}
        token = "ya29.fake-" + uuid.uuid4().hex
        self.tokens.add(token)
        return 200, {"access_token": token, "expires_in": 3599, "token_type": "Bearer"}

    def _check_auth(self, headers: dict[str, str]) -> None:
        if not self.require_auth:
            return
        value = next((v for k, v in headers.items() if k.lower() == "authorization"), "")
        if not value.startswith("Bearer "):
            raise ApiError(
                401,
                "required",
                "Request is missing required authentication credential. Expected OAuth 2 access token, "
                "login cookie or other valid authentication credential.",
            )
        token = value[len("Bearer ") :].strip()
        if token not in self.tokens:
            self._verify_jwt(token)

    def _verify_jwt(self, token: str) -> None:
        verify_jwt(token, self.public_keys)

    def _route(self, method: str, path: str) -> tuple[str, Handler, list[str]]:
        if not path.startswith(PREFIX):
            raise ApiError(404, "notFound", f"The requested URL {path} was not found on this server.")
        rest = path[len(PREFIX) :]
        found = self.routes.match(method, rest)
        if found is None:
            raise ApiError(404, "notFound", f"The requested URL {path} was not found on this server.")
        parts = [urllib.parse.unquote(p) for p in rest.split("/")]
        return found[0].name, found[0].handler, parts

    def _route_table(self) -> list[tuple[str, str, str, Handler]]:
        return [
            ("GET", "{}", "projects.get", self._project),
            ("GET", "{}/global/images/family/{}", "images.getFromFamily", self._image_family),
            ("GET", "{}/global/images/{}", "images.get", self._image_get),
            ("DELETE", "{}/global/images/{}", "images.delete", self._image_delete),
            ("POST", "{}/global/images/{}/setLabels", "images.setLabels", self._image_labels),
            ("POST", "{}/global/images", "images.insert", self._image_insert),
            ("GET", "{}/global/images", "images.list", self._image_list),
            ("GET", "{}/global/operations/{}", "globalOperations.get", self._global_op),
            ("GET", "{}/zones/{}/operations/{}", "zoneOperations.get", self._zone_op),
            ("POST", "{}/zones/{}/instances", "instances.insert", self._instance_insert),
            ("GET", "{}/zones/{}/instances/{}", "instances.get", self._instance_get),
            ("DELETE", "{}/zones/{}/instances/{}", "instances.delete", self._instance_delete),
            ("GET", "{}/zones/{}/instances/{}/serialPort", "instances.getSerialPortOutput", self._serial),
            ("DELETE", "{}/zones/{}/disks/{}", "disks.delete", self._disk_delete),
            ("GET", "{}/aggregated/instances", "instances.aggregatedList", self._agg_instances),
            ("GET", "{}/aggregated/disks", "disks.aggregatedList", self._agg_disks),
        ]

    # -- handlers (model lock held) ------------------------------------------------------------------
    def _project(self, req: Parsed) -> dict[str, Any]:
        m = self.model
        m.check_project(req.parts[0])
        return {
            "kind": "compute#project",
            "id": m.project_number,
            "name": m.project,
            "defaultServiceAccount": f"{m.project_number}-compute@developer.gserviceaccount.com",
            "selfLink": m.link("")[:-1],
            "creationTimestamp": "2020-01-01T00:00:00.000-07:00",
        }

    def _image_family(self, req: Parsed) -> dict[str, Any]:
        project = req.parts[0]
        if project != self.model.project and project not in ("ubuntu-os-cloud",):
            self.model.check_project(project)
        return self.model.image_from_family(project, req.parts[4])

    def _image_get(self, req: Parsed) -> dict[str, Any]:
        return self.model.image(req.parts[0], req.parts[3])

    def _image_delete(self, req: Parsed) -> dict[str, Any]:
        self.model.check_project(req.parts[0])
        return self.model.delete_image(req.parts[3], req.query.get("requestId"))

    def _image_labels(self, req: Parsed) -> dict[str, Any]:
        self.model.check_project(req.parts[0])
        return self.model.set_image_labels(req.parts[3], req.body)

    def _image_insert(self, req: Parsed) -> dict[str, Any]:
        self.model.check_project(req.parts[0])
        force = req.query.get("forceCreate", "").lower() == "true"
        return self.model.insert_image(req.body, req.query.get("requestId"), force)

    def _page(self, rows: list[dict[str, Any]], req: Parsed, kind: str) -> dict[str, Any]:
        flt = req.query.get("filter", "")
        _matches({}, flt)  # a bad expression is a 400 even when nothing would be listed
        rows = [r for r in rows if _matches(r.get("labels", {}), flt)]
        size = int(req.query.get("maxResults") or 500)
        start = int(req.query.get("pageToken") or 0)
        out: dict[str, Any] = {
            "kind": kind,
            "id": f"projects/{self.model.project}",
            "items": rows[start : start + size],
        }
        if start + size < len(rows):
            out["nextPageToken"] = str(start + size)
        return out

    def _image_list(self, req: Parsed) -> dict[str, Any]:
        project = req.parts[0]
        self.model.check_project(project)
        rows = [img for (proj, _), img in sorted(self.model.images.items()) if proj == project]
        return self._page(rows, req, "compute#imageList")

    def _global_op(self, req: Parsed) -> dict[str, Any]:
        self.model.check_project(req.parts[0])
        return self.model.poll_operation(req.parts[3], None)

    def _zone_op(self, req: Parsed) -> dict[str, Any]:
        self.model.check_project(req.parts[0])
        self.model.check_zone(req.parts[2])
        return self.model.poll_operation(req.parts[4], req.parts[2])

    def _instance_insert(self, req: Parsed) -> dict[str, Any]:
        self.model.check_project(req.parts[0])
        return self.model.insert_instance(req.parts[2], req.body, req.query.get("requestId"))

    def _instance_get(self, req: Parsed) -> dict[str, Any]:
        self.model.check_project(req.parts[0])
        return self.model.get_instance(req.parts[2], req.parts[4])

    def _instance_delete(self, req: Parsed) -> dict[str, Any]:
        self.model.check_project(req.parts[0])
        return self.model.delete_instance(req.parts[2], req.parts[4], req.query.get("requestId"))

    def _serial(self, req: Parsed) -> dict[str, Any]:
        self.model.check_project(req.parts[0])
        inst = self.model.instance(req.parts[2], req.parts[4])
        text = (
            "cloud-init: running builder user-data\n"
            "k3os-factory builder: downloading ISO\n"
            f"k3os-factory builder: instance {inst['name']} status {inst['status']}\n"
        )
        return {
            "kind": "compute#serialPortOutput",
            "contents": text,
            "start": "0",
            "next": str(len(text)),
            "selfLink": inst["selfLink"] + "/serialPort",
        }

    def _disk_delete(self, req: Parsed) -> dict[str, Any]:
        self.model.check_project(req.parts[0])
        return self.model.delete_disk(req.parts[2], req.parts[4], req.query.get("requestId"))

    def _aggregated(
        self, req: Parsed, rows: dict[tuple[str, str], dict[str, Any]], key: str, kind: str
    ) -> dict[str, Any]:
        self.model.check_project(req.parts[0])
        flt = req.query.get("filter", "")
        _matches({}, flt)
        items: dict[str, Any] = {}
        for zone in ZONES:
            found = [
                r for (z, _), r in sorted(rows.items()) if z == zone and _matches(r.get("labels", {}), flt)
            ]
            scope = f"zones/{zone}"
            if found:
                items[scope] = {key: found}
            else:
                items[scope] = {
                    "warning": {
                        "code": "NO_RESULTS_ON_PAGE",
                        "message": f"There are no results for scope '{scope}' on this page.",
                        "data": [{"key": "scope", "value": scope}],
                    }
                }
        return {"kind": kind, "id": f"projects/{self.model.project}/aggregated/{key}", "items": items}

    def _agg_instances(self, req: Parsed) -> dict[str, Any]:
        return self._aggregated(req, self.model.instances, "instances", "compute#instanceAggregatedList")

    def _agg_disks(self, req: Parsed) -> dict[str, Any]:
        return self._aggregated(req, self.model.disks, "disks", "compute#diskAggregatedList")


def main(argv: list[str] | None = None) -> int:
    """``python -m factory.fakes.gcp_api``: serve until Ctrl-C."""
    parser = argparse.ArgumentParser(
        description="Fake Compute Engine API on 127.0.0.1 (for factory bake gcp)."
    )
    parser.add_argument("--port", type=int, default=8089)
    parser.add_argument("--project", default="fake-project")
    parser.add_argument(
        "--credentials", type=Path, default=Path("fake-gcp-sa.json"), help="service-account file to write"
    )
    parser.add_argument("--op-polls", type=int, default=2, help="polls before an operation completes")
    parser.add_argument(
        "--poweroff-after", type=int, default=3, help="instance GETs before a builder powers off (-1: never)"
    )
    args = parser.parse_args(argv)
    model = Model(
        project=args.project,
        op_polls=args.op_polls,
        poweroff_after=None if args.poweroff_after < 0 else args.poweroff_after,
    )
    fake = FakeGcp(model=model).start(args.port)
    write_service_account_file(args.credentials, fake, args.project)
    print(f"fake Compute Engine API on {fake.url} (project {args.project})")
    creds = args.credentials.resolve()
    print(f"  export FACTORY_GCP_ENDPOINT={fake.url} GOOGLE_APPLICATION_CREDENTIALS={creds}")
    serve_until_signalled(fake.stop)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
