"""End-to-end ``factory bake aws`` runs of the real console script against a moto server."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest

from tests.aws.conftest import BAKE_TAG, REGION, FaultProxy, Guest, bake_args, ec2, tagged
from tests.cloudkit import SECRETS, interrupt_when, run_factory

pytestmark = pytest.mark.cloud


def test_bake_with_copy_tags_and_sharing(
    aws: FaultProxy, guest: Guest, factory_env: dict[str, str], tmp_path: Path, secret_config: Path
) -> None:
    args = bake_args(
        tmp_path,
        "--name", "k3os-e2e-1",
        "--config", str(secret_config),
        "--copy-to-regions", "eu-west-1",
        "--tag", "team=platform",
        "--share-with", "210987654321",
        "--json",
    )  # fmt: skip
    proc = run_factory(args, factory_env)
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)  # the only thing on stdout
    assert set(summary) == {"cloud", "name", "bake_id", "artifacts", "duration_s"}
    assert all(set(a) == {"region", "image_id"} for a in summary["artifacts"])
    assert summary["cloud"] == "aws" and summary["name"] == "k3os-e2e-1"
    by_region = {a["region"]: a["image_id"] for a in summary["artifacts"]}
    assert set(by_region) == {REGION, "eu-west-1"}
    for region, image_id in by_region.items():
        client = ec2(region)
        image = client.describe_images(ImageIds=[image_id])["Images"][0]
        tags = {t["Key"]: t["Value"] for t in image.get("Tags", [])}
        assert tags["team"] == "platform"
        assert tags[BAKE_TAG] == summary["bake_id"]
        assert tags["k3os-factory:state"] == "complete"
        perms = client.describe_image_attribute(ImageId=image_id, Attribute="launchPermission")
        assert {"UserId": "210987654321"} in perms["LaunchPermissions"]
        for bdm in image["BlockDeviceMappings"]:
            snap = client.describe_snapshots(SnapshotIds=[bdm["Ebs"]["SnapshotId"]])["Snapshots"][0]
            assert {t["Key"]: t["Value"] for t in snap.get("Tags", [])}.get(BAKE_TAG) == summary["bake_id"]
    # the builder is terminated, its user data carried the config
    reservations = ec2().describe_instances(
        Filters=[{"Name": f"tag:{BAKE_TAG}", "Values": [summary["bake_id"]]}]
    )
    states = [i["State"]["Name"] for r in reservations["Reservations"] for i in r["Instances"]]
    assert states == ["terminated"]
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert set(manifest) == {"builds", "last_run_uuid"}
    build = manifest["builds"][-1]
    assert set(build) == {"name", "builder_type", "build_time", "files", "artifact_id", "packer_run_uuid",
                          "custom_data"}  # fmt: skip
    assert build["name"] == "k3os-e2e-1"
    assert manifest["last_run_uuid"] == summary["bake_id"] == build["packer_run_uuid"]
    assert build["builder_type"] == "amazon-ebs" and build["files"] is None
    assert build["artifact_id"] == ",".join(sorted(f"{r}:{i}" for r, i in by_region.items()))
    assert isinstance(build["build_time"], int) and build["custom_data"]["bake_id"] == summary["bake_id"]
    everything = proc.stdout + proc.stderr + (tmp_path / "manifest.json").read_text()
    for secret in SECRETS:
        assert secret not in everything
    assert "wait-stopped: waiting up to" in proc.stderr


def test_second_bake_appends_to_manifest(
    aws: FaultProxy, guest: Guest, factory_env: dict[str, str], tmp_path: Path
) -> None:
    for name in ("k3os-a", "k3os-b"):
        proc = run_factory(bake_args(tmp_path, "--name", name), factory_env)
        assert proc.returncode == 0, proc.stderr
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert [b["name"] for b in manifest["builds"]] == ["k3os-a", "k3os-b"]
    assert manifest["last_run_uuid"] == manifest["builds"][1]["packer_run_uuid"]


def test_invalid_config_exits_2_and_creates_nothing(
    aws: FaultProxy, factory_env: dict[str, str], tmp_path: Path
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("k3os:\n  password: Pa55-w0rd-XYZZY\n  wifi:\n    - name: x\n      passphrase: short\n")
    proc = run_factory(bake_args(tmp_path, "--config", str(bad)), factory_env)
    assert proc.returncode == 2
    assert "k3os.wifi[0].passphrase" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr
    assert ec2().describe_instances()["Reservations"] == []
    assert "RunInstances" not in aws.seen


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_signal_while_waiting_cleans_up(
    aws: FaultProxy, factory_env: dict[str, str], tmp_path: Path, sig: signal.Signals
) -> None:
    rc, out, err = interrupt_when(
        bake_args(tmp_path, "--name", "k3os-sig"), factory_env, "wait-stopped: waiting", sig
    )
    assert rc == 128 + sig, err
    assert f"interrupted by {sig.name}" in err
    assert tagged() == {"instances": [], "images": [], "snapshots": [], "volumes": []}
    assert ec2().describe_images(Owners=["self"])["Images"] == []
    assert not (tmp_path / "manifest.json").exists()


def test_dry_run_creates_nothing(aws: FaultProxy, factory_env: dict[str, str], tmp_path: Path) -> None:
    proc = run_factory(
        bake_args(tmp_path, "--dry-run", "--tag", "a=b", "--copy-to-regions", "eu-west-1"), factory_env
    )
    assert proc.returncode == 0, proc.stderr
    assert "launch-builder" in proc.stdout and "a=b" in proc.stdout and "eu-west-1" in proc.stdout
    assert not [a for a in aws.seen if a in ("RunInstances", "CreateImage", "CopyImage")]
    assert ec2().describe_instances()["Reservations"] == []
