"""Keystone v3 of the fake OpenStack API: the version documents and ``POST /v3/auth/tokens`` (password
with user/project names or ids and domains, or an application credential by id or name+user). A token
carries the service catalog that points compute, image and network at the same fake server."""

from __future__ import annotations

import uuid
from typing import Any

from factory.fakes.openstack_state import ApiError, Call, Reply, World, now_iso

UNAUTHORIZED = "The request you have made requires authentication."


class Keystone:
    """The identity handlers over a :class:`World`."""

    def __init__(self, world: World) -> None:
        """Serve ``world``."""
        self.world = world

    def _identity_doc(self, base: str) -> dict[str, Any]:
        return {
            "id": "v3.14",
            "status": "stable",
            "updated": "2020-04-07T00:00:00Z",
            "links": [{"rel": "self", "href": f"{base}/v3/"}],
            "media-types": [
                {"base": "application/json", "type": "application/vnd.openstack.identity-v3+json"}
            ],
        }

    def identity_versions(self, call: Call) -> Reply:
        """``GET /``: Keystone's version list (300 Multiple Choices)."""
        return 300, {"versions": {"values": [self._identity_doc(call.base_url)]}}, {}

    def identity_version(self, call: Call) -> Reply:
        """``GET /v3``."""
        return 200, {"version": self._identity_doc(call.base_url)}, {}

    def _authenticate(self, body: Any) -> str:
        """Check the credentials of a token request; return the auth method used. ApiError 401/400."""
        project = self.world.project
        identity = body.get("auth", {}).get("identity") if isinstance(body, dict) else None
        if not isinstance(identity, dict) or not isinstance(identity.get("methods"), list):
            raise ApiError(
                400, "Expecting to find identity in auth. The server could not comply with the request."
            )
        methods = identity["methods"]
        if "application_credential" in methods:
            cred = identity.get("application_credential") or {}
            user = cred.get("user") or {}
            known = cred.get("id") == project.app_cred_id or (
                cred.get("name") == project.app_cred_name and project.user_name in (user.get("name"), None)
            )
            if not known or cred.get("secret") != project.app_cred_secret:
                raise ApiError(401, UNAUTHORIZED)
            if body["auth"].get("scope"):
                raise ApiError(401, "Application credentials cannot request a scope.")
            return "application_credential"
        if "password" not in methods:
            raise ApiError(401, UNAUTHORIZED)
        user = (identity.get("password") or {}).get("user") or {}
        domain = user.get("domain") or {}
        if (
            user.get("id", project.user_id) != project.user_id
            or user.get("name", project.user_name) != project.user_name
        ):
            raise ApiError(401, UNAUTHORIZED)
        if "id" not in user and domain.get("name", domain.get("id")) not in (
            project.domain_name,
            project.domain_id,
        ):
            raise ApiError(401, UNAUTHORIZED)
        if user.get("password") != project.password:
            raise ApiError(401, UNAUTHORIZED)
        scope = ((body["auth"].get("scope") or {}).get("project")) or {}
        wanted = scope.get("id") or scope.get("name")
        if wanted not in (project.id, project.name):
            raise ApiError(401, f"User {project.user_id} has no access to project {wanted}")
        return "password"

    def issue_token(self, call: Call) -> Reply:
        """``POST /v3/auth/tokens``: 201, the token in ``X-Subject-Token``, the catalog in the body."""
        method = self._authenticate(call.body)
        project, base = self.world.project, call.base_url
        token = uuid.uuid4().hex
        self.world.tokens[token] = method
        domain = {"id": project.domain_id, "name": project.domain_name}

        def service(kind: str, name: str, url: str) -> dict[str, Any]:
            endpoints = [
                {
                    "id": uuid.uuid4().hex,
                    "interface": iface,
                    "region": project.region,
                    "region_id": project.region,
                    "url": url,
                }
                for iface in ("public", "internal")
            ]
            return {"id": uuid.uuid4().hex, "type": kind, "name": name, "endpoints": endpoints}

        doc: dict[str, Any] = {
            "methods": [method],
            "user": {
                "id": project.user_id,
                "name": project.user_name,
                "domain": domain,
                "password_expires_at": None,
            },
            "audit_ids": [uuid.uuid4().hex[:22]],
            "expires_at": now_iso(3600).replace("Z", ".000000Z"),
            "issued_at": now_iso().replace("Z", ".000000Z"),
            "project": {"id": project.id, "name": project.name, "domain": domain},
            "is_domain": False,
            "roles": [{"id": uuid.uuid4().hex, "name": "member"}, {"id": uuid.uuid4().hex, "name": "reader"}],
            "catalog": [
                service("identity", "keystone", f"{base}/v3"),
                service("compute", "nova", f"{base}/compute/v2.1"),
                service("image", "glance", f"{base}/image"),
                service("network", "neutron", f"{base}/networking"),
            ],
        }
        if method == "application_credential":
            doc["application_credential"] = {
                "id": project.app_cred_id,
                "name": project.app_cred_name,
                "restricted": True,
            }
        return 201, {"token": doc}, {"X-Subject-Token": token}
