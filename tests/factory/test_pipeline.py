"""The bake pipeline, journal, manifest and duration parsing, with real files and real signals."""

from __future__ import annotations

import io
import json
import os
import signal
import threading
from pathlib import Path

import pytest

from factory.clouds.base import Artifact, BakeResult, available_clouds, load_backend
from factory.cmdutil import parse_duration
from factory.journal import Journal, Resource, read_journal
from factory.manifest import append_build, aws_artifact_id, build_record, url_without_credentials
from factory.pipeline import (
    BakeContext,
    BakeFailed,
    Pipeline,
    Redactor,
    Step,
    StepFailed,
    Timeouts,
    UsageError,
    WaitTimeout,
    format_duration,
)


def _ctx(tmp_path: Path, secrets: tuple[str, ...] = ()) -> tuple[BakeContext, io.StringIO]:
    out = io.StringIO()
    journal = Journal("b-1", "test", "img", directory=tmp_path)
    ctx = BakeContext(cloud="test", name="img", bake_id="b-1", journal=journal, redactor=Redactor(secrets),
                      stream=out, poll_interval=0.01)  # fmt: skip
    return ctx, out


def test_cleanups_run_in_reverse_and_failure_names_leftovers(tmp_path: Path) -> None:
    ctx, out = _ctx(tmp_path, ("hunter22",))
    undone: list[str] = []

    def make(c: BakeContext) -> None:
        c.created(Resource("disk", "d1"), lambda: undone.append("d1"))
        c.created(Resource("vm", "v1"), lambda: undone.append("v1"))
        c.created(Resource("nic", "n1"), lambda: (_ for _ in ()).throw(RuntimeError("busy")))

    def boom(c: BakeContext) -> None:
        raise StepFailed("bad password hunter22")

    with pytest.raises(BakeFailed) as info:
        Pipeline(ctx, [Step("make", make), Step("boom", boom)]).run()
    assert undone == ["v1", "d1"]
    assert info.value.exit_code == 1
    assert "could not remove: nic n1" in str(info.value) and "hunter22" not in str(info.value)
    assert "hunter22" not in out.getvalue()
    state = read_journal(tmp_path / "b-1.jsonl")
    assert state.ended and state.outstanding == [Resource("nic", "n1")]


def test_success_keeps_products_and_deletes_journal(tmp_path: Path) -> None:
    ctx, _ = _ctx(tmp_path)
    removed: list[str] = []

    def make(c: BakeContext) -> None:
        c.keep(c.created(Resource("image", "i1"), lambda: removed.append("i1")))

    Pipeline(ctx, [Step("make", make)]).run()
    assert removed == [] and not (tmp_path / "b-1.jsonl").exists()


def test_wait_deadline_and_transient_errors(tmp_path: Path) -> None:
    ctx, out = _ctx(tmp_path)
    ctx.is_transient = lambda exc: isinstance(exc, ConnectionError)
    calls = iter([ConnectionError("throttled"), None, "ready"])

    def check() -> str | None:
        item = next(calls)
        if isinstance(item, Exception):
            raise item
        return item

    assert ctx.wait("phase", "thing", check) == "ready"
    assert "waiting up to" in out.getvalue() and "transient error" in out.getvalue()
    with pytest.raises(WaitTimeout, match="gave up after .*extra detail"):
        ctx.wait("slow", "never", lambda: None, timeout_s=0.05, on_timeout=lambda: "extra detail")


def test_sigint_runs_cleanup_and_survives_a_second_signal(tmp_path: Path) -> None:
    ctx, out = _ctx(tmp_path)
    cleaned: list[str] = []

    def cleanup() -> None:
        os.kill(os.getpid(), signal.SIGINT)  # second Ctrl-C while cleaning
        cleaned.append("vm")

    def make(c: BakeContext) -> None:
        c.created(Resource("vm", "v1"), cleanup)
        threading.Timer(0.1, os.kill, (os.getpid(), signal.SIGINT)).start()
        c.wait("wait", "forever", lambda: None, timeout_s=30)

    with pytest.raises(BakeFailed) as info:
        Pipeline(ctx, [Step("make", make)]).run()
    assert info.value.exit_code == 130 and cleaned == ["vm"]
    assert "finishing cleanup" in out.getvalue()
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_timeouts_cap_phase_by_overall() -> None:
    t = Timeouts(overall_s=100, phase_defaults={"a": 500, "b": 10}, overrides={"b": 20})
    assert 99 <= t.for_phase("a") <= 100 and t.for_phase("b") == 20
    assert format_duration(2400) == "40m0s" and format_duration(3725) == "1h2m5s"


@pytest.mark.parametrize(("text", "seconds"), [("30m", 1800), ("6h", 21600), ("2d", 172800), ("0s", 0)])
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "5", "1y", "-3h", "h"])
def test_parse_duration_rejects(text: str) -> None:
    with pytest.raises(UsageError):
        parse_duration(text)


def test_manifest_appends_in_packer_shape(tmp_path: Path) -> None:
    path = tmp_path / "m.json"
    arts = [Artifact("us-west-2", "ami-2"), Artifact("eu-west-1", "ami-1")]
    result = BakeResult(arts, aws_artifact_id(arts), None, {"note": "s3cret here"})
    for bake in ("u1", "u2"):
        rec = build_record(
            name="n", builder_type="amazon-ebs", bake_id=bake, result=result, redactor=Redactor(["s3cret"])
        )
        append_build(path, rec)
    data = json.loads(path.read_text())
    assert data["last_run_uuid"] == "u2" and len(data["builds"]) == 2
    assert data["builds"][0]["artifact_id"] == "eu-west-1:ami-1,us-west-2:ami-2"
    assert data["builds"][0]["custom_data"] == {"note": "*** here"}
    assert set(data["builds"][0]) == {"name", "builder_type", "build_time", "files", "artifact_id",
                                      "packer_run_uuid", "custom_data"}  # fmt: skip


def test_backend_registry() -> None:
    assert available_clouds()[:5] == ["aws", "gcp", "openstack", "hetzner", "qemu"]
    with pytest.raises(UsageError, match="unknown cloud"):
        load_backend("nope")
    assert load_backend("aws").default_data_sources == ("aws",)


def test_manifest_urls_lose_credentials_and_signatures() -> None:
    url = "https://user:pa55@example.invalid:8443/k3os.iso?X-Amz-Signature=abc&X-Amz-Credential=x"
    assert url_without_credentials(url) == "https://example.invalid:8443/k3os.iso"
    assert url_without_credentials("http://example.invalid/k3os.iso") == "http://example.invalid/k3os.iso"
