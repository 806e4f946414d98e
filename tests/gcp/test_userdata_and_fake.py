"""The pieces under the end-to-end runs: the metadata items cloud-init reads, the label mapping, and
the fake API's wire behaviour (auth, error documents) as seen by plain HTTP."""

from __future__ import annotations

import argparse
import base64
import gzip
import json
import subprocess
import sys
import urllib.error
import urllib.request

import pytest

from factory.clouds.gcp import GcpBackend
from factory.clouds.gcp_client import BAKE_ID_LABEL, STATE_LABEL, base_labels
from factory.clouds.gcp_steps import userdata_items
from factory.commands.bake import add_common_arguments, build_request
from factory.fakes.gcp_api import FakeGcp
from factory.pipeline import UsageError
from image_base.builder import BuilderSpec, render_builder_userdata


def test_plain_userdata_is_text() -> None:
    data = render_builder_userdata(BuilderSpec("https://example.invalid/k.iso", "b" * 64, "hostname: x\n"))
    items = userdata_items(data)
    assert [(i.key, i.value) for i in items] == [("user-data", data.decode())]


def test_gzip_userdata_is_base64_with_encoding() -> None:
    packed = gzip.compress(b"#!/bin/bash\necho hi\n")
    items = {i.key: i.value for i in userdata_items(packed)}
    assert items["user-data-encoding"] == "base64"
    assert base64.b64decode(items["user-data"]) == packed


def test_labels_use_gce_key_syntax() -> None:
    labels = base_labels("3f2a0000-0000-4000-8000-000000000000", {"team": "x"}, "pending")
    assert BAKE_ID_LABEL == "k3os-factory-bake-id" and STATE_LABEL == "k3os-factory-state"
    assert labels[BAKE_ID_LABEL].startswith("3f2a") and labels["k3os-factory-created"].isdigit()
    assert all(":" not in key for key in labels)


def _get(url: str, token: str | None = None) -> tuple[int, dict[str, object]]:
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_fake_requires_valid_credentials() -> None:
    with FakeGcp() as fake:
        url = f"{fake.url}/compute/v1/projects/fake-project"
        status, doc = _get(url)
        assert status == 401 and doc["error"]["status"] == "UNAUTHENTICATED"  # type: ignore[index]
        status, doc = _get(url, "not.a.jwt")
        assert status == 401 and doc["error"]["errors"][0]["reason"] == "authError"  # type: ignore[index]
        fake.require_auth = False
        status, doc = _get(f"{fake.url}/compute/v1/projects/fake-project/global/images/nope")
        assert status == 404 and doc["error"]["errors"][0]["reason"] == "notFound"  # type: ignore[index]
        status, doc = _get(f"{fake.url}/compute/v1/projects/fake-project/global/images?filter=name%3Dx")
        assert status == 400 and "filter" in str(doc)


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--name", "K3OS_Image"], "GCE image names"),
        (["--zone", "mars"], "not a GCE zone"),
        (["--machine-type", "E2 small"], "--machine-type"),
        (["--storage-location", "US/East"], "--storage-location"),
        (["--image-family", "Bad_Family"], "--image-family"),
        (["--disk-size", "5"], "--disk-size"),
        (["--tag", "k3os-factory-state=x"], "reserved"),
        (["--tag", "team=Platform"], "GCE label values"),
        (["--iso", __file__], "needs --iso-url"),
    ],
)
def test_validate_refuses_bad_flags_offline(flags: list[str], message: str) -> None:
    backend = GcpBackend()
    parser = argparse.ArgumentParser()
    add_common_arguments(parser)
    backend.add_arguments(parser)
    iso = [] if "--iso" in flags else ["--iso-url", "https://example.invalid/k.iso"]
    args = parser.parse_args([*iso, "--insecure-skip-checksum", *flags])
    with pytest.raises(UsageError, match=message):
        backend.validate(args, build_request(args, backend))
    assert backend._clients is None  # no credentials looked up, no client made


def _python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)


def test_loading_the_backend_does_not_import_the_sdk() -> None:
    # usage errors and validation come before any API call: they must not pay the SDK's import
    proc = _python(
        "import sys\n"
        "from factory.clouds.base import load_backend\n"
        "load_backend('gcp')\n"
        "heavy = ('google.cloud.compute_v1', 'google.api_core', 'google.auth', 'requests')\n"
        "print(sorted(m for m in sys.modules if m.startswith(heavy)))\n"
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


def test_a_missing_sdk_is_a_usage_error_naming_the_extra() -> None:
    proc = _python(
        "import importlib.abc, sys\n"
        "class Hide(importlib.abc.MetaPathFinder):\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'google.cloud.compute_v1':\n"
        "            raise ModuleNotFoundError(f'No module named {name!r}', name=name)\n"
        "sys.meta_path.insert(0, Hide())\n"
        "from factory.clouds.base import load_backend\n"
        "from factory.pipeline import UsageError\n"
        "try:\n"
        "    load_backend('gcp')\n"
        "except UsageError as exc:\n"
        "    print(exc)\n"
    )
    assert proc.returncode == 0, proc.stderr
    assert "needs the Python package 'google.cloud.compute_v1'" in proc.stdout
    assert "pip install 'k3os-factory[gcp]'" in proc.stdout
