"""The node's /etc/hosts maps metadata.google.internal to the metadata address (as GCE's own images do:
QEMU's and most private resolvers cannot answer that name), and applying a ``hostname`` keeps it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from image_base.os import payload

K3OS = [sys.executable, "-c", "from image_base.config.cli import main; raise SystemExit(main())"]
METADATA_LINE = "169.254.169.254\tmetadata.google.internal metadata"


def _node_root(tmp_path: Path) -> Path:
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    payload.write_identity(root, "v0.0-test", "built without Kubernetes")
    return root


def test_identity_maps_the_gcp_metadata_name(tmp_path: Path) -> None:
    lines = (_node_root(tmp_path) / "etc/hosts").read_text().splitlines()
    assert METADATA_LINE in lines
    assert "127.0.0.1\tlocalhost" in lines


def test_config_apply_of_hostname_keeps_the_metadata_line(tmp_path: Path) -> None:
    root = _node_root(tmp_path)
    config = root / "var/lib/rancher/k3os/config.yaml"
    config.parent.mkdir(parents=True)
    config.write_text("hostname: node-7\n")
    for _ in range(2):  # every boot applies it again; the line stays exactly once
        res = subprocess.run(
            [*K3OS, "config", "--apply", "--phase", "boot", "--root", str(root)],
            capture_output=True,
            text=True,
        )
        assert res.returncode == 0, res.stderr
    lines = (root / "etc/hosts").read_text().splitlines()
    assert lines.count(METADATA_LINE) == 1
    assert "127.0.1.1\tnode-7" in lines
    assert (root / "etc/hostname").read_text() == "node-7\n"
