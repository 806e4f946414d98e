"""Fixtures for the AWS tests: a moto server on loopback, a fault-injecting proxy in front of it (real
AWS error responses on the wire), and a runner for the real ``factory`` console script."""

from __future__ import annotations

import http.client
import http.server
import os
import threading
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto.server import ThreadedMotoServer

from factory.fakes import httpfake
from tests import cloudkit
from tests.cloudkit import secret_config

__all__ = ["secret_config"]  # a fixture of the aws tests

BAKE_TAG = "k3os-factory:bake-id"
REGION = "us-east-1"

ERROR_XML = (
    '<?xml version="1.0" encoding="UTF-8"?><Response><Errors><Error><Code>{code}</Code>'
    "<Message>{message}</Message></Error></Errors><RequestID>fault-{n}</RequestID></Response>"
)


class Fault(httpfake.Fault):
    """Answer ``times`` calls of an action with this AWS error (``times`` < 0: always), after letting
    ``after`` calls through; the counting is :class:`factory.fakes.httpfake.Fault`'s."""

    def __init__(self, code: str, status: int = 400, times: int = -1, after: int = 0) -> None:
        """The AWS error ``code`` with HTTP ``status``; ``times`` and ``after`` as for every fake."""
        super().__init__(times=times, after=after)
        self.code = code
        self.status = status


@dataclass
class FaultProxy:
    """HTTP proxy in front of moto that fails chosen EC2/STS Actions with a real AWS error body."""

    upstream: tuple[str, int]
    faults: dict[str, Fault] = field(default_factory=dict)
    seen: list[str] = field(default_factory=list)
    params: list[dict[str, str]] = field(default_factory=list)
    times: list[float] = field(default_factory=list)
    server: http.server.ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def start(self) -> None:
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _forward(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                query = urllib.parse.parse_qs(body.decode(errors="replace"))
                action = query.get("Action", [""])[0]
                target = self.headers.get("X-Amz-Target", "")
                name = action or target.rpartition(".")[2]
                proxy.seen.append(name)
                proxy.params.append({k: v[0] for k, v in query.items()})
                proxy.times.append(time.monotonic())
                fault = proxy.faults.get(name)
                if fault and fault.due():
                    payload = ERROR_XML.format(code=fault.code, message="injected", n=fault.hits).encode()
                    self.send_response(fault.status)
                    self.send_header("Content-Type", "text/xml")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                    return
                conn = http.client.HTTPConnection(*proxy.upstream, timeout=30)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection")}
                conn.request(self.command, self.path, body=body, headers=headers)
                resp = conn.getresponse()
                data = resp.read()
                self.send_response(resp.status)
                for k, v in resp.getheaders():
                    if k.lower() not in ("transfer-encoding", "connection", "content-length"):
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                conn.close()

            do_GET = do_POST = do_PUT = do_DELETE = _forward

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self.server:
            self.server.shutdown()
            self.server.server_close()


@pytest.fixture(scope="session")
def moto_server() -> Iterator[str]:
    """One moto server for the session (state is reset per test)."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def aws(moto_server: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[FaultProxy]:
    """A clean moto state, a fault proxy in front of it, and env pointing boto3 (here) at moto."""
    import urllib.request

    urllib.request.urlopen(urllib.request.Request(f"{moto_server}/moto-api/reset", method="POST")).read()
    parsed = urllib.parse.urlparse(moto_server)
    proxy = FaultProxy((parsed.hostname or "127.0.0.1", parsed.port or 80))
    proxy.start()
    for key in list(os.environ):
        if key.startswith("AWS_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server)
    yield proxy
    proxy.stop()


_CLIENTS: dict[tuple[str, str], Any] = {}
_AMIS: dict[str, str] = {}


def ec2(region: str = REGION) -> Any:
    """A client straight to moto (not through the proxy); cached: making one costs ~0.1-0.7 s."""
    key = (region, os.environ.get("AWS_ENDPOINT_URL", ""))
    if key not in _CLIENTS:
        _CLIENTS[key] = boto3.client("ec2", region_name=region)
    return _CLIENTS[key]


def source_ami(region: str = REGION) -> str:
    """An x86_64 AMI moto ships in ``region`` (its default AMIs keep their ids across resets; listing
    all 1300 of them takes over a second, so one name is asked for and the answer cached)."""
    if region not in _AMIS:
        images = ec2(region).describe_images(
            Owners=["amazon"], Filters=[{"Name": "name", "Values": ["amzn2-ami-hvm-*-x86_64-gp2"]}]
        )["Images"]
        _AMIS[region] = str(images[0]["ImageId"])
    return _AMIS[region]


def tagged(bake_id: str | None = None, region: str = REGION) -> dict[str, list[str]]:
    """Live resources carrying the bake-id tag (any bake, or the given one) in ``region``."""
    client = ec2(region)
    flt = (
        [{"Name": f"tag:{BAKE_TAG}", "Values": [bake_id]}]
        if bake_id
        else [{"Name": "tag-key", "Values": [BAKE_TAG]}]
    )
    out: dict[str, list[str]] = {}
    out["instances"] = [
        i["InstanceId"]
        for r in client.describe_instances(Filters=flt)["Reservations"]
        for i in r["Instances"]
        if i["State"]["Name"] != "terminated"
    ]
    out["images"] = [i["ImageId"] for i in client.describe_images(Owners=["self"], Filters=flt)["Images"]]
    out["snapshots"] = [
        s["SnapshotId"] for s in client.describe_snapshots(OwnerIds=["self"], Filters=flt)["Snapshots"]
    ]
    out["volumes"] = [v["VolumeId"] for v in client.describe_volumes(Filters=flt)["Volumes"]]
    return out


class Guest(threading.Thread):
    """Plays the builder's guest: once a tagged builder runs, it 'powers off' (stop_instances)."""

    def __init__(self, delay: float = 0.3, region: str = REGION, terminate: bool = False) -> None:
        super().__init__(daemon=True)
        self.terminate = terminate
        self.delay = delay
        self.region = region
        self.done = threading.Event()
        self.stopped: list[str] = []

    def run(self) -> None:
        client = boto3.client("ec2", region_name=self.region)  # own client: boto3 clients per thread
        deadline = time.monotonic() + 60
        while not self.done.is_set() and time.monotonic() < deadline:
            flt = [
                {"Name": "tag-key", "Values": [BAKE_TAG]},
                {"Name": "instance-state-name", "Values": ["running"]},
            ]
            for res in client.describe_instances(Filters=flt)["Reservations"]:
                for inst in res["Instances"]:
                    if inst["InstanceId"] not in self.stopped:
                        time.sleep(self.delay)
                        if not self._still_running(client, inst["InstanceId"]):
                            continue  # the bake terminated it meanwhile: moto would revive it on stop
                        if self.terminate:
                            client.terminate_instances(InstanceIds=[inst["InstanceId"]])
                        else:
                            client.stop_instances(InstanceIds=[inst["InstanceId"]])
                        self.stopped.append(inst["InstanceId"])
            time.sleep(0.1)

    @staticmethod
    def _still_running(client: Any, instance_id: str) -> bool:
        reservations = client.describe_instances(InstanceIds=[instance_id])["Reservations"]
        return bool(reservations) and reservations[0]["Instances"][0]["State"]["Name"] == "running"


@pytest.fixture
def guest(aws: FaultProxy) -> Iterator[Guest]:
    """A running :class:`Guest`."""
    g = Guest()
    g.start()
    yield g
    g.done.set()
    g.join(5)


@pytest.fixture
def factory_env(aws: FaultProxy, tmp_path: Path) -> dict[str, str]:
    """Environment for the ``factory`` subprocess: through the proxy, dummy credentials, own state dir
    (poll interval 0.2 s: moto answers slower than the other fakes)."""
    return cloudkit.factory_env(
        tmp_path,
        ("AWS_",),
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_DEFAULT_REGION=REGION,
        AWS_ENDPOINT_URL=aws.url,
        AWS_MAX_ATTEMPTS="4",
        FACTORY_POLL_SECONDS="0.2",
    )


def bake_args(tmp_path: Path, *extra: str) -> list[str]:
    """A ``factory bake aws`` command line with the ISO options, moto's source AMI and a per-test
    manifest."""
    return cloudkit.bake_args("aws", tmp_path, "--source-ami", source_ami(), *extra)
