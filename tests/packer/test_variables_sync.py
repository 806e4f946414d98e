"""The templates' variables and the ``factory bake`` flags stay in sync through the table in
``factory/packer/templates.py``: a flag or a variable added on one side only fails here, and
mapped defaults must agree (read from ``packer inspect``, i.e. as Packer itself sees them)."""

from __future__ import annotations

import argparse
import re
import subprocess
from pathlib import Path

import pytest

from factory.clouds.base import CloudBackend, load_backend
from factory.cmdutil import cloud_parser
from factory.commands.bake import add_common_arguments
from factory.packer.hcl import declared_variables
from factory.packer.templates import TEMPLATES
from factory.pipeline import UsageError
from tests.packer.conftest import CLOUDS, PACKER_DIR

#: (cloud, flag) whose bake default deliberately differs from the template's, and why.
DEFAULTS_THAT_DIFFER = {
    ("qemu", "--accel"): "bake says auto (functional KVM probe); render resolves it, the template says tcg",
    ("aws", "--region"): "bake takes the boto3 chain's region; a template needs a concrete default",
}
_INSPECT_VAR = re.compile(r'^(var|local)\.([A-Za-z0-9_-]+): "(.*)"$', re.M)


def _inspect(packer: str, cloud: str, tmp_path: Path, *args: str) -> dict[str, str]:
    res = subprocess.run(
        [packer, "inspect", *args, str(PACKER_DIR / cloud)],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "CHECKPOINT_DISABLE": "1"},
        timeout=60,
        check=True,
    )
    return {f"{kind}.{name}": value for kind, name, value in _INSPECT_VAR.findall(res.stdout)}


def _bake_parser(cloud: str) -> tuple[CloudBackend, argparse.ArgumentParser]:
    try:
        backend = load_backend(cloud)
    except UsageError as exc:
        pytest.skip(f"no `factory bake {cloud}` backend in this tree yet ({exc})")
    parser = cloud_parser("bake", backend, "sync test")
    add_common_arguments(parser)
    backend.add_arguments(parser)
    return backend, parser


def _long_options(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    return {
        opt: action
        for action in parser._actions
        for opt in action.option_strings
        if opt.startswith("--") and opt != "--help"
    }


@pytest.mark.parametrize("cloud", CLOUDS)
def test_table_accounts_for_every_template_variable(cloud: str) -> None:
    declared = set(declared_variables(PACKER_DIR / cloud))
    table = TEMPLATES[cloud].variables()
    assert declared - table == set(), f"template variables missing from the table: {declared - table}"
    assert table - declared == set(), f"table names variables the template lacks: {table - declared}"


@pytest.mark.parametrize("cloud", CLOUDS)
def test_every_unmapped_flag_says_why(cloud: str) -> None:
    template = TEMPLATES[cloud]
    unexplained = [f for f, v in template.flags.items() if v is None and not template.flag_notes.get(f)]
    assert unexplained == []


@pytest.mark.parametrize("cloud", CLOUDS)
def test_reader_sees_what_packer_sees(cloud: str, packer_bin: str, tmp_path: Path) -> None:
    seen = {k.split(".", 1)[1] for k in _inspect(packer_bin, cloud, tmp_path) if k.startswith("var.")}
    assert seen == set(declared_variables(PACKER_DIR / cloud))


@pytest.mark.parametrize("cloud", CLOUDS)
def test_table_matches_bake_flags(cloud: str) -> None:
    backend, parser = _bake_parser(cloud)
    flags = set(_long_options(parser))
    table = set(TEMPLATES[cloud].flags)
    assert flags - table == set(), f"bake flags missing from the Packer table: {flags - table}"
    assert table - flags == set(), f"table names flags `factory bake {cloud}` lacks: {table - flags}"
    assert TEMPLATES[cloud].default_data_sources == backend.default_data_sources
    assert TEMPLATES[cloud].builder_type == backend.builder_type


@pytest.mark.parametrize("cloud", CLOUDS)
def test_mapped_defaults_agree(cloud: str, packer_bin: str, tmp_path: Path) -> None:
    _backend, parser = _bake_parser(cloud)
    inspected = _inspect(packer_bin, cloud, tmp_path)
    checked = 0
    for flag, action in _long_options(parser).items():
        variable = TEMPLATES[cloud].flags.get(flag)
        default = action.default
        if variable is None or isinstance(default, bool) or default in (None, [], ""):
            continue
        if (cloud, flag) in DEFAULTS_THAT_DIFFER:
            continue
        packer_default = inspected[f"var.{variable}"]
        if isinstance(default, int | float):
            assert float(packer_default) == float(default), (flag, variable)
        else:
            assert packer_default == str(default), (flag, variable)
        checked += 1
    assert checked >= 2  # at least --timeout and --manifest


def test_aws_instance_type_and_name_defaults_match_the_bake(packer_bin: str, tmp_path: Path) -> None:
    from factory.clouds.aws import DEFAULT_INSTANCE_TYPE

    for arch, instance_type in DEFAULT_INSTANCE_TYPE.items():
        seen = _inspect(packer_bin, "aws", tmp_path, f"-var=arch={arch}")
        assert seen["local.instance_type"] == instance_type
    for cloud in CLOUDS:
        name = _inspect(packer_bin, cloud, tmp_path)["local.image_name"]
        assert re.fullmatch(rf"k3os-{cloud}-\d{{8}}-\d{{6}}", name), name


def test_every_template_has_a_manifest_post_processor_and_no_communicator() -> None:
    for cloud in CLOUDS:
        text = (PACKER_DIR / cloud / f"{cloud}.pkr.hcl").read_text()
        assert 'post-processor "manifest"' in text, cloud
        assert re.search(r'^\s*communicator\s*=\s*"none"\s*$', text, re.M), cloud
        assert not re.search(r"^\s*shutdown_command\s*=", text, re.M), cloud
