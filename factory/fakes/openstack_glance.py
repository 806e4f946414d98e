"""Glance (image v2) of the fake OpenStack API: ``GET /v2/images`` (filters, sorting, ``limit`` /
``marker`` pagination with ``next`` links), ``GET|PATCH|DELETE /v2/images/{id}`` (JSON-patch media type,
read-only and reserved attributes refused), ``PUT|DELETE /v2/images/{id}/tags/{tag}``,
``GET|POST /v2/images/{id}/members``. Errors are HTML pages, as Glance's webob answers them."""

from __future__ import annotations

import html
from typing import Any

from factory.fakes.openstack_state import ApiError, Call, Reply, World, now_iso

PATCH_TYPES = ("application/openstack-images-v2.1-json-patch", "application/openstack-images-v2.0-json-patch")
READ_ONLY = frozenset(
    {
        "id",
        "status",
        "owner",
        "created_at",
        "updated_at",
        "size",
        "virtual_size",
        "checksum",
        "os_hash_algo",
        "os_hash_value",
        "self",
        "file",
        "schema",
        "direct_url",
        "locations",
        "tags",
    }
)
VISIBILITIES = ("public", "private", "shared", "community")
DEFAULT_LIMIT = 25
_LIST_PARAMS = frozenset({"limit", "marker", "sort", "sort_key", "sort_dir", "member_status"})
_TITLES = {
    400: "Bad Request",
    403: "Forbidden",
    404: "Not Found",
    409: "Conflict",
    413: "Request Entity Too Large",
    415: "Unsupported Media Type",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


def glance_error(status: int, message: str) -> str:
    """Glance's HTML error page for ``status`` with ``message``."""
    title = f"{status} {_TITLES.get(status, 'Error')}"
    return (
        f"<html>\n <head>\n  <title>{title}</title>\n </head>\n <body>\n  <h1>{title}</h1>\n"
        f"  {html.escape(message)}<br /><br />\n\n\n\n </body>\n</html>"
    )


def versions(base: str) -> dict[str, Any]:
    """Glance's version list (``GET /image/`` answers it with 300 Multiple Choices)."""
    rows = []
    for vid, status in (("v2.16", "CURRENT"), ("v2.15", "SUPPORTED"), ("v2.0", "SUPPORTED")):
        rows.append({"id": vid, "status": status, "links": [{"rel": "self", "href": f"{base}/image/v2/"}]})
    return {"versions": rows}


class Glance:
    """The image handlers over a :class:`World`."""

    def __init__(self, world: World) -> None:
        """Serve ``world``."""
        self.world = world

    def _visible(self, image: dict[str, Any]) -> bool:
        project = self.world.project.id
        if image["owner"] == project or image["visibility"] in ("public", "community"):
            return True
        return any(m["member_id"] == project for m in self.world.members.get(image["id"], []))

    def _image(self, iid: str) -> dict[str, Any]:
        image = self.world.tick_image(iid)
        if image is None or not self._visible(image):
            raise ApiError(404, f"No image found with ID {iid}")
        return image

    def _own(self, iid: str, what: str) -> dict[str, Any]:
        image = self._image(iid)
        if image["owner"] != self.world.project.id:
            raise ApiError(403, f"You are not permitted to {what} this image.")
        return image

    def list_images(self, call: Call) -> Reply:
        """``GET /v2/images``: filters on any attribute or property, ``tag`` (all must match)."""
        rows = [img for iid in list(self.world.images) if (img := self.world.tick_image(iid)) is not None]
        rows = [r for r in rows if self._visible(r)]
        if "visibility" not in call.query:  # community images are listed only when asked for
            rows = [r for r in rows if r["visibility"] != "community" or r["owner"] == self.world.project.id]
        for key, values in call.query.items():
            if key in _LIST_PARAMS:
                continue
            if key == "tag":
                rows = [r for r in rows if all(v in r["tags"] for v in values)]
            elif key == "visibility" and values[0] == "all":
                continue
            else:
                rows = [r for r in rows if str(r.get(key)) == values[0]]
        sort_key, sort_dir = call.arg("sort_key") or "created_at", call.arg("sort_dir") or "desc"
        if call.arg("sort"):
            sort_key, _, sort_dir = str(call.arg("sort")).split(",")[0].partition(":")
            sort_dir = sort_dir or "desc"
        if sort_dir not in ("asc", "desc"):
            raise ApiError(400, f"Invalid sort direction: {sort_dir}")
        rows.sort(key=lambda r: (str(r.get(sort_key) or ""), r["id"]), reverse=sort_dir == "desc")
        marker = call.arg("marker")
        if marker:
            ids = [r["id"] for r in rows]
            if marker not in ids:
                raise ApiError(400, f"Invalid marker. Image {marker} could not be found.")
            rows = rows[ids.index(marker) + 1 :]
        try:
            limit = int(call.arg("limit") or DEFAULT_LIMIT)
        except ValueError:
            raise ApiError(400, "limit param must be an integer") from None
        page = rows[:limit]
        doc: dict[str, Any] = {"images": page, "first": "/v2/images", "schema": "/v2/schemas/images"}
        if len(rows) > limit and page:
            keep = "&".join(f"{k}={v[0]}" for k, v in call.query.items() if k not in ("marker",))
            doc["next"] = f"/v2/images?marker={page[-1]['id']}" + (f"&{keep}" if keep else "")
        return 200, doc, {}

    def get_image(self, call: Call) -> Reply:
        """``GET /v2/images/{id}``."""
        return 200, self._image(call.ids[0]), {}

    def delete_image(self, call: Call) -> Reply:
        """``DELETE /v2/images/{id}``: 204; protected or foreign images are refused."""
        image = self._own(call.ids[0], "delete")
        if image["protected"]:
            raise ApiError(403, f"Image {call.ids[0]} is protected and cannot be deleted.")
        del self.world.images[call.ids[0]]
        self.world.image_polls.pop(call.ids[0], None)
        self.world.members.pop(call.ids[0], None)
        return 204, None, {}

    def patch_image(self, call: Call) -> Reply:
        """``PATCH /v2/images/{id}`` with a JSON-patch document (add/replace/remove)."""
        ctype = call.headers.get("content-type", "").split(";")[0].strip()
        if ctype not in PATCH_TYPES:
            raise ApiError(415, f"Unsupported Content-Type {ctype!r}")
        image = self._own(call.ids[0], "modify")
        if not isinstance(call.body, list):
            raise ApiError(400, "Request body must be a JSON array of operation objects.")
        updated = dict(image)
        for change in call.body:
            self._apply(updated, change)
        updated["updated_at"] = now_iso()
        image.clear()
        image.update(updated)
        return 200, image, {}

    @staticmethod
    def _apply(image: dict[str, Any], change: Any) -> None:
        if not isinstance(change, dict) or change.get("op") not in ("add", "replace", "remove"):
            raise ApiError(
                400, "Operation objects must contain exactly one member named 'op' (add/replace/remove)"
            )
        path = str(change.get("path", ""))
        key = path[1:].replace("~1", "/").replace("~0", "~") if path.startswith("/") else ""
        if not key or "/" in path[1:]:
            raise ApiError(400, f"Invalid JSON pointer for this resource: '{path}'")
        if key in READ_ONLY:
            raise ApiError(403, f"Attribute '{key}' is read-only.")
        if key.startswith("os_glance"):
            raise ApiError(403, f"Attribute '{key}' is reserved.")
        op = change["op"]
        if op == "remove":
            if key not in image:
                raise ApiError(409, f"Property {key} does not exist.")
            del image[key]
            return
        if op == "replace" and key not in image:
            raise ApiError(409, f"Property {key} does not exist.")
        value = change.get("value")
        if key == "visibility" and value not in VISIBILITIES:
            raise ApiError(400, f"Invalid visibility value: {value}")
        if len(key) > 255 or (isinstance(value, str) and len(value) > 65535):
            raise ApiError(400, f"Property {key} is too long")
        image[key] = value

    def put_tag(self, call: Call) -> Reply:
        """``PUT /v2/images/{id}/tags/{tag}``."""
        image = self._own(call.ids[0], "modify")
        tag = call.ids[1]
        if len(tag) > 255:
            raise ApiError(400, "Tag is too long")
        if tag not in image["tags"]:
            image["tags"].append(tag)
        return 204, None, {}

    def delete_tag(self, call: Call) -> Reply:
        """``DELETE /v2/images/{id}/tags/{tag}``."""
        image = self._own(call.ids[0], "modify")
        if call.ids[1] not in image["tags"]:
            raise ApiError(404, f"Tag {call.ids[1]} not found")
        image["tags"].remove(call.ids[1])
        return 204, None, {}

    def list_members(self, call: Call) -> Reply:
        """``GET /v2/images/{id}/members``."""
        self._image(call.ids[0])
        return 200, {"members": self.world.members.get(call.ids[0], []), "schema": "/v2/schemas/members"}, {}

    def add_member(self, call: Call) -> Reply:
        """``POST /v2/images/{id}/members``: only shared images have members."""
        image = self._own(call.ids[0], "share")
        member = call.body.get("member") if isinstance(call.body, dict) else None
        if not isinstance(member, str) or not member:
            raise ApiError(400, "Member to be added not specified")
        if image["visibility"] != "shared":
            raise ApiError(403, "Only shared images have members.")
        rows = self.world.members.setdefault(call.ids[0], [])
        if any(m["member_id"] == member for m in rows):
            raise ApiError(409, f"Member {member} already exists for image {call.ids[0]}")
        doc = {
            "created_at": now_iso(),
            "updated_at": now_iso(),
            "image_id": call.ids[0],
            "member_id": member,
            "status": "pending",
            "schema": "/v2/schemas/member",
        }
        rows.append(doc)
        return 200, doc, {}
