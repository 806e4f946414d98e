"""The plugin manager: built-ins, missing modules, third-party providers through entry points."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from datasources.plugins import (
    DEFAULT_PLUGINS,
    _import_optional,
    get_plugin_manager,
    needs_entrypoints,
    provider_table,
)

from .conftest import StartEmulator, run_cli, url_env

THIRD_PARTY = '''
"""A throwaway third-party datasource: reads its userdata from the file named by FILECLOUD_PATH."""
from datasources import hookimpl
from datasources.model import Metadata, NotDetected, ProviderInfo


@hookimpl
def datasources_providers():
    return [ProviderInfo("filecloud", "filecloud", 5, aliases=("fc",))]


@hookimpl
def datasources_base_url(provider):
    return None


@hookimpl
def datasources_fetch(provider, ctx):
    if provider != "filecloud":
        return None
    path = ctx.env.get("FILECLOUD_PATH", "")
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError:
        raise NotDetected("no file " + path)
    return Metadata(provider, instance_id="fc-1", hostname="fc-host", userdata=data)
'''


@pytest.fixture
def third_party(tmp_path: Path) -> Path:
    """A directory, to put on PYTHONPATH, holding the plugin module and its dist-info."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "filecloud_plugin.py").write_text(THIRD_PARTY)
    info = site / "filecloud_plugin-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: filecloud-plugin\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[k3os_factory.datasources]\nfilecloud = filecloud_plugin\n")
    return site


def test_builtins_are_registered_and_ordered() -> None:
    pm = get_plugin_manager(load_entrypoints=False)
    table = provider_table(pm)
    present = [m.rsplit(".", 1)[1] for m in DEFAULT_PLUGINS if m in sys.modules]
    assert table.names()[0] == "aws"
    assert set(present) <= set(table.names())
    orders = [table.info(n).order for n in table.names()]
    assert orders == sorted(orders)


def test_a_missing_builtin_is_skipped_but_a_broken_one_surfaces(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert _import_optional("datasources.providers.no_such_provider") is None
    (tmp_path / "broken_provider_mod.py").write_text("import no_such_dependency_xyz\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ModuleNotFoundError, match="no_such_dependency_xyz"):
        _import_optional("broken_provider_mod")


def test_entry_points_are_only_needed_for_unknown_names() -> None:
    assert not needs_entrypoints(["aws", "equinixmetal", "cdrom"])
    assert needs_entrypoints(["aws", "filecloud"])
    assert needs_entrypoints([])


def test_third_party_provider_is_listed_and_used(
    third_party: Path, base_env: dict[str, str], tmp_path: Path, emulators: StartEmulator
) -> None:
    env = {**base_env, "PYTHONPATH": str(third_party)}
    listed = run_cli("list", env=env)
    assert listed.returncode == 0
    rows = [line.split("\t") for line in listed.stdout.splitlines()]
    assert rows[0][0] == "filecloud" and "plugin=filecloud" in listed.stdout
    assert "alias: fc" in listed.stdout

    ud = tmp_path / "ud"
    ud.write_bytes(b"#cloud-config\n")
    aws = emulators("aws")
    env = {**env, "FILECLOUD_PATH": str(ud), url_env("aws"): aws.url}
    run = run_cli("fetch", "aws", "fc", "--output", str(tmp_path / "o"), "--json", env=env)
    assert run.returncode == 0, run.stderr
    doc = json.loads(run.stdout)
    assert doc["provider"] == "filecloud"
    assert [a["outcome"] for a in doc["attempts"]] == ["detected", "userdata"]
    assert (tmp_path / "o" / "userdata").read_bytes() == b"#cloud-config\n"

    run = run_cli(
        "fetch", "filecloud", "--output", str(tmp_path / "o"), env={**env, "FILECLOUD_PATH": "/nope"}
    )
    assert run.returncode == 1
    assert "filecloud: absent (not this cloud: no file /nope)" in run.stderr


def test_third_party_is_unknown_without_its_package(base_env: dict[str, str]) -> None:
    run = run_cli("fetch", "filecloud", env=base_env)
    assert run.returncode == 2 and "unknown provider 'filecloud'" in run.stderr


def test_hookspecs_have_docstrings() -> None:
    from datasources import hookspecs

    for name in (
        "datasources_providers",
        "datasources_dmi_claims",
        "datasources_base_url",
        "datasources_fetch",
    ):
        assert (getattr(hookspecs, name).__doc__ or "").strip(), name


def test_fetch_of_builtins_keeps_heavy_modules_off_the_path(
    base_env: dict[str, str], tmp_path: Path, emulators: StartEmulator
) -> None:
    # http.client would pull in email and ssl (about 7 MiB); ssl is for https only.
    aws = emulators("aws", userdata=b"ud")
    code = (
        "import sys\n"
        "from datasources.cli import main\n"
        f"rc = main(['fetch', 'gcp', 'cdrom', 'aws', '--output', {str(tmp_path / 'o')!r}])\n"
        "heavy = ['yaml', 'importlib.metadata', 'requests', 'pycdlib', 'boto3',\n"
        "         'http.client', 'ssl', 'email', 'urllib.request', 'shutil', 'encodings.idna']\n"
        "print(rc, [m for m in heavy if m in sys.modules])\n"
    )
    env = {**base_env, url_env("aws"): aws.url}
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=False)
    assert proc.stdout.strip() == "0 []", proc.stdout + proc.stderr


BROKEN_PLUGINS = {
    "missing_dep_plugin": "import no_such_dependency_xyz\n",
    "raising_providers_plugin": (
        "from datasources import hookimpl\n"
        "@hookimpl\n"
        "def datasources_providers():\n"
        "    raise RuntimeError('providers boom')\n"
    ),
    "unknown_hook_plugin": (
        "from datasources import hookimpl\n@hookimpl\ndef datasources_frobnicate():\n    return 1\n"
    ),
    "raising_claims_plugin": (
        "from datasources import hookimpl\n"
        "from datasources.model import ProviderInfo\n"
        "@hookimpl\n"
        "def datasources_providers():\n"
        "    return [ProviderInfo('claimer', 'claimercloud', 95)]\n"
        "@hookimpl\n"
        "def datasources_dmi_claims(dmi):\n"
        "    raise RuntimeError('claims boom')\n"
        "@hookimpl\n"
        "def datasources_base_url(provider):\n"
        "    raise RuntimeError('url boom')\n"
    ),
}


@pytest.fixture
def broken_third_party(tmp_path: Path) -> Path:
    """Installed-looking third-party packages that are broken in four different ways."""
    site = tmp_path / "broken-site"
    site.mkdir()
    for module, source in BROKEN_PLUGINS.items():
        (site / f"{module}.py").write_text(source)
        info = site / f"{module}-1.0.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {module}\nVersion: 1.0\n")
        (info / "entry_points.txt").write_text(f"[k3os_factory.datasources]\n{module} = {module}\n")
    return site


def test_broken_third_party_plugins_are_skipped_not_fatal(
    broken_third_party: Path, base_env: dict[str, str], tmp_path: Path, emulators: StartEmulator
) -> None:
    # At boot the default order loads entry points: a broken package must not cost the node
    # its userdata (it used to end the run with a traceback).
    aws = emulators("aws", userdata=b"#cloud-config\n")
    dmi = Path(base_env["DATASOURCES_DMI_DIR"])
    (dmi / "sys_vendor").write_text("Amazon EC2\n")  # the DMI fast path asks every plugin
    env = {**base_env, "PYTHONPATH": str(broken_third_party), url_env("aws"): aws.url}
    out = tmp_path / "o"
    run = run_cli("fetch", "--output", str(out), "--json", "--timeout", "3", env=env)
    assert run.returncode == 0, run.stderr
    assert "Traceback" not in run.stderr
    assert json.loads(run.stdout)["provider"] == "aws"
    assert (out / "userdata").read_bytes() == b"#cloud-config\n"
    for needle in (
        "plugin 'missing_dep_plugin' (missing_dep_plugin) skipped: cannot load it: ModuleNotFoundError",
        "plugin 'raising_providers_plugin' (raising_providers_plugin) skipped: datasources_providers raised",
        "plugin 'unknown_hook_plugin' (unknown_hook_plugin) skipped:",
        "raising_claims_plugin: DMI claims ignored: RuntimeError: claims boom",
    ):
        assert needle in run.stderr, needle
    listed = run_cli("list", env=env)
    assert listed.returncode == 0 and "Traceback" not in listed.stderr
    names = [line.split("\t")[0] for line in listed.stdout.splitlines()]
    assert names[0] == "aws" and names[-1] == "claimer"
