"""Neutron (network v2.0) of the fake OpenStack API: ``GET /v2.0/networks[/{id}]`` with Neutron's
exact-match filters and its ``NeutronError`` bodies."""

from __future__ import annotations

from typing import Any

from factory.fakes.openstack_state import ApiError, Call, Reply, World


def neutron_error(status: int, message: str, kind: str = "") -> dict[str, Any]:
    """Neutron's error body: ``{"NeutronError": {"type", "message", "detail"}}``."""
    default = {404: "NotFound", 400: "BadRequest", 409: "Conflict", 403: "Forbidden"}.get(status, "Error")
    return {"NeutronError": {"type": kind or default, "message": message, "detail": ""}}


class Neutron:
    """The network handlers over a :class:`World`."""

    def __init__(self, world: World) -> None:
        """Serve ``world``."""
        self.world = world

    def versions(self, call: Call) -> Reply:
        """``GET /networking``: Neutron's version list."""
        link = [{"rel": "self", "href": f"{call.base_url}/networking/v2.0/"}]
        return 200, {"versions": [{"id": "v2.0", "status": "CURRENT", "links": link}]}, {}

    def list_networks(self, call: Call) -> Reply:
        """``GET /v2.0/networks`` with exact-match filters (``name``, ``id``, ``router:external``...)."""
        rows = []
        for net in self.world.networks:
            if all(
                str(net.get(k)).lower() in [v.lower() for v in vals]
                for k, vals in call.query.items()
                if k not in ("fields", "limit", "marker", "sort_key", "sort_dir")
            ):
                rows.append(net)
        return 200, {"networks": rows}, {}

    def get_network(self, call: Call) -> Reply:
        """``GET /v2.0/networks/{id}``."""
        found = next((n for n in self.world.networks if n["id"] == call.ids[0]), None)
        if found is None:
            raise ApiError(404, f"Network {call.ids[0]} could not be found.", "NetworkNotFound")
        return 200, {"network": found}, {}
