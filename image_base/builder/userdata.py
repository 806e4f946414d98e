"""Render the builder userdata: the one script every cloud (and Packer) boots the builder machine with.

The builder machine is a stock Ubuntu cloud image. cloud-init runs the rendered script as root; it
downloads the ISO, checks its sha256, writes the k3OS config, runs the embedded ``install.sh
--takeover --poweroff --no-format`` on the root filesystem and forces a reboot, after which k3OS
takes the machine over and powers it off. See ``docs/installer.md``.
"""

from __future__ import annotations

import base64
import gzip
import re
import shlex
from dataclasses import dataclass
from importlib import resources

USERDATA_LIMIT = 16384
"""Largest user-data accepted by the strictest cloud (AWS EC2: 16 KiB before base64)."""

GZIP_MAGIC = b"\x1f\x8b"

_SHA256_RE = re.compile(r"[0-9a-fA-F]{64}")
_TTY_RE = re.compile(r"[A-Za-z][A-Za-z0-9]{0,31}")
_URL_RE = re.compile(r"https?://[^\s/]+\S*")
_PLACEHOLDER_RE = re.compile(r"@([A-Z0-9_]+)@")


class BuilderSpecError(ValueError):
    """A builder spec that cannot be rendered (missing or malformed checksum, bad URL or tty)."""


@dataclass(frozen=True)
class BuilderSpec:
    """What the builder machine needs: where the ISO is, how to check it, and the config to bake in."""

    iso_url: str
    iso_sha256: str | None
    config_yaml: str
    insecure_skip_checksum: bool = False
    tty: str = "ttyS0"
    debug: bool = False

    def __post_init__(self) -> None:
        validate_spec(self)


def validate_spec(spec: BuilderSpec) -> None:
    """Raise :class:`BuilderSpecError` with a one-line reason when ``spec`` cannot be rendered."""
    if not isinstance(spec.iso_url, str) or not _URL_RE.fullmatch(spec.iso_url):
        raise BuilderSpecError(f"iso_url must be an http:// or https:// URL, got {spec.iso_url!r}")
    if spec.iso_sha256 is None or spec.iso_sha256 == "":
        if not spec.insecure_skip_checksum:
            raise BuilderSpecError("iso_sha256 is required (or set insecure_skip_checksum)")
    elif not _SHA256_RE.fullmatch(spec.iso_sha256):
        raise BuilderSpecError("iso_sha256 must be 64 hexadecimal digits")
    if not _TTY_RE.fullmatch(spec.tty):
        raise BuilderSpecError(f"tty must be a device name such as ttyS0, got {spec.tty!r}")
    if not isinstance(spec.config_yaml, str):
        raise BuilderSpecError("config_yaml must be text")


def install_sh_text() -> str:
    """The text of ``image_base/install.sh`` as shipped in the package."""
    return resources.files("image_base").joinpath("install.sh").read_text(encoding="utf-8")


def _template_text() -> str:
    return resources.files("image_base.builder").joinpath("builder.sh.tmpl").read_text(encoding="utf-8")


def _gzip(data: bytes) -> bytes:
    """Deterministic gzip (no timestamp), so the same spec always renders the same bytes."""
    return gzip.compress(data, compresslevel=9, mtime=0)


def _base64_lines(data: bytes) -> str:
    """Base64 in 76-character lines (safe inside a quoted heredoc), without the trailing newline."""
    return base64.encodebytes(data).decode("ascii").rstrip("\n")


def render_builder_script(spec: BuilderSpec) -> str:
    """The builder's bash script, with every value from ``spec`` shell-quoted or base64-encoded."""
    validate_spec(spec)
    installer = _gzip(install_sh_text().encode("utf-8"))
    values = {
        "ISO_URL": shlex.quote(spec.iso_url),
        "ISO_SHA256": shlex.quote((spec.iso_sha256 or "").lower()),
        "TTY": shlex.quote(spec.tty),
        "DEBUG": "1" if spec.debug else "0",
        "CONFIG_GZ_B64": _base64_lines(_gzip(spec.config_yaml.encode("utf-8"))),
        "INSTALL_SH_GZ_B64": _base64_lines(installer),
    }

    def substitute(match: re.Match[str]) -> str:
        return values[match.group(1)]

    # One pass: text that was substituted in is never scanned again.
    return _PLACEHOLDER_RE.sub(substitute, _template_text())


def render_builder_userdata(spec: BuilderSpec) -> bytes:
    """Bytes for the cloud's user-data field: the script, gzipped when it is over USERDATA_LIMIT.

    cloud-init recognises gzip user-data by its magic bytes. Raises :class:`BuilderSpecError` when
    even the gzipped script does not fit (a config of well over 16 KiB of incompressible text).
    """
    script = render_builder_script(spec).encode("utf-8")
    if len(script) <= USERDATA_LIMIT:
        return script
    packed = _gzip(script)
    if len(packed) > USERDATA_LIMIT:
        raise BuilderSpecError(
            f"builder userdata is {len(packed)} bytes gzipped, over the {USERDATA_LIMIT}-byte limit; "
            "shrink the k3OS config"
        )
    return packed
