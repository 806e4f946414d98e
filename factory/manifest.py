"""The bake manifest, in Packer's manifest post-processor shape, and the ``--json`` summary.

File shape (a run appends one build; ``last_run_uuid`` is the latest bake id)::

    {"builds": [{"name", "builder_type", "build_time", "files", "artifact_id",
                 "packer_run_uuid", "custom_data"}], "last_run_uuid": "..."}

Tools that read Packer manifests (``jq -r '.builds[-1].artifact_id'``) read ours.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
import urllib.parse
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from factory.clouds.base import Artifact, BakeResult
from factory.pipeline import Redactor, UsageError


def url_without_credentials(url: str) -> str:
    """``url`` without user:password and query string (a presigned URL's signature is a credential),
    for records such as the manifest's ``custom_data``."""
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urllib.parse.urlunsplit((parts.scheme, host, parts.path, "", ""))


def aws_artifact_id(artifacts: Iterable[Artifact]) -> str:
    """Packer's amazon ``artifact_id``: ``region:ami`` pairs, sorted, comma-joined."""
    return ",".join(sorted(f"{a.region}:{a.image_id}" for a in artifacts))


def build_record(
    *, name: str, builder_type: str, bake_id: str, result: BakeResult, redactor: Redactor | None = None
) -> dict[str, Any]:
    """One ``builds[]`` entry for ``result`` (custom_data redacted: it must never carry a secret)."""
    redact = redactor or Redactor()
    return {
        "name": name,
        "builder_type": builder_type,
        "build_time": int(time.time()),
        "files": result.files,
        "artifact_id": result.artifact_id,
        "packer_run_uuid": bake_id,
        "custom_data": {k: redact(str(v)) for k, v in result.custom_data.items()},
    }


def load_manifest(path: Path) -> dict[str, Any]:
    """Read an existing manifest (or an empty one). UsageError if the file is not a manifest."""
    if not path.exists():
        return {"builds": [], "last_run_uuid": ""}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise UsageError(f"--manifest {path}: not a readable JSON manifest ({exc})") from None
    if not isinstance(data, dict) or not isinstance(data.get("builds", []), list):
        raise UsageError(f"--manifest {path}: not a Packer-style manifest (no builds list)")
    data.setdefault("builds", [])
    return data


def append_build(path: Path, record: dict[str, Any]) -> None:
    """Append ``record`` to the manifest at ``path`` (created if missing), atomically."""
    data = load_manifest(path)
    data["builds"].append(record)
    data["last_run_uuid"] = record["packer_run_uuid"]
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(data, fh, indent=2)
            fh.write("\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def json_summary(*, cloud: str, name: str, bake_id: str, result: BakeResult, duration_s: float) -> str:
    """The one-line ``--json`` object printed on stdout after a bake."""
    return json.dumps(
        {
            "cloud": cloud,
            "name": name,
            "bake_id": bake_id,
            "artifacts": [{"region": a.region, "image_id": a.image_id} for a in result.artifacts],
            "duration_s": round(duration_s, 3),
        }
    )
