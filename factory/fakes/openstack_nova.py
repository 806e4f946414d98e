"""Nova (compute v2.1) and Neutron (network v2.0) of the fake OpenStack API: the calls the openstack
backend makes, with Nova's microversion negotiation, request validation, documents and error bodies.

Nova: ``GET /v2.1/servers[/detail]``, ``POST /v2.1/servers``, ``GET|DELETE /v2.1/servers/{id}``,
``POST /v2.1/servers/{id}/action`` (``createImage``, ``os-getConsoleOutput``, ``os-stop``),
``GET /v2.1/flavors[/detail]``, ``GET /v2.1/flavors/{id}[/os-extra_specs]``,
``GET /v2.1/os-keypairs[/{name}]``. Neutron: ``GET /v2.0/networks[/{id}]``.
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import Any

from factory.fakes.openstack_state import (
    ApiError,
    Call,
    Reply,
    ServerState,
    World,
    glance_image,
    new_id,
    now_iso,
)

MAX_MICROVERSION = (2, 96)
USER_DATA_MAX = 65535
NOVA_ERROR_KEYS = {
    400: "badRequest",
    403: "forbidden",
    404: "itemNotFound",
    409: "conflictingRequest",
    413: "overLimit",
    500: "computeFault",
    503: "serviceUnavailable",
}
_METADATA_KEY = re.compile(r"^[a-zA-Z0-9-_:. ]{1,255}$")
_MICROVERSION = re.compile(r"^(\d+)\.(\d+)$")


def nova_error(status: int, message: str) -> dict[str, Any]:
    """Nova's error body: ``{"itemNotFound": {"code": 404, "message": ...}}``."""
    key = NOVA_ERROR_KEYS.get(status, "computeFault")
    body: dict[str, Any] = {key: {"code": status, "message": message}}
    if status == 413:
        body[key]["retryAfter"] = "0"
    return body


def parse_microversion(headers: dict[str, str]) -> tuple[int, int]:
    """The requested compute microversion (``OpenStack-API-Version: compute 2.79`` or the legacy
    header); 2.1 when absent; ``latest`` is the maximum. ApiError 406 outside 2.1 .. maximum."""
    raw = headers.get("openstack-api-version", "")
    wanted = ""
    if raw:
        service, _, version = raw.strip().partition(" ")
        if service.lower() == "compute":
            wanted = version.strip()
    wanted = wanted or headers.get("x-openstack-nova-api-version", "").strip()
    if not wanted:
        return (2, 1)
    if wanted == "latest":
        return MAX_MICROVERSION
    match = _MICROVERSION.match(wanted)
    if not match:
        raise ApiError(400, f"Invalid format for API version: {wanted}")
    asked = (int(match.group(1)), int(match.group(2)))
    if not (2, 1) <= asked <= MAX_MICROVERSION:
        top = ".".join(map(str, MAX_MICROVERSION))
        raise ApiError(
            406, f"Version {wanted} is not supported by the API. Minimum is 2.1 and maximum is {top}."
        )
    return asked


def versions(base: str, single: bool) -> dict[str, Any]:
    """Nova's version document (``GET /compute/`` lists, ``GET /compute/v2.1/`` one)."""
    v21 = {
        "id": "v2.1",
        "status": "CURRENT",
        "version": ".".join(map(str, MAX_MICROVERSION)),
        "min_version": "2.1",
        "updated": "2013-07-23T11:33:21Z",
        "links": [{"rel": "self", "href": f"{base}/compute/v2.1/"}],
        "media-types": [
            {"base": "application/json", "type": "application/vnd.openstack.compute+json;version=2.1"}
        ],
    }
    if single:
        return {"version": v21}
    v20 = {
        "id": "v2.0",
        "status": "SUPPORTED",
        "version": "",
        "min_version": "",
        "updated": "2011-01-21T11:33:21Z",
        "links": [{"rel": "self", "href": f"{base}/compute/v2/"}],
    }
    return {"versions": [v20, v21]}


class Nova:
    """The compute handlers over a :class:`World`."""

    def __init__(self, world: World) -> None:
        """Serve ``world``."""
        self.world = world

    # -- servers ----------------------------------------------------------------------------------
    def _server(self, sid: str) -> ServerState:
        state = self.world.tick_server(sid)
        if state is None:
            raise ApiError(404, f"Instance {sid} could not be found.")
        return state

    def _flavor(self, ref: str) -> dict[str, Any] | None:
        return next((f for f in self.world.flavors if f["id"] == ref), None)

    def server_doc(self, state: ServerState, call: Call) -> dict[str, Any]:
        """The server document as this microversion shows it."""
        doc = dict(state.doc)
        if call.microversion < (2, 47):
            doc["flavor"] = {"id": state.create_body["flavorRef"], "links": []}
        if call.microversion < (2, 26):
            doc.pop("tags", None)
        return doc

    def list_servers(self, call: Call, detail: bool) -> Reply:
        """``GET /servers[/detail]`` with ``name`` (regex) and ``status`` filters."""
        rows = []
        for sid in list(self.world.servers):
            state = self.world.tick_server(sid)
            if state is None:
                continue
            doc = self.server_doc(state, call)
            name, status = call.arg("name"), call.arg("status")
            if name and not re.search(name, doc["name"]):
                continue
            if status and doc["status"] != status.upper():
                continue
            rows.append(doc if detail else {"id": doc["id"], "name": doc["name"], "links": doc["links"]})
        return 200, {"servers": rows}, {}

    def get_server(self, call: Call) -> Reply:
        """``GET /servers/{id}``."""
        return 200, {"server": self.server_doc(self._server(call.ids[0]), call)}, {}

    def delete_server(self, call: Call) -> Reply:
        """``DELETE /servers/{id}``: 204; the server stays visible while it is being deleted."""
        state = self._server(call.ids[0])
        if state.doc.get("locked"):
            raise ApiError(409, f"Instance {call.ids[0]} is locked")
        if state.deleting_polls is None:
            self.world.delete_server(call.ids[0])
        return 204, None, {}

    def create_server(self, call: Call) -> Reply:
        """``POST /servers``: validate like Nova's JSON schema and API, then boot (``BUILD``)."""
        body = call.body.get("server") if isinstance(call.body, dict) else None
        if not isinstance(body, dict):
            raise ApiError(
                400, "Invalid input for field/attribute server. Value: None. 'server' is a required property"
            )
        name = body.get("name")
        if not isinstance(name, str) or not 1 <= len(name) <= 255 or name != name.strip():
            raise ApiError(400, f"Invalid input for field/attribute name. Value: {name}.")
        if call.microversion >= (2, 37) and "networks" not in body:
            raise ApiError(400, "Invalid input for field/attribute server. 'networks' is a required property")
        user_data = self._user_data(body.get("user_data"))
        self._check_metadata(body.get("metadata", {}))
        flavor = self._flavor(str(body.get("flavorRef", "")))
        if flavor is None:
            raise ApiError(400, f"Flavor {body.get('flavorRef')} could not be found.")
        image = self.world.images.get(str(body.get("imageRef", "")))
        if image is None or image["status"] != "active":
            raise ApiError(400, "Can not find requested image")
        network = self._network(body.get("networks"))
        key_name = body.get("key_name")
        if key_name is not None and not any(k["name"] == key_name for k in self.world.keypairs):
            raise ApiError(400, "Invalid key_name provided.")
        sid = new_id()
        project = self.world.project
        doc: dict[str, Any] = {
            "id": sid,
            "name": name,
            "status": "BUILD",
            "tenant_id": project.id,
            "user_id": project.user_id,
            "metadata": dict(body.get("metadata") or {}),
            "hostId": "",
            "image": {"id": image["id"], "links": []},
            "flavor": {
                "vcpus": flavor["vcpus"],
                "ram": flavor["ram"],
                "disk": flavor["disk"],
                "ephemeral": 0,
                "swap": 0,
                "original_name": flavor["name"],
                "extra_specs": {},
            },
            "created": now_iso(),
            "updated": now_iso(),
            "addresses": {network["name"]: [{"version": 4, "addr": "10.0.0.17", "OS-EXT-IPS:type": "fixed"}]},
            "accessIPv4": "",
            "accessIPv6": "",
            "links": [{"rel": "self", "href": f"{call.base_url}/compute/v2.1/servers/{sid}"}],
            "OS-DCF:diskConfig": "MANUAL",
            "progress": 0,
            "OS-EXT-AZ:availability_zone": "nova",
            "config_drive": "",
            "key_name": key_name,
            "OS-SRV-USG:launched_at": None,
            "OS-SRV-USG:terminated_at": None,
            "OS-EXT-STS:task_state": "scheduling",
            "OS-EXT-STS:vm_state": "building",
            "OS-EXT-STS:power_state": 0,
            "os-extended-volumes:volumes_attached": [],
            "security_groups": [{"name": "default"}],
            "locked": False,
            "description": None,
            "tags": [],
        }
        state = ServerState(doc, user_data, create_body={k: v for k, v in body.items() if k != "user_data"})
        self.world.servers[sid] = state
        created = {
            "id": sid,
            "links": doc["links"],
            "OS-DCF:diskConfig": "MANUAL",
            "security_groups": [{"name": "default"}],
            "adminPass": "fakeAdminPass0",
        }
        return 202, {"server": created}, {"Location": doc["links"][0]["href"]}

    @staticmethod
    def _user_data(value: Any) -> bytes:
        if value is None:
            return b""
        if not isinstance(value, str) or len(value) > USER_DATA_MAX:
            raise ApiError(
                400, "Invalid input for field/attribute user_data. Value: ... is too long or not a string"
            )
        try:
            return base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            raise ApiError(
                400, "Invalid input for field/attribute user_data. Value: ... is not 'base64'"
            ) from None

    @staticmethod
    def _check_metadata(metadata: Any) -> None:
        if not isinstance(metadata, dict):
            raise ApiError(400, "Invalid input for field/attribute metadata. Value is not of type 'object'")
        if len(metadata) > 128:
            raise ApiError(403, "Quota exceeded for metadata_items: Requested 129, but already used 0 of 128")
        for key, value in metadata.items():
            if not _METADATA_KEY.match(str(key)):
                raise ApiError(
                    400, f"Invalid input for field/attribute metadata. Value: {key!r} does not match"
                )
            if not isinstance(value, str) or len(value) > 255:
                raise ApiError(400, f"Invalid input for field/attribute {key}. Value: {value!r} is too long")

    def _network(self, networks: Any) -> dict[str, Any]:
        candidates = [n for n in self.world.networks if not n["router:external"]]
        if networks in (None, "auto"):
            if len(candidates) > 1:
                raise ApiError(409, "Multiple possible networks found, use a Network ID to be more specific.")
            if not candidates:
                raise ApiError(400, "Unable to automatically allocate a network for project")
            return candidates[0]
        if not isinstance(networks, list) or len(networks) != 1 or not isinstance(networks[0], dict):
            raise ApiError(400, "Invalid input for field/attribute networks.")
        nid = networks[0].get("uuid")
        found = next((n for n in self.world.networks if n["id"] == nid), None)
        if found is None:
            raise ApiError(400, f"Network {nid} could not be found.")
        return found

    # -- actions ----------------------------------------------------------------------------------
    def action(self, call: Call) -> Reply:
        """``POST /servers/{id}/action``: createImage, os-getConsoleOutput, os-stop."""
        state = self._server(call.ids[0])
        body = call.body if isinstance(call.body, dict) else {}
        if "createImage" in body:
            return self._create_image(call, state, body["createImage"])
        if "os-getConsoleOutput" in body:
            lines = [
                "[    0.000000] Linux version 6.8.0-31-generic",
                "k3os-factory builder: downloading the ISO",
            ]
            if state.doc["status"] == "SHUTOFF":
                lines.append("k3os-factory builder: takeover done, powering off")
            return 200, {"output": "\n".join(lines) + "\n"}, {}
        if "os-stop" in body:
            if state.doc["status"] != "ACTIVE":
                raise ApiError(409, f"Cannot 'stop' instance {call.ids[0]} while it is in vm_state stopped")
            World._set_status(state.doc, "SHUTOFF", "stopped", 4)
            return 202, None, {}
        raise ApiError(400, "There is no such action: " + ",".join(body))

    def _create_image(self, call: Call, state: ServerState, spec: Any) -> Reply:
        sid = call.ids[0]
        if not isinstance(spec, dict) or not isinstance(spec.get("name"), str) or not spec["name"]:
            raise ApiError(400, "Invalid input for field/attribute name.")
        metadata = spec.get("metadata") or {}
        self._check_metadata(metadata)
        task = state.doc.get("OS-EXT-STS:task_state")
        if task is not None:
            raise ApiError(409, f"Cannot 'createImage' instance {sid} while it is in task_state {task}")
        iid = new_id()
        project = self.world.project
        image = glance_image(
            iid,
            spec["name"],
            project.id,
            status="queued",
            visibility="private",
            size=None,
            virtual_size=None,
            checksum=None,
            os_hash_value=None,
            image_type="snapshot",
            instance_uuid=sid,
            base_image_ref=state.doc["image"]["id"],
            user_id=project.user_id,
            owner_project_name=project.name,
            owner_user_name=project.user_name,
            boot_roles="member",
        )
        image.update({str(k): v for k, v in metadata.items()})
        self.world.images[iid] = image
        self.world.image_polls[iid] = 0
        state.snapshot = iid
        state.doc["OS-EXT-STS:task_state"] = "image_uploading"
        location = f"{call.base_url}/image/v2/images/{iid}"
        if call.microversion >= (2, 45):
            return 202, {"image_id": iid}, {}
        return 202, None, {"Location": location}

    # -- flavors, key pairs -------------------------------------------------------------------------
    def list_flavors(self, call: Call, detail: bool) -> Reply:
        """``GET /flavors[/detail]``."""
        rows = [f if detail else {"id": f["id"], "name": f["name"], "links": []} for f in self.world.flavors]
        return 200, {"flavors": rows}, {}

    def get_flavor(self, call: Call) -> Reply:
        """``GET /flavors/{id}``."""
        flavor = self._flavor(call.ids[0])
        if flavor is None:
            raise ApiError(404, f"Flavor {call.ids[0]} could not be found.")
        return 200, {"flavor": flavor}, {}

    def flavor_extra_specs(self, call: Call) -> Reply:
        """``GET /flavors/{id}/os-extra_specs``."""
        self.get_flavor(call)
        return 200, {"extra_specs": {}}, {}

    def list_keypairs(self, call: Call) -> Reply:
        """``GET /os-keypairs``."""
        return 200, {"keypairs": [{"keypair": k} for k in self.world.keypairs]}, {}

    def get_keypair(self, call: Call) -> Reply:
        """``GET /os-keypairs/{name}``."""
        found = next((k for k in self.world.keypairs if k["name"] == call.ids[0]), None)
        if found is None:
            raise ApiError(404, f"Keypair {call.ids[0]} not found for user {self.world.project.user_id}")
        doc = dict(found, user_id=self.world.project.user_id, created_at=now_iso(), deleted=False, id=1)
        return 200, {"keypair": doc}, {}
