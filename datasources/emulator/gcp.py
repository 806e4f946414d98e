"""Emulator of the Google Compute Engine metadata server (``/computeMetadata/v1/``).

Faithful points: requests without ``Metadata-Flavor: Google`` (or with ``X-Forwarded-For``) get
403; every answer carries ``Metadata-Flavor: Google``; missing keys 404; directories list their
children (``name/`` for sub-directories); ``?recursive=true`` (any case) returns JSON with
camelCase keys as the real server does; ``?alt=json`` renders a leaf as JSON.

Options (``--option KEY=VALUE``):

- ``user_data_encoding=base64``: serve ``user-data`` base64-encoded with
  ``user-data-encoding: base64`` (done automatically when the userdata is not UTF-8 text);
- ``project_ssh_keys=KEY1;KEY2``: project-wide ``ssh-keys``;
- ``block_project_ssh_keys=true``: set the instance attribute ``block-project-ssh-keys``;
- ``legacy_ssh_keys=1``: put the instance keys in the deprecated ``sshKeys`` attribute;
- ``ssh_user=NAME`` (default ``k3os``), ``project_id=ID``, ``numeric_project_id=N``.
"""

from __future__ import annotations

import base64
import json
import urllib.parse

from datasources.emulator import _tree
from datasources.emulator.base import Emulator, Reply, Request

FLAVOR = {"Metadata-Flavor": "Google"}
PREFIX = "/computeMetadata/v1"


def camel(name: str) -> str:
    """``network-interfaces`` -> ``networkInterfaces`` (how recursive JSON spells keys)."""
    head, *rest = name.split("-")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def as_json_tree(node: object, *, inside_attributes: bool = False) -> object:
    """The tree as recursive JSON renders it: camelCase keys except attribute names."""
    if isinstance(node, dict):
        return {
            (key if inside_attributes else camel(key)): as_json_tree(
                value, inside_attributes=key == "attributes"
            )
            for key, value in node.items()
        }
    if isinstance(node, list):
        return [as_json_tree(item) for item in node]
    return node


class GcpEmulator(Emulator):
    """The GCE metadata server."""

    provider = "gcp"

    def instance_attributes(self) -> dict[str, object]:
        """The instance's custom metadata (``instance/attributes/``)."""
        cfg, opts = self.config, self.config.options
        attrs: dict[str, object] = {}
        if cfg.userdata is not None:
            encode = opts.get("user_data_encoding", "").lower() == "base64"
            try:
                text = cfg.userdata.decode("utf-8")
            except UnicodeDecodeError:
                encode = True  # metadata values are text: binary userdata must be sent base64
            if encode:
                attrs["user-data"] = base64.b64encode(cfg.userdata).decode()
                attrs["user-data-encoding"] = "base64"
            else:
                attrs["user-data"] = text
        user = opts.get("ssh_user", "k3os")
        if cfg.ssh_keys:
            key_attr = "sshKeys" if _tree.option_flag(opts, "legacy_ssh_keys") else "ssh-keys"
            attrs[key_attr] = "\n".join(f"{user}:{key}" for key in cfg.ssh_keys)
        if "block_project_ssh_keys" in opts:
            attrs["block-project-ssh-keys"] = opts["block_project_ssh_keys"]
        return attrs

    def tree(self) -> dict[str, object]:
        """The whole metadata tree in path spelling (kebab-case)."""
        cfg, opts = self.config, self.config.options
        project_id = opts.get("project_id", "k3os-factory")
        project_number = opts.get("numeric_project_id", "123456789012")
        short = cfg.hostname.split(".", 1)[0]
        fqdn = cfg.hostname if "." in cfg.hostname else f"{cfg.hostname}.c.{project_id}.internal"
        project_keys = [k.strip() for k in opts.get("project_ssh_keys", "").split(";") if k.strip()]
        project_attrs: dict[str, object] = {}
        if project_keys:
            user = opts.get("ssh_user", "k3os")
            project_attrs["ssh-keys"] = "\n".join(f"{user}:{key}" for key in project_keys)
        instance_id: object = int(cfg.instance_id) if cfg.instance_id.isdigit() else cfg.instance_id
        instance = {
            "attributes": self.instance_attributes(),
            "hostname": fqdn,
            "id": instance_id,
            "name": short,
            "zone": f"projects/{project_number}/zones/{cfg.zone}",
            "machine-type": f"projects/{project_number}/machineTypes/e2-small",
            "network-interfaces": [
                {
                    "ip": cfg.local_ipv4,
                    "mac": "42:01:0a:00:00:02",
                    "network": f"projects/{project_number}/networks/default",
                    "access-configs": [{"external-ip": cfg.public_ipv4, "type": "ONE_TO_ONE_NAT"}],
                }
            ],
            "tags": [],
        }
        project = {
            "attributes": project_attrs,
            "numeric-project-id": int(project_number),
            "project-id": project_id,
        }
        return {"instance": instance, "project": project}

    def route(self, req: Request) -> Reply:
        """Answer as the GCE metadata server."""
        if req.headers.get("metadata-flavor") != "Google" or "x-forwarded-for" in req.headers:
            body = (
                b"Your client does not have permission to get URL from this server. "
                b"Missing Metadata-Flavor:Google header.\n"
            )
            return _tree.text_reply(body, 403, FLAVOR)
        if req.path == "/":
            return _tree.text_reply(b"computeMetadata/\n", headers=FLAVOR)
        if req.path == "/computeMetadata/":
            return _tree.text_reply(b"v1/\n", headers=FLAVOR)
        if req.path != PREFIX and not req.path.startswith(PREFIX + "/"):
            return _tree.not_found(FLAVOR)
        query = {k.lower(): v[-1].lower() for k, v in urllib.parse.parse_qs(req.query).items()}
        node = _tree.lookup(self.tree(), req.path[len(PREFIX) :])
        if node is _tree.MISSING:
            return _tree.not_found(FLAVOR)
        recursive = query.get("recursive") == "true"
        if (_tree.is_directory(node) and recursive) or query.get("alt") == "json":
            in_attributes = req.path.rstrip("/").endswith("/attributes")
            body = json.dumps(as_json_tree(node, inside_attributes=in_attributes)).encode()
            return Reply(200, body, {**_tree.JSON, **FLAVOR})
        if _tree.is_directory(node):
            return _tree.text_reply(_tree.listing(node), headers=FLAVOR)
        return _tree.text_reply(_tree.leaf(node), headers=FLAVOR)


EMULATOR = GcpEmulator
