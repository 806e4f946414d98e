"""Which keys apply in which phase (``initrd``, ``boot``, ``runtime``), as data.

Taken from k3OS's ``pkg/cc/apply.go`` (InitApply, BootApply, RunApply) and its README phase table;
where they differ the choice is explained in ``docs/config.md``. The order of ``keys`` is the order
in which ``apply`` handles them: files first, commands last (commands may run what write_files wrote).
"""

from __future__ import annotations

from dataclasses import dataclass

K3S_KEYS = ("k3os.server_url", "k3os.token", "k3os.labels", "k3os.taints", "k3os.k3s_args")


@dataclass(frozen=True)
class Phase:
    """One boot phase: its name, when it runs, and the config keys it applies (dotted paths)."""

    name: str
    description: str
    keys: tuple[str, ...]


PHASES: dict[str, Phase] = {
    "initrd": Phase(
        "initrd",
        "in the initrd, before the root filesystem is set up; no network",
        ("k3os.modules", "k3os.sysctl", "hostname", "k3os.environment", "write_files", "init_cmd"),
    ),
    "boot": Phase(
        "boot",
        "root filesystem mounted, before services start; no network yet",
        (
            "k3os.data_sources",
            "k3os.modules",
            "k3os.sysctl",
            "hostname",
            "k3os.dns_nameservers",
            "k3os.ntp_servers",
            "k3os.wifi",
            "k3os.password",
            "ssh_authorized_keys",
            "k3os.environment",
            *K3S_KEYS,
            "write_files",
            "boot_cmd",
        ),
    ),
    "runtime": Phase(
        "runtime",
        "network up and `datasources fetch` done (/run/config holds the cloud's userdata)",
        (
            "k3os.modules",
            "k3os.sysctl",
            "hostname",
            "k3os.dns_nameservers",
            "k3os.ntp_servers",
            "k3os.wifi",
            "k3os.password",
            "ssh_authorized_keys",
            "k3os.environment",
            *K3S_KEYS,
            "write_files",
            "run_cmd",
        ),
    ),
}
