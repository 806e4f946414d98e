"""``factory packer render``: the builder userdata and a ``.pkrvars.hcl`` for one cloud's template.

The userdata comes from :func:`image_base.builder.render_builder_userdata`, the function
``factory bake`` uses, with the config checked and defaulted by the bake's own
:func:`factory.commands.bake.load_bake_config`, so both paths bake the same bytes. For qemu, render
also writes the NoCloud ``meta-data``, points the ISO server at the ISO, resolves the accelerator and
checksums the base disk. Nothing secret is printed; the files are written mode 0600.
"""

from __future__ import annotations

import os
import socket
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from factory.packer.hcl import HclError, HclValue, declared_variables, parse_value, render_var_file
from factory.packer.templates import TEMPLATES, Template, template_dir
from factory.pipeline import UsageError

ISO_NAME = "k3os.iso"
DEFAULT_ISO = Path("dist") / ISO_NAME
QEMU_HOST_ADDRESS = "10.0.2.2"
USERDATA_NAME = "user-data"
META_DATA_NAME = "meta-data"
#: Variables render writes itself; ``--var`` may not set them.
RENDER_OWNED = ("userdata_file", "meta_data_file", "base_image_checksum", "base_image_format")
#: ``--var`` names that feed the builder userdata (the same as the render options).
USERDATA_INPUTS = ("iso_url", "iso_sha256", "config_file")


@dataclass
class RenderOptions:
    """What ``factory packer render CLOUD`` was given (``variables`` are raw ``--var`` texts)."""

    cloud: str
    variables: dict[str, str] = field(default_factory=dict)
    config: str | None = None
    iso_url: str | None = None
    iso_path: str | None = None
    iso_sha256: str | None = None
    insecure_skip_checksum: bool = False
    output_dir: Path | None = None
    cache_dir: Path | None = None


@dataclass(frozen=True)
class RenderResult:
    """The files render wrote and the template they are for."""

    cloud: str
    template_dir: Path
    userdata_file: Path
    var_file: Path
    bake_id: str
    extra_files: tuple[Path, ...] = ()


def default_output_dir(cloud: str) -> Path:
    """``dist/packer/CLOUD``."""
    return Path("dist") / "packer" / cloud


def parse_var_pairs(pairs: list[str]) -> dict[str, str]:
    """``["k=v", ...]`` -> dict; UsageError for a pair without ``=`` or a repeated key."""
    out: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        key = key.strip()
        if not sep or not key:
            raise UsageError(f"--var {pair!r}: expected KEY=VALUE")
        if key in out:
            raise UsageError(f"--var {key} given twice")
        out[key] = value
    return out


def _template(cloud: str) -> Template:
    template = TEMPLATES.get(cloud)
    if template is None:
        raise UsageError(f"unknown cloud {cloud!r} (templates: {', '.join(TEMPLATES)})")
    return template


def _typed_variables(cloud: str, raw: dict[str, str], tdir: Path) -> dict[str, HclValue]:
    if not tdir.is_dir():
        raise UsageError(f"no Packer template directory {tdir} (set FACTORY_PACKER_DIR)")
    try:
        declared = declared_variables(tdir)
    except HclError as exc:
        raise UsageError(str(exc)) from None
    values: dict[str, HclValue] = {}
    for name, text in raw.items():
        var = declared.get(name)
        if var is None:
            raise UsageError(f"--var {name}: the {cloud} template has no such variable")
        if name in RENDER_OWNED:
            raise UsageError(f"--var {name}: render writes this one itself")
        try:
            values[name] = parse_value(text, var.type)
        except HclError as exc:
            raise UsageError(f"--var {name} ({var.type}): {exc}") from None
    return values


def _merge_userdata_input(flag: str | None, var: HclValue | None, name: str) -> str | None:
    if flag is not None and var is not None and flag != var:
        raise UsageError(f"--{name.replace('_', '-')} and --var {name} disagree")
    if flag is not None:
        return flag
    return str(var) if var is not None else None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _write_private(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    os.chmod(tmp, 0o600)
    tmp.replace(path)


def _qemu_iso(opts: RenderOptions, values: dict[str, HclValue], out: Path, iso_url: str | None) -> str:
    """For qemu without --iso-url: serve the local ISO from ``out/http``; return the guest's URL."""
    from factory.clouds.qemu import sha256_of

    if iso_url:
        if opts.iso_path:
            raise UsageError("give --iso or --iso-url, not both")
        return iso_url
    iso = Path(opts.iso_path) if opts.iso_path else DEFAULT_ISO
    if not iso.is_file():
        raise UsageError(f"--iso {iso}: no such file (run `factory iso build`, or pass --iso-url)")
    actual = sha256_of(iso)
    if opts.iso_sha256 and opts.iso_sha256.lower() != actual:
        raise UsageError(f"--iso-sha256 does not match {iso} (its sha256 is {actual})")
    opts.iso_sha256 = actual
    http = out / "http"
    http.mkdir(parents=True, exist_ok=True)
    link = http / ISO_NAME
    link.unlink(missing_ok=True)
    link.symlink_to(iso.resolve())
    values.setdefault("http_port", _free_port())
    values["http_directory"] = str(http.resolve())
    return f"http://{QEMU_HOST_ADDRESS}:{values['http_port']}/{ISO_NAME}"


def _qemu_machine(opts: RenderOptions, values: dict[str, HclValue]) -> None:
    """Base disk (path + sha256) and a concrete accelerator (Packer's auto trusts /dev/kvm)."""
    from factory.clouds.qemu import image_format, resolve_base_image, sha256_of
    from factory.journal import state_dir
    from factory.qemu.accel import detect_accel
    from image_base.base_disk import cache_dir_from_env, cached_base_disk

    cache_dir = opts.cache_dir or cache_dir_from_env()
    base = resolve_base_image(str(values["base_image"]) if "base_image" in values else None, cache_dir)
    values["base_image"] = str(base.resolve())
    values["base_image_checksum"] = "sha256:" + sha256_of(base)
    values["base_image_format"] = image_format(base)
    accel = str(values.get("accelerator", "auto"))
    if accel not in ("auto", "kvm", "tcg"):
        raise UsageError(f"--var accelerator={accel}: expected auto, kvm or tcg")
    if accel == "auto":
        cached = cached_base_disk(cache_dir)
        accel = detect_accel(
            "auto", cache_dir=state_dir(), probe_kernel=cached.kernel if cached is not None else None
        ).accel
    values["accelerator"] = accel
    # QEMU cannot open a serial log in a directory that does not exist.
    image_dir = Path(str(values.get("output_directory", "dist")))
    serial = Path(str(values["serial_log"])) if values.get("serial_log") else image_dir / "logs" / "x"
    serial.parent.mkdir(parents=True, exist_ok=True)


def render(opts: RenderOptions) -> RenderResult:
    """Write the userdata (and qemu's meta-data) and ``CLOUD.auto.pkrvars.hcl``; UsageError on bad input."""
    from factory.commands.bake import load_bake_config
    from image_base.builder import BuilderSpec, BuilderSpecError, render_builder_userdata

    template = _template(opts.cloud)
    tdir = template_dir(opts.cloud)
    values = _typed_variables(opts.cloud, opts.variables, tdir)
    iso_url = _merge_userdata_input(opts.iso_url, values.pop("iso_url", None), "iso_url")
    opts.iso_sha256 = _merge_userdata_input(opts.iso_sha256, values.pop("iso_sha256", None), "iso_sha256")
    opts.config = _merge_userdata_input(opts.config, values.pop("config_file", None), "config")
    out = opts.output_dir or default_output_dir(opts.cloud)
    out.mkdir(parents=True, exist_ok=True)
    if opts.cloud == "qemu":
        _qemu_machine(opts, values)
        iso_url = _qemu_iso(opts, values, out, iso_url)
    elif opts.iso_path:
        raise UsageError(
            f"{opts.cloud} needs --iso-url (its builder downloads the ISO; --iso is a local file)"
        )
    if not iso_url:
        raise UsageError(f"{opts.cloud} needs --iso-url URL and --iso-sha256 HEX")
    config_yaml, _secrets = load_bake_config(opts.config, template.default_data_sources)
    try:
        spec = BuilderSpec(
            iso_url=iso_url,
            iso_sha256=opts.iso_sha256.lower() if opts.iso_sha256 else None,
            config_yaml=config_yaml,
            insecure_skip_checksum=opts.insecure_skip_checksum,
        )
        userdata = render_builder_userdata(spec)
    except BuilderSpecError as exc:
        raise UsageError(f"builder userdata: {exc}") from None
    bake_id = str(values.get("bake_id") or uuid.uuid4())
    values["bake_id"] = bake_id
    userdata_file = out / USERDATA_NAME
    _write_private(userdata_file, userdata)
    extra: tuple[Path, ...] = ()
    if opts.cloud == "qemu":
        from factory.qemu.seed import meta_data

        meta = out / META_DATA_NAME
        _write_private(meta, meta_data(f"k3os-factory-{bake_id}", "k3os-builder"))
        values["meta_data_file"] = str(meta.resolve())
        extra = (meta,)
    values["userdata_file"] = str(userdata_file.resolve())
    values["iso_url"] = iso_url
    values["iso_sha256"] = (opts.iso_sha256 or "").lower()
    values["config_file"] = str(Path(opts.config).resolve()) if opts.config else ""
    _check_required(opts.cloud, tdir, values)
    var_file = out / f"{opts.cloud}.auto.pkrvars.hcl"
    header = f"Written by `factory packer render {opts.cloud}`; use with packer/{opts.cloud}/."
    _write_private(var_file, render_var_file(values, header).encode("utf-8"))
    return RenderResult(opts.cloud, tdir, userdata_file, var_file, bake_id, extra)


def _check_required(cloud: str, tdir: Path, values: dict[str, HclValue]) -> None:
    missing = [v.name for v in declared_variables(tdir).values() if v.required and v.name not in values]
    if missing:
        needed = " ".join(f"--var {name}=..." for name in sorted(missing))
        raise UsageError(f"the {cloud} template needs {needed}")
