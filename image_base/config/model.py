"""Typed model of the whole k3OS configuration (every key of k3OS's configuration reference).

Unset scalars are ``None`` and unset collections are empty, so that merging can tell "not given"
from "given as empty/false". Names are the canonical snake_case keys of k3OS's README.
"""

from __future__ import annotations

from dataclasses import dataclass, field

#: A command of ``init_cmd``/``boot_cmd``/``run_cmd``: a string runs via ``/bin/sh -c``, a list is argv.
Command = str | list[str]


@dataclass
class WriteFile:
    """One ``write_files`` entry. ``content`` is kept as given (``bytes`` for YAML ``!!binary``)."""

    path: str
    content: str | bytes = ""
    encoding: str = ""
    owner: str = ""
    permissions: str = ""


@dataclass
class Wifi:
    """One ``k3os.wifi`` network (k3OS accepts ``name``; ``ssid`` is an alias)."""

    name: str
    passphrase: str | None = None


@dataclass
class Install:
    """``k3os.install.*``: used by the installer, never applied by ``k3os config --apply``."""

    force_efi: bool | None = None
    device: str | None = None
    config_url: str | None = None
    silent: bool | None = None
    iso_url: str | None = None
    power_off: bool | None = None
    no_format: bool | None = None
    debug: bool | None = None
    tty: str | None = None


@dataclass
class K3osSection:
    """The ``k3os:`` map."""

    data_sources: list[str] = field(default_factory=list)
    modules: list[str] = field(default_factory=list)
    sysctl: dict[str, str] = field(default_factory=dict)
    ntp_servers: list[str] = field(default_factory=list)
    dns_nameservers: list[str] = field(default_factory=list)
    wifi: list[Wifi] = field(default_factory=list)
    password: str | None = None
    server_url: str | None = None
    token: str | None = None
    labels: dict[str, str] = field(default_factory=dict)
    k3s_args: list[str] = field(default_factory=list)
    environment: dict[str, str] = field(default_factory=dict)
    taints: list[str] = field(default_factory=list)
    mode: str | None = None
    fallback_mode: str | None = None
    install: Install = field(default_factory=Install)


@dataclass
class K3osConfig:
    """The whole k3OS config (``config.yaml``, cmdline, ``/run/config``, ``config.d`` merged)."""

    ssh_authorized_keys: list[str] = field(default_factory=list)
    write_files: list[WriteFile] = field(default_factory=list)
    hostname: str | None = None
    init_cmd: list[Command] = field(default_factory=list)
    boot_cmd: list[Command] = field(default_factory=list)
    run_cmd: list[Command] = field(default_factory=list)
    k3os: K3osSection = field(default_factory=K3osSection)
