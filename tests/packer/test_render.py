"""``factory packer render`` writes exactly the bytes the bake's renderer gives for the same inputs
(one source: a change there changes both paths), with the bake's config handling, and a var file
whose values Packer reads back unchanged, however hostile the text."""

from __future__ import annotations

import re
import stat
import subprocess
from pathlib import Path

import pytest

from factory.commands.bake import load_bake_config
from factory.packer import RenderOptions, render
from factory.packer.hcl import HclError, hcl_string, parse_value, render_var_file
from factory.pipeline import UsageError
from image_base.builder import BuilderSpec, render_builder_userdata
from tests.packer.conftest import DUMMY_ISO_URL, DUMMY_SHA256, PACKER_DIR, render_for_validate

ISO = {"iso_url": DUMMY_ISO_URL, "iso_sha256": DUMMY_SHA256}
CONFIG_A = "hostname: node-a\nk3os:\n  password: s3cret-a\n"
CONFIG_B = "hostname: node-b\nssh_authorized_keys:\n  - ssh-ed25519 AAAAC3Nza test@b\n"


def _expected(cloud_sources: tuple[str, ...], config: Path | None, iso_url: str, sha: str) -> bytes:
    yaml_text, _ = load_bake_config(str(config) if config else None, cloud_sources)
    return render_builder_userdata(BuilderSpec(iso_url=iso_url, iso_sha256=sha, config_yaml=yaml_text))


@pytest.mark.parametrize("cloud", ["aws", "gcp", "openstack", "hetzner"])
def test_userdata_is_the_bake_renderers_output_byte_for_byte(cloud: str, tmp_path: Path) -> None:
    from factory.packer.templates import TEMPLATES

    sources = TEMPLATES[cloud].default_data_sources
    outputs = []
    for i, (text, url, sha) in enumerate(
        [(CONFIG_A, DUMMY_ISO_URL, DUMMY_SHA256), (CONFIG_B, DUMMY_ISO_URL + "?v=2", "cd" * 32)]
    ):
        config = tmp_path / f"config-{i}.yaml"
        config.write_text(text)
        result = render(
            RenderOptions(
                cloud=cloud,
                config=str(config),
                iso_url=url,
                iso_sha256=sha,
                output_dir=tmp_path / f"out-{i}",
                variables={"project_id": "p"} if cloud == "gcp" else {},
            )
        )
        data = result.userdata_file.read_bytes()
        assert data == _expected(sources, config, url, sha)
        assert stat.S_IMODE(result.userdata_file.stat().st_mode) == 0o600
        assert stat.S_IMODE(result.var_file.stat().st_mode) == 0o600
        outputs.append(data)
    assert outputs[0] != outputs[1]


def test_qemu_userdata_names_the_local_iso_server_and_its_checksum(
    qemu_inputs: tuple[Path, Path], tmp_path: Path
) -> None:
    result = render_for_validate("qemu", tmp_path, qemu_inputs)
    var_file = result.var_file.read_text()
    port = re.search(r"^http_port = (\d+)$", var_file, re.M)
    sha = re.search(r'^iso_sha256 = "([0-9a-f]{64})"$', var_file, re.M)
    assert port and sha
    url = f"http://10.0.2.2:{port.group(1)}/k3os.iso"
    qemu_sources = ("aws", "gcp", "openstack", "hetzner", "cdrom")
    assert result.userdata_file.read_bytes() == _expected(qemu_sources, None, url, sha.group(1))
    assert result.userdata_file.name == "user-data"
    served = Path(re.search(r'^http_directory = "(.+)"$', var_file, re.M).group(1)) / "k3os.iso"  # type: ignore[union-attr]
    assert served.read_bytes() == qemu_inputs[1].read_bytes()
    meta = (result.userdata_file.parent / "meta-data").read_text()
    assert f"instance-id: k3os-factory-{result.bake_id}" in meta


def test_wrong_sha256_for_a_local_iso_is_refused(qemu_inputs: tuple[Path, Path], tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="does not match"):
        render(
            RenderOptions(
                cloud="qemu",
                iso_path=str(qemu_inputs[1]),
                iso_sha256="00" * 32,
                output_dir=tmp_path,
                variables={"base_image": str(qemu_inputs[0]), "accelerator": "tcg"},
            )
        )


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"iso_url": DUMMY_ISO_URL}, "iso_sha256 is required"),
        ({"iso_url": "ftp://x/k3os.iso", "iso_sha256": DUMMY_SHA256}, "http"),
        ({"iso_path": "/dev/null"}, "needs --iso-url"),
        ({**ISO, "variables": {"nope": "1"}}, "no such variable"),
        ({**ISO, "variables": {"encrypt_boot": "maybe"}}, "true or false"),
        ({**ISO, "variables": {"userdata_file": "/x"}}, "itself"),
        ({**ISO, "variables": {"iso_url": "https://o/x.iso"}}, "disagree"),
        ({**ISO, "config": "/nonexistent.yaml"}, "no such file"),
    ],
)  # fmt: skip
def test_bad_render_input_is_a_usage_error(options: dict[str, object], message: str, tmp_path: Path) -> None:
    opts = RenderOptions(cloud="aws", output_dir=tmp_path)
    for key, value in options.items():
        setattr(opts, key, value)
    with pytest.raises(UsageError, match=message):
        render(opts)


def test_gcp_requires_a_project(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="project_id"):
        render(
            RenderOptions(cloud="gcp", iso_url=DUMMY_ISO_URL, iso_sha256=DUMMY_SHA256, output_dir=tmp_path)
        )


HOSTILE = [
    'quote " backslash \\ end',
    "${var.iso_url} and %{ if true }x%{ endif }",
    "$${already} %%{escaped}",
    "dollar at end $",
    "newline\nreturn\rtab\tbell\x07",
    "unicode é ✓ 😀",
    '" , injected = "x',
]


def test_hcl_strings_read_back_unchanged_by_packer(packer_bin: str, tmp_path: Path) -> None:
    values = {"k3os_version": HOSTILE[0], "iso_url": HOSTILE[1], "iso_sha256": HOSTILE[2],
              "config_file": HOSTILE[3], "image_name": HOSTILE[4], "bake_id": HOSTILE[5],
              "manifest_output": HOSTILE[6], "userdata_file": "/dev/null",
              "tags": {"a\"b": "${x}", "k3os": "v\\1"}, "ami_regions": ["eu-west-1", "x\"y"]}  # fmt: skip
    var_file = tmp_path / "hostile.pkrvars.hcl"
    var_file.write_text(render_var_file(values))
    res = subprocess.run(
        [packer_bin, "inspect", f"-var-file={var_file}", str(PACKER_DIR / "aws")],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "CHECKPOINT_DISABLE": "1"},
        timeout=60,
    )
    assert res.returncode == 0, res.stdout + res.stderr
    # packer inspect prints each value as a Go-quoted string; compare with the same quoting.
    for name in ("k3os_version", "iso_url", "iso_sha256", "config_file", "bake_id", "manifest_output"):
        line = next(ln for ln in res.stdout.splitlines() if ln.startswith(f"var.{name}: "))
        shown = line.split(": ", 1)[1]
        assert shown == _go_quote(str(values[name])), name
    assert "injected" not in [ln.split(":")[0] for ln in res.stdout.splitlines()]


def _go_quote(text: str) -> str:
    """How Go's %q shows a string (enough for the characters used above)."""
    out = ['"']
    for ch in text:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\r":
            out.append("\\r")
        elif ch == "\t":
            out.append("\\t")
        elif ch == "\x07":
            out.append("\\a")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def test_hcl_string_escapes_template_sequences() -> None:
    assert hcl_string("${x}") == '"$${x}"'
    assert hcl_string("%{x}") == '"%%{x}"'
    assert hcl_string('a"b') == '"a\\"b"'
    assert hcl_string("\x00") == '"\\u0000"'


@pytest.mark.parametrize(
    ("text", "var_type", "value"),
    [
        ("a,b, c", "list(string)", ["a", "b", "c"]),
        ('["a,b", "c"]', "list(string)", ["a,b", "c"]),
        ("team=infra,env=ci", "map(string)", {"team": "infra", "env": "ci"}),
        ('{"k": "v=1"}', "map(string)", {"k": "v=1"}),
        ("15", "number", 15),
        ("2.5", "number", 2.5),
        ("true", "bool", True),
        ("", "list(string)", []),
    ],
)
def test_parse_value(text: str, var_type: str, value: object) -> None:
    assert parse_value(text, var_type) == value


@pytest.mark.parametrize(
    ("text", "var_type"),
    [("x", "number"), ("nan", "number"), ("maybe", "bool"), ("novalue", "map(string)"),
     ("[1", "list(string)"), ('{"a": [1]}', "map(string)"), ("[true]", "list(string)")],
)  # fmt: skip
def test_parse_value_rejects(text: str, var_type: str) -> None:
    with pytest.raises(HclError):
        parse_value(text, var_type)
