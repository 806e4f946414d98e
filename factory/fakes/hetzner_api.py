"""A fake Hetzner Cloud API on 127.0.0.1: the REST calls ``factory bake/gc/images/whoami hetzner`` make,
answered with the real API's paths, JSON shapes, status codes and errors, so the real hcloud-python
SDK talks to it unchanged (``HCLOUD_ENDPOINT=http://127.0.0.1:PORT/v1``).

Implemented: ``GET /locations``, ``GET /server_types``, ``GET /images[/{id}]``, ``PUT|DELETE
/images/{id}``, ``GET|POST /servers``, ``GET|DELETE /servers/{id}``, ``POST
/servers/{id}/actions/{create_image,poweroff,shutdown}``, ``GET /actions/{id}``, ``GET /networks[/{id}]``,
``GET /ssh_keys[/{id}]``. Every request needs ``Authorization: Bearer <token>`` (else 401
``unauthorized``). Lists are paginated (``page``, ``per_page`` <= 50, ``meta.pagination``) and filter by
``name``, ``label_selector``, ``type``, ``architecture``. Actions finish after N polls; a builder powers
itself off (see :mod:`factory.fakes.hetzner_state`).

Failure injection: :meth:`FakeHetznerApi.fail` makes one route (``"POST /servers"``,
``"GET /servers/{id}"``, ...) answer a Hetzner error, optionally only after some calls and a number of
times. ``python -m factory.fakes.hetzner_api --port 0 --token T [--fail 'ROUTE=code']`` serves it.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import urllib.parse
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from email.message import Message
from typing import Any

from factory.fakes import httpfake
from factory.fakes.hetzner_state import ERROR_STATUS, ApiError, World, check_selector, label_problem, now_iso
from factory.fakes.hetzner_state import matches_selector as _matches
from factory.fakes.httpfake import LoopbackServer, Reply, Routes, serve_until_signalled

Handler = Callable[["Call"], tuple[int, Any]]


@dataclass
class Fault(httpfake.Fault):
    """Answer a route with Hetzner error ``code``: skip the first ``after`` calls, then fail ``times``
    calls (negative: every call). With ``done_anyway`` the call takes effect before the error is
    answered (the API's "service_error, yet the snapshot exists" case)."""

    code: str = "service_error"
    done_anyway: bool = False


@dataclass
class Call:
    """One request as a route handler sees it."""

    method: str
    route: str
    ids: list[int]
    query: dict[str, list[str]]
    body: Any

    def arg(self, name: str) -> str | None:
        """The first value of query parameter ``name``."""
        values = self.query.get(name)
        return values[0] if values else None


@dataclass
class FakeHetznerApi:
    """The fake API server. ``start()`` returns the base URL to put in ``HCLOUD_ENDPOINT``."""

    token: str = "fake-hcloud-token"
    world: World = field(default_factory=World)
    faults: dict[str, Fault] = field(default_factory=dict)
    calls: list[str] = field(default_factory=list)
    lock: threading.RLock = field(default_factory=threading.RLock)

    def __post_init__(self) -> None:
        """The route table (``{id}``: a number) and the loopback server (not started)."""
        self.routes: Routes[Handler] = Routes(r"\d+")
        for method, template, handler in self._route_table():
            self.routes.add(method, template, handler)
        self._http = LoopbackServer("fake-hcloud", self._answer, ("GET", "POST", "PUT", "DELETE"))

    # -- test controls ---------------------------------------------------------------------------
    def fail(
        self,
        route: str,
        code: str = "service_error",
        *,
        times: int = -1,
        after: int = 0,
        done_anyway: bool = False,
    ) -> Fault:
        """Make ``route`` (e.g. ``"POST /servers/{id}/actions/create_image"``) answer error ``code``."""
        if code not in ERROR_STATUS:
            raise ValueError(f"unknown Hetzner error code {code!r}")
        fault = Fault(times, after, code=code, done_anyway=done_anyway)
        with self.lock:
            self.faults[route] = fault
        return fault

    def labelled(self, key: str, value: str | None = None) -> dict[str, list[int]]:
        """Ids of live servers and images carrying label ``key`` (with ``value`` if given)."""
        selector = key if value is None else f"{key}={value}"
        with self.lock:
            return {
                "servers": [s["id"] for s in self.world.servers.values() if _matches(s["labels"], selector)],
                "images": [i["id"] for i in self.world.images.values() if _matches(i["labels"], selector)],
            }

    # -- server ----------------------------------------------------------------------------------
    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT/v1``."""
        return f"http://127.0.0.1:{self._http.port}/v1"

    def start(self, port: int = 0) -> str:
        """Serve on 127.0.0.1 in a daemon thread; return :attr:`url`."""
        self._http.start(port)
        return self.url

    def stop(self) -> None:
        """Stop serving."""
        self._http.stop()

    def _answer(self, method: str, path: str, headers: Message, raw: bytes) -> Reply:
        status, payload = self.handle(method, path, headers.get("Authorization"), raw)
        extra = [
            ("X-Correlation-Id", f"fake-{len(self.calls):06d}"),
            ("RateLimit-Limit", "3600"),
            ("RateLimit-Remaining", "3599"),
        ]
        body = b"" if payload is None else json.dumps(payload).encode()
        return Reply(status, body, "application/json", extra)

    # -- dispatch --------------------------------------------------------------------------------
    def handle(self, method: str, raw_path: str, auth: str | None, raw_body: bytes) -> tuple[int, Any]:
        """Answer one request: (status, JSON payload or None for 204)."""
        parsed = urllib.parse.urlsplit(raw_path)
        path = parsed.path[3:] if parsed.path.startswith("/v1/") else parsed.path
        found = self.routes.match(method, path)
        route = found[0].name if found else f"{method} {path}"
        ids = [int(g) for g in found[1]] if found else []
        handler = found[0].handler if found else None
        with self.lock:
            self.calls.append(route)
            try:
                if auth != f"Bearer {self.token}":
                    raise ApiError("unauthorized", "unable to authenticate")
                if handler is None:
                    raise ApiError("not_found", f"no route {method} {path}")
                fault = self.faults.get(route)
                if fault is not None and not fault.due():
                    fault = None
                if fault is not None and not fault.done_anyway:
                    raise ApiError(fault.code, f"injected {fault.code} for {route}")
                try:
                    body = json.loads(raw_body) if raw_body else None
                except ValueError:
                    raise ApiError("json_error", "invalid JSON in request body") from None
                query = urllib.parse.parse_qs(parsed.query)
                if method == "GET":
                    self.world.tick()
                answer = handler(Call(method, route, ids, query, body))
                if fault is not None:  # done_anyway: the work happened, the answer is an error
                    raise ApiError(fault.code, f"injected {fault.code} for {route} (after doing it)")
                return answer
            except ApiError as exc:
                return exc.status, {
                    "error": {"code": exc.code, "message": exc.message, "details": exc.details}
                }

    def _route_table(self) -> list[tuple[str, str, Handler]]:
        return [
            ("GET", "/locations", self._list_of("locations", lambda: self.world.locations)),
            ("GET", "/server_types", self._list_of("server_types", lambda: self.world.server_types)),
            ("GET", "/networks", self._list_of("networks", lambda: self.world.networks)),
            ("GET", "/networks/{id}", self._one_of("network", lambda: self.world.networks)),
            ("GET", "/ssh_keys", self._list_of("ssh_keys", lambda: self.world.ssh_keys)),
            ("GET", "/ssh_keys/{id}", self._one_of("ssh_key", lambda: self.world.ssh_keys)),
            ("GET", "/images", self._list_of("images", lambda: list(self.world.images.values()))),
            ("GET", "/images/{id}", self._one_of("image", lambda: list(self.world.images.values()))),
            ("PUT", "/images/{id}", self._update_image),
            ("DELETE", "/images/{id}", self._delete_image),
            ("GET", "/servers", self._list_of("servers", lambda: list(self.world.servers.values()))),
            ("GET", "/servers/{id}", self._one_of("server", lambda: list(self.world.servers.values()))),
            ("POST", "/servers", self._create_server),
            ("DELETE", "/servers/{id}", self._delete_server),
            ("POST", "/servers/{id}/actions/create_image", self._create_image),
            ("POST", "/servers/{id}/actions/poweroff", self._power_action("stop_server")),
            ("POST", "/servers/{id}/actions/shutdown", self._power_action("shutdown_server")),
            ("GET", "/actions/{id}", self._get_action),
        ]

    # -- generic list / get ----------------------------------------------------------------------
    def _list_of(self, key: str, items: Callable[[], list[dict[str, Any]]]) -> Handler:
        def handler(call: Call) -> tuple[int, Any]:
            rows = list(items())
            name = call.arg("name")
            if name is not None:
                rows = [r for r in rows if r.get("name") == name]
            selector = call.arg("label_selector")
            if selector:
                check_selector(selector)
                rows = [r for r in rows if _matches(r.get("labels") or {}, selector)]
            for attr in ("type", "architecture", "status"):
                wanted = call.query.get(attr)
                if wanted:
                    rows = [r for r in rows if r.get(attr) in wanted]
            rows.sort(key=lambda r: int(r["id"]))
            return 200, self._page(key, rows, call)

        return handler

    @staticmethod
    def _page(key: str, rows: list[dict[str, Any]], call: Call) -> dict[str, Any]:
        try:
            page = max(1, int(call.arg("page") or 1))
            per_page = min(50, max(1, int(call.arg("per_page") or 25)))
        except ValueError:
            raise ApiError("invalid_input", "page and per_page must be integers") from None
        last = max(1, -(-len(rows) // per_page))
        return {
            key: rows[(page - 1) * per_page : page * per_page],
            "meta": {
                "pagination": {
                    "page": page,
                    "per_page": per_page,
                    "previous_page": page - 1 if page > 1 else None,
                    "next_page": page + 1 if page < last else None,
                    "last_page": last,
                    "total_entries": len(rows),
                }
            },
        }

    def _one_of(self, key: str, items: Callable[[], list[dict[str, Any]]]) -> Handler:
        def handler(call: Call) -> tuple[int, Any]:
            for row in items():
                if row["id"] == call.ids[0]:
                    return 200, {key: row}
            raise ApiError("not_found", f"{key} with ID '{call.ids[0]}' not found")

        return handler

    def _get_server(self, sid: int) -> dict[str, Any]:
        server = self.world.servers.get(sid)
        if server is None:
            raise ApiError("not_found", f"server with ID '{sid}' not found")
        return server

    def _unlocked(self, sid: int) -> dict[str, Any]:
        server = self._get_server(sid)
        if self.world.running_action_on(sid, "server") is not None:
            raise ApiError("locked", "server is locked: another action is running")
        return server

    # -- servers ---------------------------------------------------------------------------------
    def _create_server(self, call: Call) -> tuple[int, Any]:
        from factory.fakes.hetzner_server import create_server

        return create_server(self.world, call.body)

    def _delete_server(self, call: Call) -> tuple[int, Any]:
        sid = call.ids[0]
        server = self._get_server(sid)
        if server["protection"]["delete"]:
            raise ApiError("protected", "server is delete-protected")
        for action in list(self.world.actions.values()):
            if {"id": sid, "type": "server"} in action.resources:
                self.world.fail_action(action, "action_failed", "server was deleted")
        server["status"] = "deleting"
        action = self.world.new_action(
            "delete_server", [(sid, "server")], on_done=lambda: self.world.servers.pop(sid, None)
        )
        return 200, {"action": action.to_json()}

    def _power_action(self, command: str) -> Handler:
        def handler(call: Call) -> tuple[int, Any]:
            sid = call.ids[0]
            server = self._unlocked(sid)

            def done() -> None:
                server["status"] = "off"

            return 201, {"action": self.world.new_action(command, [(sid, "server")], done).to_json()}

        return handler

    def _create_image(self, call: Call) -> tuple[int, Any]:
        sid = call.ids[0]
        server = self._unlocked(sid)
        body = call.body if isinstance(call.body, dict) else {}
        kind = body.get("type", "snapshot")
        if kind not in ("snapshot", "backup"):
            raise ApiError("invalid_input", "type must be snapshot or backup", {"fields": [{"name": "type"}]})
        labels = body.get("labels", {})
        problem = label_problem(labels)
        if problem:
            raise ApiError("invalid_input", problem, {"fields": [{"name": "labels", "messages": [problem]}]})
        iid = self.world.next_id()
        arch = server["server_type"]["architecture"]
        image = self.world.image_json(iid, kind, None, str(body.get("description") or ""), arch, labels)
        image["created_from"] = {"id": sid, "name": server["name"]}
        image["os_flavor"] = server["image"]["os_flavor"] if server.get("image") else "unknown"
        self.world.images[iid] = image

        def done() -> None:
            if iid in self.world.images:
                image["status"] = "available"
                image["image_size"] = 1.5

        action = self.world.new_action("create_image", [(sid, "server"), (iid, "image")], done)
        return 201, {"image": image, "action": action.to_json()}

    # -- images ----------------------------------------------------------------------------------
    def _image(self, iid: int) -> dict[str, Any]:
        image = self.world.images.get(iid)
        if image is None:
            raise ApiError("not_found", f"image with ID '{iid}' not found")
        return image

    def _update_image(self, call: Call) -> tuple[int, Any]:
        image = self._image(call.ids[0])
        body = call.body if isinstance(call.body, dict) else {}
        if image["type"] == "system":
            raise ApiError("forbidden", "system images cannot be modified")
        if "labels" in body:
            problem = label_problem(body["labels"])
            if problem:
                raise ApiError("invalid_input", problem, {"fields": [{"name": "labels"}]})
            image["labels"] = dict(body["labels"])
        if "description" in body:
            image["description"] = str(body["description"])
        if body.get("type") == "snapshot":
            image["type"] = "snapshot"
        return 200, {"image": image}

    def _delete_image(self, call: Call) -> tuple[int, Any]:
        iid = call.ids[0]
        image = self._image(iid)
        if image["type"] == "system":
            raise ApiError("forbidden", "system images cannot be deleted")
        if image["protection"]["delete"]:
            raise ApiError("protected", "image is delete-protected")
        for action in list(self.world.actions.values()):
            if {"id": iid, "type": "image"} in action.resources:
                self.world.fail_action(action, "action_failed", "image was deleted")
        image["deleted"] = now_iso()
        del self.world.images[iid]
        return 204, None

    def _get_action(self, call: Call) -> tuple[int, Any]:
        action = self.world.actions.get(call.ids[0])
        if action is None:
            raise ApiError("not_found", f"action with ID '{call.ids[0]}' not found")
        return 200, {"action": action.to_json()}


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m factory.fakes.hetzner_api``: serve until SIGINT/SIGTERM."""
    parser = argparse.ArgumentParser(prog="python -m factory.fakes.hetzner_api", description=__doc__)
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (default: any free one)")
    parser.add_argument("--token", default="fake-hcloud-token", help="the only token accepted")
    parser.add_argument("--action-polls", type=int, default=2, help="polls until an action finishes")
    parser.add_argument("--guest-polls", type=int, default=3, help="polls until a builder powers off")
    parser.add_argument("--no-guest", action="store_true", help="builders never power themselves off")
    parser.add_argument("--fail", action="append", default=[], metavar="'METHOD /path=code'")
    args = parser.parse_args(argv)
    world = World(
        action_polls=args.action_polls, guest_polls=args.guest_polls, guest_poweroff=not args.no_guest
    )
    api = FakeHetznerApi(token=args.token, world=world)
    for spec in args.fail:
        route, _, code = spec.rpartition("=")
        if not route or code not in ERROR_STATUS:
            parser.error(f"--fail {spec!r}: expected 'METHOD /path=code' with a Hetzner error code")
        api.fail(route, code)
    print(f"listening on {api.start(args.port)}", flush=True)
    serve_until_signalled(api.stop)
    return 0


if __name__ == "__main__":
    sys.exit(main())
