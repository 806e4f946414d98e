"""One function per config key (or key group) that ``apply`` runs; each writes under ``ctx.fs``."""

from __future__ import annotations

import shlex
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from image_base.config.encoding import decode_content
from image_base.config.fsroot import FsRoot
from image_base.config.model import K3osConfig
from image_base.config.runner import Runner
from image_base.config.shacrypt import is_pre_hashed, sha512_crypt

#: Fetches the public keys of a GitHub user (``github:USER`` entries); may raise on network errors.
KeyFetcher = Callable[[str], list[str]]

USER = "rancher"
HEADER = "# written by k3os config --apply; edit the k3OS config instead\n"
SYSCTL_FILE = "/etc/sysctl.d/90-k3os.conf"
MODULES_FILE = "/etc/modules-load.d/k3os.conf"
NTP_FILE = "/etc/systemd/timesyncd.conf.d/k3os.conf"
WIFI_FILE = "/etc/wpa_supplicant/wpa_supplicant-k3os.conf"
K3S_ENV_FILE = "/etc/rancher/k3s/k3os.env"
DATA_SOURCES_FILE = "/etc/k3os/data_sources"
DEFAULT_HOSTS = "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"


@dataclass
class ApplyContext:
    """Everything a step needs, plus what it reports (``actions`` done, ``failures``)."""

    cfg: K3osConfig
    fs: FsRoot
    runner: Runner
    fetch_keys: KeyFetcher | None = None
    actions: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    def system(self, argv: list[str]) -> None:
        """A host command (sysctl, modprobe, hostname): run only when the root is the live ``/``."""
        if not self.fs.live:
            self.actions.append(f"skipped (root is not /): {shlex.join(argv)}")
            return
        status = self.runner.run(argv)
        if status:
            self.failures.append(f"{shlex.join(argv)} exited {status}")
        else:
            self.actions.append(f"ran {shlex.join(argv)}")


def apply_hostname(ctx: ApplyContext) -> None:
    """``hostname`` -> /etc/hostname, the 127.0.1.1 line of /etc/hosts, and sethostname when live."""
    name = ctx.cfg.hostname
    if not name:
        return
    ctx.fs.write("/etc/hostname", f"{name}\n".encode())
    hosts = ctx.fs.read_text("/etc/hosts") or DEFAULT_HOSTS
    lines = [line for line in hosts.splitlines() if line.split()[:1] != ["127.0.1.1"]]
    short = name.split(".")[0]
    lines.append(f"127.0.1.1\t{name}" + (f" {short}" if short != name else ""))
    ctx.fs.write("/etc/hosts", ("\n".join(lines) + "\n").encode())
    ctx.actions.append(f"hostname {name}: /etc/hostname, /etc/hosts")
    ctx.system(["hostname", name])


def _expand_keys(ctx: ApplyContext) -> list[str]:
    keys: list[str] = []
    for key in ctx.cfg.ssh_authorized_keys:
        if not key.startswith("github:"):
            keys.append(key)
            continue
        if ctx.fetch_keys is None:
            ctx.actions.append(
                f"ssh: skipped {key} (no network fetch here; done in runtime phase on the node)"
            )
            continue
        try:
            fetched = [k.strip() for k in ctx.fetch_keys(key.split(":", 1)[1]) if k.strip()]
        except Exception as exc:  # a network problem must never stop the boot
            ctx.actions.append(f"ssh: could not fetch {key}: {exc}")
            continue
        ctx.actions.append(f"ssh: {len(fetched)} key(s) from {key}")
        keys.extend(fetched)
    return keys


def apply_ssh_keys(ctx: ApplyContext) -> None:
    """Keys for ``rancher`` in /home/rancher/.ssh/authorized_keys (0600, dir 0700); existing keys kept."""
    if not ctx.cfg.ssh_authorized_keys:
        return
    keys = _expand_keys(ctx)
    if not keys:
        return
    ids = ctx.fs.user_ids(USER)
    owner = (ids[0], max(ids[1], 0)) if ids else None
    ctx.fs.makedirs(f"/home/{USER}", 0o755, owner)
    ctx.fs.makedirs(f"/home/{USER}/.ssh", 0o700, owner)
    path = f"/home/{USER}/.ssh/authorized_keys"
    existing = [line for line in (ctx.fs.read_text(path) or "").splitlines() if line.strip()]
    merged = existing + [k for i, k in enumerate(keys) if k not in existing and k not in keys[:i]]
    ctx.fs.write(path, ("\n".join(merged) + "\n").encode(), 0o600, owner)
    note = "" if owner else f" (no user {USER} in /etc/passwd: ownership left as is)"
    ctx.actions.append(f"ssh: {len(merged) - len(existing)} new key(s) in {path}{note}")


def apply_write_files(ctx: ApplyContext) -> None:
    """Every ``write_files`` entry: decoded, parent dirs created, owner and mode set, written atomically."""
    for index, entry in enumerate(ctx.cfg.write_files):
        try:
            data = decode_content(entry.content, entry.encoding)
            owner = ctx.fs.owner_ids(entry.owner or "root")
            mode = int(entry.permissions, 8) if entry.permissions else 0o644
            ctx.fs.write(entry.path, data, mode, owner)
        except (ValueError, OSError) as exc:
            ctx.failures.append(f"write_files[{index}] {entry.path}: {exc}")
            continue
        ctx.actions.append(
            f"write_files: {entry.path} ({len(data)} bytes, mode {mode:04o}, owner {owner[0]}:{owner[1]})"
        )


def apply_sysctl(ctx: ApplyContext) -> None:
    """``k3os.sysctl`` -> /etc/sysctl.d/90-k3os.conf, then ``sysctl -p`` on it when live."""
    if not ctx.cfg.k3os.sysctl:
        return
    body = "".join(f"{key} = {value}\n" for key, value in ctx.cfg.k3os.sysctl.items())
    ctx.fs.write(SYSCTL_FILE, (HEADER + body).encode())
    ctx.actions.append(f"sysctl: {len(ctx.cfg.k3os.sysctl)} setting(s) in {SYSCTL_FILE}")
    ctx.system(["sysctl", "-p", SYSCTL_FILE])


def apply_modules(ctx: ApplyContext) -> None:
    """``k3os.modules`` -> /etc/modules-load.d/k3os.conf, then ``modprobe -a`` when live."""
    modules = ctx.cfg.k3os.modules
    if not modules:
        return
    ctx.fs.write(MODULES_FILE, (HEADER + "".join(f"{m}\n" for m in modules)).encode())
    ctx.actions.append(f"modules: {' '.join(modules)} in {MODULES_FILE}")
    ctx.system(["modprobe", "-a", *modules])


def apply_environment(ctx: ApplyContext) -> None:
    """``k3os.environment`` -> /etc/environment (other variables already there are kept)."""
    env = ctx.cfg.k3os.environment
    if not env:
        return
    kept = [
        line
        for line in (ctx.fs.read_text("/etc/environment") or "").splitlines()
        if line.partition("=")[0].strip() not in env and line != HEADER.strip()
    ]
    lines = kept + [f"{key}={shlex.quote(value)}" for key, value in env.items()]
    ctx.fs.write("/etc/environment", ("\n".join(lines) + "\n").encode())
    ctx.actions.append(f"environment: {' '.join(env)} in /etc/environment")


def apply_dns(ctx: ApplyContext) -> None:
    """``k3os.dns_nameservers`` -> the nameserver lines of /etc/resolv.conf (search/options kept)."""
    servers = ctx.cfg.k3os.dns_nameservers
    if not servers:
        return
    old = ctx.fs.read_text("/etc/resolv.conf") or ""
    kept = [
        line
        for line in old.splitlines()
        if line.split()[:1] and line.split()[0] in ("search", "domain", "options")
    ]
    body = HEADER + "".join(f"nameserver {s}\n" for s in servers) + "".join(f"{line}\n" for line in kept)
    ctx.fs.write("/etc/resolv.conf", body.encode())
    ctx.actions.append(f"dns: {' '.join(servers)} in /etc/resolv.conf")


def apply_ntp(ctx: ApplyContext) -> None:
    """``k3os.ntp_servers`` -> systemd-timesyncd ``FallbackNTP`` (k3OS: fallback servers)."""
    servers = ctx.cfg.k3os.ntp_servers
    if not servers:
        return
    ctx.fs.write(NTP_FILE, f"{HEADER}[Time]\nFallbackNTP={' '.join(servers)}\n".encode())
    ctx.actions.append(f"ntp: {' '.join(servers)} in {NTP_FILE}")


def apply_wifi(ctx: ApplyContext) -> None:
    """``k3os.wifi`` -> a wpa_supplicant config (0600): hex SSID, quoted or raw-hex PSK, open if none."""
    networks = ctx.cfg.k3os.wifi
    if not networks:
        return
    blocks = ["ctrl_interface=/run/wpa_supplicant\nupdate_config=0\n"]
    for wifi in networks:
        lines = [f"\tssid={wifi.name.encode().hex()}", "\tscan_ssid=1"]
        if wifi.passphrase is None:
            lines.append("\tkey_mgmt=NONE")
        elif len(wifi.passphrase) == 64:
            lines.append(f"\tpsk={wifi.passphrase}")
        else:
            lines.append(f'\tpsk="{wifi.passphrase}"')
        blocks.append("network={\n" + "\n".join(lines) + "\n}\n")
    ctx.fs.write(WIFI_FILE, (HEADER + "\n".join(blocks)).encode(), 0o600)
    ctx.actions.append(f"wifi: {len(networks)} network(s) in {WIFI_FILE}")


def apply_password(ctx: ApplyContext) -> None:
    """``k3os.password`` -> rancher's /etc/shadow entry (plain text hashed with SHA-512 crypt)."""
    password = ctx.cfg.k3os.password
    if not password:
        return
    hashed = password if is_pre_hashed(password) else sha512_crypt(password)
    path = ctx.fs.path("/etc/shadow")
    old = ctx.fs.read_text("/etc/shadow")
    days = str(int(time.time() // 86400))
    lines, found = [], False
    for line in (old or "").splitlines():
        fields = line.split(":")
        if fields[0] == USER and len(fields) >= 2:
            fields[1] = hashed
            if len(fields) >= 3:
                fields[2] = days
            line, found = ":".join(fields), True
        lines.append(line)
    if not found:
        lines.append(f"{USER}:{hashed}:{days}:0:99999:7:::")
    if old is not None:
        stat = path.stat()
        mode, owner = stat.st_mode & 0o7777, (stat.st_uid, stat.st_gid)
    else:
        mode, owner = 0o640, (0, ctx.fs.group_id("shadow") or 0)
    ctx.fs.write("/etc/shadow", ("\n".join(lines) + "\n").encode(), mode, owner)
    ctx.actions.append(f"password: set for {USER} in /etc/shadow")


def k3s_argv(cfg: K3osConfig) -> list[str]:
    """The k3s arguments k3OS would use: k3s_args (or server/agent), then node labels and taints."""
    k3os = cfg.k3os
    args = list(k3os.k3s_args) or (["agent"] if k3os.server_url else ["server"])
    for key, value in sorted(k3os.labels.items()):
        args += ["--node-label", f"{key}={value}"]
    for taint in k3os.taints:
        args += ["--node-taint", taint]
    return args


def apply_k3s(ctx: ApplyContext) -> None:
    """server_url, token, labels, taints, k3s_args (+ environment) -> /etc/rancher/k3s/k3os.env, 0600."""
    k3os = ctx.cfg.k3os
    lines = [f"{key}={shlex.quote(value)}" for key, value in k3os.environment.items()]
    lines.append(f"K3OS_K3S_ARGS={shlex.quote(shlex.join(k3s_argv(ctx.cfg)))}")
    if k3os.server_url:
        lines.append(f"K3S_URL={shlex.quote(k3os.server_url)}")
    if k3os.token:
        lines.append(f"K3S_TOKEN={shlex.quote(k3os.token)}")
    ctx.fs.write(K3S_ENV_FILE, (HEADER + "\n".join(lines) + "\n").encode(), 0o600)
    ctx.actions.append(f"k3s: {K3S_ENV_FILE} (shell syntax, 0600)")


def apply_data_sources(ctx: ApplyContext) -> None:
    """``k3os.data_sources`` -> /etc/k3os/data_sources, one provider a line, read by the boot scripts."""
    sources = ctx.cfg.k3os.data_sources
    if not sources:
        return
    ctx.fs.write(DATA_SOURCES_FILE, "".join(f"{s}\n" for s in sources).encode())
    ctx.actions.append(f"data_sources: {' '.join(sources)} in {DATA_SOURCES_FILE}")
