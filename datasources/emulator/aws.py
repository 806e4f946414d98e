"""Emulator of the AWS EC2 instance metadata service (IMDS), IMDSv2 tokens included.

Options (``--option KEY=VALUE``):

- ``imds=optional`` (default): GETs work with or without a token; an invalid token is 401.
- ``imds=required``: GETs without a valid token are 401 (``HttpTokens=required``).
- ``imds=disabled``: every request is 403 (``HttpEndpoint=disabled``).
- ``imds=hop-limit``: the token PUT is never answered (its reply died one hop too early);
  GETs work as with ``optional``.
- ``imds=v1``: an EC2 clone without tokens: the PUT is 405.
- ``imds=v1-404``: an EC2 clone without tokens that answers the PUT 404 (unknown path).
- ``rotate=N``: a token expires after it was used for N GETs (an accelerated expiry).
- ``reject_tokens=1``: tokens are issued but every GET carrying one is 401 (a server whose
  tokens are always stale): the client must give up after one refresh.
- ``openstack=1``: also serve ``/openstack`` (OpenStack's EC2 tree; implies ``imds=v1``).

Tokens honour their TTL (expired: 401); a PUT without a valid TTL header is 400, and a PUT
carrying ``X-Forwarded-For`` is 403.
"""

from __future__ import annotations

import json
import secrets
import threading

from datasources.emulator.base import Emulator, EmulatorConfig, Reply, Request, time_now

TTL_HEADER = "x-aws-ec2-metadata-token-ttl-seconds"
TOKEN_HEADER = "x-aws-ec2-metadata-token"
MAX_TTL = 21600
VERSIONS = ("1.0", "2007-01-19", "2009-04-04", "2016-09-02", "2018-09-24", "2021-03-23", "latest")
IMDS_MODES = ("optional", "required", "disabled", "hop-limit", "v1", "v1-404")
# Clones without tokens: the PUT fails, GETs ignore any token header.
V1_MODES = ("v1", "v1-404")


class AwsEmulator(Emulator):
    """IMDS on loopback."""

    provider = "aws"

    def __init__(self, config: EmulatorConfig, host: str = "127.0.0.1", port: int = 0) -> None:
        super().__init__(config, host, port)
        opts = config.options
        self.openstack = opts.get("openstack", "") in ("1", "true", "yes")
        self.mode = opts.get("imds", "v1" if self.openstack else "optional")
        if self.mode not in IMDS_MODES:
            raise ValueError(f"imds must be one of {', '.join(IMDS_MODES)}, not {self.mode!r}")
        self.rotate = int(opts.get("rotate", "0") or 0)
        self.reject_tokens = opts.get("reject_tokens", "") in ("1", "true", "yes")
        self.tokens: dict[str, float] = {}  # token -> expiry (wall clock)
        self.tokens_issued = 0
        self._uses: dict[str, int] = {}
        self._lock = threading.Lock()

    # -- tokens -------------------------------------------------------------------------------

    def _put_token(self, req: Request) -> Reply:
        if self.mode == "hop-limit":
            self.stopping.wait()
            return Reply(504, b"")
        if self.mode == "v1":
            return Reply(405, b"Method Not Allowed\n")
        if self.mode == "v1-404":
            return _not_found()
        if "x-forwarded-for" in req.headers:
            return Reply(403, b"Forbidden\n")
        ttl_text = req.headers.get(TTL_HEADER, "")
        if not ttl_text.isdigit() or not 1 <= int(ttl_text) <= MAX_TTL:
            return Reply(400, b"Missing or Invalid Parameters\n")
        token = "AQAE" + secrets.token_urlsafe(40)
        with self._lock:
            self.tokens[token] = time_now() + int(ttl_text)
            self.tokens_issued += 1
        return Reply(200, token.encode(), {TTL_HEADER: ttl_text, "Content-Type": "text/plain"})

    def _token_ok(self, token: str) -> bool:
        if self.reject_tokens:
            return False
        with self._lock:
            expiry = self.tokens.get(token)
            if expiry is None or expiry <= time_now():
                self.tokens.pop(token, None)
                return False
            uses = self._uses.get(token, 0) + 1
            self._uses[token] = uses
            if self.rotate and uses >= self.rotate:
                self.tokens.pop(token, None)
            return True

    # -- routing ------------------------------------------------------------------------------

    def route(self, req: Request) -> Reply:
        """Answer as IMDS would."""
        if self.mode == "disabled":
            return Reply(403, b"Forbidden\n")
        if req.method == "PUT":
            if req.path == "/latest/api/token":
                return self._put_token(req)
            return Reply(403 if req.path.endswith("/api/token") else 405, b"")
        if req.method not in ("GET", "HEAD"):
            return Reply(405, b"")
        token = req.headers.get(TOKEN_HEADER)
        if token is not None and self.mode not in V1_MODES:
            if not self._token_ok(token):
                return Reply(401, b"Unauthorized\n")
        elif self.mode == "required":
            return Reply(401, b"Unauthorized\n")
        return self._tree(req.path)

    def _tree(self, path: str) -> Reply:
        if path in ("", "/"):
            return _text("\n".join(VERSIONS))
        if self.openstack and path.rstrip("/") == "/openstack":
            return _text("2012-08-10\n2013-04-04\n2016-06-30\nlatest")
        parts = path.strip("/").split("/", 1)
        if parts[0] not in VERSIONS:
            return _not_found()
        rest = parts[1] if len(parts) > 1 else ""
        if rest == "":
            top = ["dynamic", "meta-data"] + (["user-data"] if self.config.userdata is not None else [])
            return _text("\n".join(top))
        if rest == "user-data":
            if self.config.userdata is None:
                return _not_found()
            return Reply(200, self.config.userdata, {"Content-Type": "application/octet-stream"})
        return self._lookup(rest)

    def _leaves(self) -> dict[str, str]:
        c = self.config
        leaves = {
            "meta-data/ami-id": "ami-0abcdef1234567890",
            "meta-data/instance-id": c.instance_id,
            "meta-data/instance-type": "t3.small",
            "meta-data/hostname": f"ip-{c.local_ipv4.replace('.', '-')}.{c.region}.compute.internal",
            "meta-data/local-hostname": c.hostname,
            "meta-data/local-ipv4": c.local_ipv4,
            "meta-data/placement/availability-zone": c.zone,
            "meta-data/placement/region": c.region,
            "dynamic/instance-identity/document": json.dumps(self._document(), indent=2),
        }
        if c.public_ipv4:
            leaves["meta-data/public-ipv4"] = c.public_ipv4
        for i, key in enumerate(c.ssh_keys):
            leaves[f"meta-data/public-keys/{i}/openssh-key"] = key
        return leaves

    def _document(self) -> dict[str, object]:
        c = self.config
        return {
            "accountId": "123456789012",
            "architecture": "x86_64",
            "availabilityZone": c.zone,
            "imageId": "ami-0abcdef1234567890",
            "instanceId": c.instance_id,
            "instanceType": "t3.small",
            "privateIp": c.local_ipv4,
            "region": c.region,
            "version": "2017-09-30",
        }

    def _lookup(self, rest: str) -> Reply:
        leaves = self._leaves()
        key = rest.rstrip("/")
        if key == "meta-data/public-keys" and self.config.ssh_keys:
            names = [f"{i}=key-{i}" for i in range(len(self.config.ssh_keys))]
            return _text("\n".join(names))
        if key in leaves and not rest.endswith("/"):
            return _text(leaves[key])
        prefix = key + "/"
        children: list[str] = []
        for leaf in leaves:
            if leaf.startswith(prefix):
                head, sep, _ = leaf[len(prefix) :].partition("/")
                entry = head + ("/" if sep else "")
                if entry not in children:
                    children.append(entry)
        if not children:
            return _not_found()
        return _text("\n".join(sorted(children)))


def _text(body: str) -> Reply:
    return Reply(200, body.encode(), {"Content-Type": "text/plain"})


def _not_found() -> Reply:
    body = b'<?xml version="1.0" encoding="iso-8859-1"?>\n<title>404 - Not Found</title>\n'
    return Reply(404, body, {"Content-Type": "text/html"})


EMULATOR = AwsEmulator
