"""The base disk's root filesystem: a Debian bookworm tree from mmdebstrap, configured like a cloud
image (cloud-init with NoCloud only, DHCP by systemd-networkd, serial console, no locale generation).
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

SUITE = "bookworm"
DEFAULT_MIRROR = "http://deb.debian.org/debian"
ROOT_LABEL = "cloudimg-rootfs"

#: What the base disk holds: a cloud kernel, systemd, cloud-init, and the tools the builder userdata
#: and install.sh use (curl, mkfs.vfat, parted, tune2fs, findmnt, lsblk, blkid, mount).
PACKAGES = (
    "linux-image-cloud-amd64",
    "systemd-sysv",
    "udev",
    "cloud-init",
    "curl",
    "ca-certificates",
    "dosfstools",
    "parted",
    "e2fsprogs",
    "util-linux",
    "mount",
    "iproute2",
    "kmod",
    "procps",
    "cpio",
    "gzip",
)

#: cloud-init modules that are slow (locale-gen takes 11-15 s under TCG) or need the internet.
DROPPED_CLOUD_INIT_MODULES = (
    "snap",
    "ssh-import-id",
    "keyboard",
    "locale",
    "grub-dpkg",
    "apt-pipelining",
    "apt-configure",
    "ntp",
    "byobu",
    "fan",
    "landscape",
    "lxd",
    "puppet",
    "chef",
    "mcollective",
    "salt-minion",
    "rightscale_userdata",
    "reset_rmc",
    "refresh_rmc_and_interface",
    "ssh",
    "ssh-authkey-fingerprints",
    "keys-to-console",
)

CLOUD_CFG = """\
# k3os-factory base disk: NoCloud only (seed ISO labelled cidata), network by systemd-networkd.
datasource_list: [NoCloud, None]
network: {config: disabled}
users: []
disable_root: false
ssh_pwauth: false
preserve_hostname: false
"""

NETWORK_UNIT = """\
[Match]
Name=en* eth*

[Network]
DHCP=yes
"""

FSTAB = f"LABEL={ROOT_LABEL} / ext4 defaults,errors=remount-ro 0 1\n"


def host_debian_mirror(sources_dir: Path = Path("/etc/apt")) -> str:
    """The Debian mirror this machine's apt uses (deb822 ``.sources`` or one-line ``.list``), else
    deb.debian.org."""
    candidates = [sources_dir / "sources.list", *sorted((sources_dir / "sources.list.d").glob("*"))]
    for path in candidates:
        try:
            text = path.read_text()
        except (FileNotFoundError, IsADirectoryError, PermissionError):
            continue
        for match in re.finditer(r"^\s*URIs:\s*(\S+)", text, re.MULTILINE):
            if "security" not in match.group(1):
                return match.group(1)
        for match in re.finditer(r"^\s*deb\s+(?:\[[^]]*\]\s+)?(\S+)\s+(\S+)", text, re.MULTILINE):
            if "security" not in match.group(1) and "security" not in match.group(2):
                return match.group(1)
    return DEFAULT_MIRROR


def mmdebstrap_argv(target: Path, mirror: str, packages: tuple[str, ...] = PACKAGES) -> list[str]:
    """The mmdebstrap command that creates the tree in ``target`` (minbase, no recommends)."""
    return [
        "mmdebstrap",
        "--variant=minbase",
        "--mode=root",
        "--quiet",
        f"--include={','.join(packages)}",
        SUITE,
        str(target),
        mirror,
    ]


def kernel_version(root: Path) -> str:
    """The single kernel version installed under ``root/boot``."""
    versions = sorted(p.name.removeprefix("vmlinuz-") for p in (root / "boot").glob("vmlinuz-*"))
    if not versions:
        raise RuntimeError(f"no kernel in {root / 'boot'}")
    return versions[-1]


def configure_rootfs(root: Path) -> str:
    """Turn the mmdebstrap tree into a cloud image: fstab, hostname, DHCP, cloud-init settings.
    Returns the kernel version."""
    (root / "etc/fstab").write_text(FSTAB)
    (root / "etc/hostname").write_text("debian-base\n")
    network = root / "etc/systemd/network"
    network.mkdir(parents=True, exist_ok=True)
    (network / "10-dhcp.network").write_text(NETWORK_UNIT)
    cfg_d = root / "etc/cloud/cloud.cfg.d"
    cfg_d.mkdir(parents=True, exist_ok=True)
    (cfg_d / "90_k3os_factory.cfg").write_text(CLOUD_CFG)
    cloud_cfg = root / "etc/cloud/cloud.cfg"
    cloud_cfg.write_text(drop_cloud_init_modules(cloud_cfg.read_text()))
    subprocess.run(
        ["chroot", str(root), "systemctl", "enable", "systemd-networkd.service"],
        check=True,
        capture_output=True,
    )
    # No apt timers or man-db runs in a throwaway builder.
    for unit in ("apt-daily.timer", "apt-daily-upgrade.timer", "e2scrub_all.timer", "fstrim.timer"):
        (root / "etc/systemd/system" / unit).unlink(missing_ok=True)
        (root / "etc/systemd/system" / unit).symlink_to("/dev/null")
    return kernel_version(root)


def drop_cloud_init_modules(cloud_cfg: str, dropped: tuple[str, ...] = DROPPED_CLOUD_INIT_MODULES) -> str:
    """``cloud.cfg`` without the list entries `` - <module>`` named in ``dropped``."""
    names = "|".join(re.escape(name) for name in dropped)
    return re.sub(rf"^\s*-\s*(?:{names})\s*$\n", "", cloud_cfg, flags=re.MULTILINE)
