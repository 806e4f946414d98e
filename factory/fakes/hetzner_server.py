"""``POST /servers`` of the fake Hetzner Cloud API: validation as the real API does it and the server
object it answers with (see :mod:`factory.fakes.hetzner_api`)."""

from __future__ import annotations

import secrets
from typing import Any

from factory.fakes.hetzner_state import HOSTNAME, ApiError, World, label_problem, now_iso

USER_DATA_LIMIT = 32 * 1024


def _invalid(field_name: str, message: str) -> ApiError:
    return ApiError(
        "invalid_input",
        f"invalid input in field '{field_name}'",
        {"fields": [{"name": field_name, "messages": [message]}]},
    )


def _find(rows: list[dict[str, Any]], id_or_name: Any) -> dict[str, Any] | None:
    for row in rows:
        if id_or_name in (row["id"], row.get("name")) or str(id_or_name) == str(row["id"]):
            return row
    return None


def _resolve_image(world: World, ref: Any, arch: str) -> dict[str, Any]:
    for image in world.images.values():
        if image["status"] != "available":
            continue
        if ref == image["id"] or str(ref) == str(image["id"]):
            return image
        if ref == image.get("name") and image["architecture"] == arch:
            return image
    raise _invalid("image", f"image {ref!r} not found for architecture {arch}")


def server_json(
    sid: int,
    body: dict[str, Any],
    server_type: dict[str, Any],
    image: dict[str, Any],
    location: dict[str, Any],
) -> dict[str, Any]:
    """The API's server object for a server that was just created."""
    ipv4 = f"203.0.113.{sid % 250 + 1}"
    return {
        "id": sid,
        "name": body["name"],
        "status": "initializing",
        "created": now_iso(),
        "public_net": {
            "ipv4": {"id": sid + 100000, "ip": ipv4, "blocked": False, "dns_ptr": f"static.{ipv4}.example"},
            "ipv6": {"id": sid + 200000, "ip": "2001:db8::/64", "blocked": False, "dns_ptr": []},
            "floating_ips": [],
            "firewalls": [],
        },
        "private_net": [
            {
                "network": nid,
                "ip": f"10.0.0.{sid % 250 + 2}",
                "alias_ips": [],
                "mac_address": "86:00:00:00:00:01",
            }
            for nid in body.get("networks") or []
        ],
        "server_type": server_type,
        "datacenter": {
            "id": location["id"],
            "name": f"{location['name']}-dc14",
            "description": location["description"],
            "location": location,
            "server_types": {"supported": [], "available": [], "available_for_migration": []},
        },
        "location": location,
        "image": image,
        "iso": None,
        "rescue_enabled": False,
        "locked": False,
        "backup_window": None,
        "outgoing_traffic": 0,
        "ingoing_traffic": 0,
        "included_traffic": 21990232555520,
        "protection": {"delete": False, "rebuild": False},
        "labels": dict(body.get("labels") or {}),
        "volumes": [],
        "load_balancers": [],
        "primary_disk_size": server_type["disk"],
        "placement_group": None,
    }


def create_server(world: World, body: Any) -> tuple[int, Any]:
    """Validate a create-server request and create it (status ``initializing``, then ``running``)."""
    if not isinstance(body, dict):
        raise ApiError("json_error", "request body must be a JSON object")
    for required in ("name", "server_type", "image"):
        if required not in body:
            raise _invalid(required, "Missing data for required field.")
    name = body["name"]
    if not isinstance(name, str) or not HOSTNAME.match(name):
        raise _invalid("name", "must be a valid hostname")
    if any(s["name"] == name for s in world.servers.values()):
        raise ApiError("uniqueness_error", "server name is already used", {"fields": [{"name": "name"}]})
    server_type = _find(world.server_types, body["server_type"])
    if server_type is None:
        raise _invalid("server_type", f"server type {body['server_type']!r} not found")
    location = _find(world.locations, body.get("location") or "fsn1")
    if location is None:
        raise _invalid("location", f"location {body.get('location')!r} not found")
    image = _resolve_image(world, body["image"], server_type["architecture"])
    user_data = body.get("user_data")
    if user_data is not None and (
        not isinstance(user_data, str) or len(user_data.encode()) > USER_DATA_LIMIT
    ):
        raise _invalid("user_data", f"user_data must be a string of at most {USER_DATA_LIMIT} bytes")
    problem = label_problem(body.get("labels", {}))
    if problem:
        raise _invalid("labels", problem)
    keys = body.get("ssh_keys") or []
    for key in keys:
        if _find(world.ssh_keys, key) is None:
            raise _invalid("ssh_keys", f"ssh key {key!r} not found")
    for network in body.get("networks") or []:
        if not isinstance(network, int) or _find(world.networks, network) is None:
            raise _invalid("networks", f"network {network!r} not found")
    sid = world.next_id()
    server = server_json(sid, body, server_type, image, location)
    world.servers[sid] = server
    world.user_data[sid] = user_data or ""
    world.create_requests[sid] = {k: v for k, v in body.items() if k != "user_data"}
    start = body.get("start_after_create", True) is not False

    def created() -> None:
        if sid in world.servers:
            server["status"] = "running" if start else "off"

    action = world.new_action("create_server", [(sid, "server")], created)
    next_actions = [world.new_action("start_server", [(sid, "server")]).to_json()] if start else []
    return 201, {
        "server": server,
        "action": action.to_json(),
        "next_actions": next_actions,
        "root_password": None if keys else secrets.token_urlsafe(12),
    }
