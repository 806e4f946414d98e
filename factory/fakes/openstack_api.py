"""A fake OpenStack cloud on 127.0.0.1: Keystone v3, Nova, Glance v2 and Neutron, laid out like
devstack on one port, answering the REST calls ``factory bake/gc/images/whoami openstack`` make with the
real APIs' paths, JSON shapes, status codes and error bodies, so the real openstacksdk talks to it
unchanged. ``OS_AUTH_URL=http://127.0.0.1:PORT/v3`` (plus the usual ``OS_*`` credentials) is all a
client needs: the token's service catalog points compute at ``/compute/v2.1``, image at ``/image`` and
network at ``/networking``.

- Keystone: ``GET /``, ``GET /v3``, ``POST /v3/auth/tokens`` (password with user/project names or ids
  and domains, or an application credential by id or name+user). Answers a token in ``X-Subject-Token``.
- Every other call (except the version documents) needs ``X-Auth-Token`` of an issued token, else 401.
- Nova, Neutron: :mod:`factory.fakes.openstack_nova`; Glance: :mod:`factory.fakes.openstack_glance`;
  the world and its poll-driven clocks: :mod:`factory.fakes.openstack_state`.

Failure injection: :meth:`FakeOpenStackApi.fail` makes one route (``"POST /v2.1/servers"``,
``"POST /v2.1/servers/{id}/action:createImage"``, ``"GET /v2/images/{id}"``, ...; see :attr:`calls`)
answer an error as that service shapes it, optionally after some calls and a number of times.
``python -m factory.fakes.openstack_api --port 0`` serves it until interrupted.
"""

from __future__ import annotations

import argparse
import json
import sys
import urllib.parse
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from email.message import Message
from typing import Any

from factory.fakes import httpfake
from factory.fakes import openstack_glance as glance_mod
from factory.fakes import openstack_nova as nova_mod
from factory.fakes.httpfake import LoopbackServer, Routes, serve_until_signalled
from factory.fakes.openstack_glance import Glance, glance_error
from factory.fakes.openstack_keystone import UNAUTHORIZED, Keystone
from factory.fakes.openstack_neutron import Neutron, neutron_error
from factory.fakes.openstack_nova import Nova, nova_error, parse_microversion
from factory.fakes.openstack_state import ApiError, Call, Reply, World

Handler = Callable[[Call], Reply]
VERSION_DOCS = frozenset({"/", "/v3", "/compute", "/compute/v2.1", "/image", "/networking"})


@dataclass
class Fault(httpfake.Fault):
    """Answer a route with HTTP ``status``: skip the first ``after`` calls, then fail ``times`` calls
    (negative: every call)."""

    status: int = 500
    message: str = ""


@dataclass
class FakeOpenStackApi:
    """The fake cloud. ``start()`` returns the Keystone URL to put in ``OS_AUTH_URL``."""

    world: World = field(default_factory=World)
    faults: dict[str, Fault] = field(default_factory=dict)
    calls: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        """Build the route table (named by the service's own path) and the loopback server."""
        nova, glance, neutron = Nova(self.world), Glance(self.world), Neutron(self.world)
        keystone = Keystone(self.world)
        self.routes: Routes[tuple[str, str, Handler]] = Routes()
        methods = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD")
        self._http = LoopbackServer("fake-openstack", self._answer, methods)
        table: list[tuple[str, str, str, str, Handler]] = [
            ("identity", "GET", "/", "/", keystone.identity_versions),
            ("identity", "GET", "/v3", "/v3", keystone.identity_version),
            ("identity", "POST", "/v3/auth/tokens", "/v3/auth/tokens", keystone.issue_token),
            (
                "compute",
                "GET",
                "/compute",
                "/compute",
                lambda c: (200, nova_mod.versions(c.base_url, False), {}),
            ),
            (
                "compute",
                "GET",
                "/compute/v2.1",
                "/compute/v2.1",
                lambda c: (200, nova_mod.versions(c.base_url, True), {}),
            ),
            (
                "compute",
                "GET",
                "/compute/v2.1/servers",
                "/v2.1/servers",
                lambda c: nova.list_servers(c, False),
            ),
            (
                "compute",
                "GET",
                "/compute/v2.1/servers/detail",
                "/v2.1/servers/detail",
                lambda c: nova.list_servers(c, True),
            ),
            ("compute", "POST", "/compute/v2.1/servers", "/v2.1/servers", nova.create_server),
            ("compute", "GET", "/compute/v2.1/servers/{id}", "/v2.1/servers/{id}", nova.get_server),
            ("compute", "DELETE", "/compute/v2.1/servers/{id}", "/v2.1/servers/{id}", nova.delete_server),
            (
                "compute",
                "POST",
                "/compute/v2.1/servers/{id}/action",
                "/v2.1/servers/{id}/action",
                nova.action,
            ),
            (
                "compute",
                "GET",
                "/compute/v2.1/flavors",
                "/v2.1/flavors",
                lambda c: nova.list_flavors(c, False),
            ),
            (
                "compute",
                "GET",
                "/compute/v2.1/flavors/detail",
                "/v2.1/flavors/detail",
                lambda c: nova.list_flavors(c, True),
            ),
            ("compute", "GET", "/compute/v2.1/flavors/{id}", "/v2.1/flavors/{id}", nova.get_flavor),
            (
                "compute",
                "GET",
                "/compute/v2.1/flavors/{id}/os-extra_specs",
                "/v2.1/flavors/{id}/os-extra_specs",
                nova.flavor_extra_specs,
            ),
            ("compute", "GET", "/compute/v2.1/os-keypairs", "/v2.1/os-keypairs", nova.list_keypairs),
            (
                "compute",
                "GET",
                "/compute/v2.1/os-keypairs/{id}",
                "/v2.1/os-keypairs/{name}",
                nova.get_keypair,
            ),
            ("image", "GET", "/image", "/image", lambda c: (300, glance_mod.versions(c.base_url), {})),
            ("image", "GET", "/image/v2/images", "/v2/images", glance.list_images),
            ("image", "GET", "/image/v2/images/{id}", "/v2/images/{id}", glance.get_image),
            ("image", "PATCH", "/image/v2/images/{id}", "/v2/images/{id}", glance.patch_image),
            ("image", "DELETE", "/image/v2/images/{id}", "/v2/images/{id}", glance.delete_image),
            (
                "image",
                "PUT",
                "/image/v2/images/{id}/tags/{id}",
                "/v2/images/{id}/tags/{tag}",
                glance.put_tag,
            ),
            (
                "image",
                "DELETE",
                "/image/v2/images/{id}/tags/{id}",
                "/v2/images/{id}/tags/{tag}",
                glance.delete_tag,
            ),
            (
                "image",
                "GET",
                "/image/v2/images/{id}/members",
                "/v2/images/{id}/members",
                glance.list_members,
            ),
            (
                "image",
                "POST",
                "/image/v2/images/{id}/members",
                "/v2/images/{id}/members",
                glance.add_member,
            ),
            ("network", "GET", "/networking", "/networking", neutron.versions),
            ("network", "GET", "/networking/v2.0/networks", "/v2.0/networks", neutron.list_networks),
            (
                "network",
                "GET",
                "/networking/v2.0/networks/{id}",
                "/v2.0/networks/{id}",
                neutron.get_network,
            ),
        ]
        for service, method, path, template, handler in table:
            self.routes.add(method, path, (service, template, handler), name=f"{method} {template}")

    # -- test controls --------------------------------------------------------------------------------
    def fail(
        self, route: str, status: int = 500, message: str = "", *, times: int = -1, after: int = 0
    ) -> Fault:
        """Make ``route`` (``"METHOD /path/{id}"``, actions ``.../action:createImage``) fail."""
        fault = Fault(
            times, after, status=status, message=message or f"injected failure ({status}) of {route}"
        )
        with self.world.lock:
            self.faults[route] = fault
        return fault

    def labelled(self, key: str, value: str | None = None) -> dict[str, list[str]]:
        """Ids of live servers and images carrying ``key`` (with ``value``) in metadata/properties."""
        return self.world.labelled(key, value)

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT``."""
        return f"http://127.0.0.1:{self._http.port}"

    @property
    def auth_url(self) -> str:
        """The Keystone URL for ``OS_AUTH_URL``."""
        return f"{self.base_url}/v3"

    # -- dispatch -------------------------------------------------------------------------------------
    def handle(
        self, method: str, raw_path: str, headers: dict[str, str], raw: bytes
    ) -> tuple[int, Any, dict[str, str]]:
        """Answer one request: (status, JSON document or HTML text or None, headers)."""
        parsed = urllib.parse.urlsplit(raw_path)
        path = parsed.path.rstrip("/") or "/"
        query = urllib.parse.parse_qs(parsed.query, keep_blank_values=True)
        found = self.routes.match(method, path)
        if found is None:
            return (
                404,
                {"error": {"code": 404, "message": f"no route {method} {path}", "title": "Not Found"}},
                {},
            )
        (service, template, handler), groups = found[0].handler, found[1]
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            return self._error(service, ApiError(400, "Malformed request body"), {})
        ids = [urllib.parse.unquote(g) for g in groups]
        call = Call(method, path, ids, query, headers, body, self.base_url)
        route = found[0].name
        if route.endswith("/action") and isinstance(body, dict) and body:
            route += ":" + next(iter(body))
        extra: dict[str, str] = {}
        with self.world.lock:
            self.calls.append(route)
            try:
                if service == "compute":
                    call.microversion = parse_microversion(headers)
                    version = ".".join(map(str, call.microversion))
                    extra = {
                        "OpenStack-API-Version": f"compute {version}",
                        "X-OpenStack-Nova-API-Version": version,
                        "Vary": "OpenStack-API-Version, X-OpenStack-Nova-API-Version",
                    }
                public = template in VERSION_DOCS or route == "POST /v3/auth/tokens"
                if not public and headers.get("x-auth-token") not in self.world.tokens:
                    raise ApiError(401, UNAUTHORIZED)
                fault = self.faults.get(route)
                if fault is not None and fault.due():
                    raise ApiError(fault.status, fault.message)
                status, doc, more = handler(call)
            except ApiError as exc:
                return self._error(service, exc, extra)
        return status, doc, {**extra, **more}

    def _error(self, service: str, exc: ApiError, extra: dict[str, str]) -> tuple[int, Any, dict[str, str]]:
        headers = dict(extra)
        if exc.status == 401:
            headers["WWW-Authenticate"] = f'Keystone uri="{self.auth_url}"'
            title = "Unauthorized"
            return 401, {"error": {"code": 401, "message": exc.message, "title": title}}, headers
        if service == "compute":
            return exc.status, nova_error(exc.status, exc.message), headers
        if service == "image":
            return exc.status, glance_error(exc.status, exc.message), headers
        if service == "network":
            return exc.status, neutron_error(exc.status, exc.message, exc.kind), headers
        title = {400: "Bad Request", 403: "Forbidden", 404: "Not Found"}.get(exc.status, "Error")
        return exc.status, {"error": {"code": exc.status, "message": exc.message, "title": title}}, headers

    # -- server ---------------------------------------------------------------------------------------
    def start(self, port: int = 0) -> str:
        """Serve on 127.0.0.1 in a daemon thread; return :attr:`auth_url`."""
        self._http.start(port)
        return self.auth_url

    def stop(self) -> None:
        """Stop serving."""
        self._http.stop()

    def _answer(self, method: str, path: str, headers: Message, raw: bytes) -> httpfake.Reply:
        status, payload, extra = self.handle(method, path, {k.lower(): v for k, v in headers.items()}, raw)
        if isinstance(payload, str):
            data, ctype = payload.encode(), "text/html; charset=UTF-8"
        else:
            data, ctype = (b"" if payload is None else json.dumps(payload).encode()), "application/json"
        more = [("X-Openstack-Request-Id", f"req-{uuid.uuid4()}"), *extra.items()]
        return httpfake.Reply(status, data, ctype, more)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m factory.fakes.openstack_api [--port N] [--fail ROUTE=STATUS]``: serve until stopped."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument(
        "--guest-polls", type=int, default=3, help="reads of an ACTIVE builder before SHUTOFF"
    )
    parser.add_argument("--fail", action="append", default=[], metavar="ROUTE=STATUS")
    args = parser.parse_args(argv)
    api = FakeOpenStackApi(world=World(guest_polls=args.guest_polls))
    for spec in args.fail:
        route, _, status = spec.rpartition("=")
        api.fail(route, int(status))
    url = api.start(args.port)
    project = api.world.project
    print(
        f"OS_AUTH_URL={url} OS_USERNAME={project.user_name} OS_PROJECT_NAME={project.name} "
        f"OS_USER_DOMAIN_NAME={project.domain_name} OS_PROJECT_DOMAIN_NAME={project.domain_name} "
        f"(password: see factory.fakes.openstack_state.Project)",
        flush=True,
    )
    serve_until_signalled(api.stop)
    return 0


if __name__ == "__main__":
    sys.exit(main())
