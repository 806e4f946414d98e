"""The ISO cache key follows its inputs: config, k3s, project sources, rootfs packages."""

from __future__ import annotations

import shutil
from pathlib import Path

from image_base.os import inputs, recipe


def _copy_project(tmp_path: Path) -> Path:
    root = tmp_path / "src"
    for package in inputs.PROJECT_PACKAGES:
        shutil.copytree(
            inputs.project_root() / package, root / package, ignore=shutil.ignore_patterns("__pycache__")
        )
    return root


def test_key_is_stable_for_equal_inputs(tmp_path: Path) -> None:
    root = _copy_project(tmp_path)
    assert inputs.iso_key(b"k3os: {}\n", None, root) == inputs.iso_key(b"k3os: {}\n", None, root)


def test_key_changes_with_config_and_k3s(tmp_path: Path) -> None:
    root = _copy_project(tmp_path)
    base = inputs.iso_key(None, None, root)
    keys = {
        base,
        inputs.iso_key(b"hostname: a\n", None, root),
        inputs.iso_key(b"hostname: b\n", None, root),
        inputs.iso_key(None, "ab" * 32, root),
        inputs.iso_key(None, "cd" * 32, root),
    }
    assert len(keys) == 5


def test_key_changes_when_project_code_or_init_script_changes(tmp_path: Path) -> None:
    root = _copy_project(tmp_path)
    before = inputs.iso_key(None, None, root)
    (root / "datasources" / "cli.py").write_text("# changed\n", encoding="utf-8")
    after_code = inputs.iso_key(None, None, root)
    init = root / "image_base" / "os" / "files" / "initrd" / "init"
    init.write_text(init.read_text() + "\n# changed\n")
    after_init = inputs.iso_key(None, None, root)
    assert len({before, after_code, after_init}) == 3


def test_bytecode_caches_do_not_change_the_key(tmp_path: Path) -> None:
    root = _copy_project(tmp_path)
    before = inputs.iso_key(None, None, root)
    cache = root / "datasources" / "__pycache__"
    cache.mkdir(exist_ok=True)
    (cache / "x.cpython-311.pyc").write_bytes(b"junk")
    assert inputs.iso_key(None, None, root) == before


def test_rootfs_key_changes_with_packages() -> None:
    assert recipe.rootfs_key() == recipe.rootfs_key(recipe.PACKAGES)
    assert recipe.rootfs_key() != recipe.rootfs_key((*recipe.PACKAGES, "jq"))


def test_mmdebstrap_command_names_suite_output_and_packages(tmp_path: Path) -> None:
    command = recipe.mmdebstrap_command(tmp_path / "r.tar")
    assert command[0] == "mmdebstrap"
    assert command[-3:-1] == ["bookworm", str(tmp_path / "r.tar")]
    included = next(arg for arg in command if arg.startswith("--include="))
    for package in ("linux-image-cloud-amd64", "python3", "openssh-server", "busybox-static"):
        assert package in included.split("=", 1)[1].split(",")
