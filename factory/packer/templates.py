"""The Packer templates this project ships, and how their variables line up with ``factory bake``.

:data:`TEMPLATES` is the mapping table that keeps the two paths in sync: for every cloud, each
``factory bake CLOUD`` flag names the template variable that does the same thing (or says why there is
none), and every template variable that no bake flag sets is listed with what it is for. The test in
``tests/packer/test_variables_sync.py`` fails when a flag or a variable exists on one side only.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

TEMPLATE_DIR_ENV = "FACTORY_PACKER_DIR"


@dataclass(frozen=True)
class Template:
    """One cloud's template: Packer builder, bake data sources, flag -> variable table, extra variables.

    ``flags`` maps each ``factory bake CLOUD`` option to the template variable it corresponds to, or to
    ``None`` when the template has no such variable (``flag_notes`` says why). ``packer_only`` maps the
    variables no bake flag sets to a one-line purpose.
    """

    cloud: str
    builder_type: str
    default_data_sources: tuple[str, ...]
    flags: dict[str, str | None]
    flag_notes: dict[str, str] = field(default_factory=dict)
    packer_only: dict[str, str] = field(default_factory=dict)

    def variables(self) -> set[str]:
        """Every variable this table accounts for (mapped from a flag or packer-only)."""
        return {v for v in self.flags.values() if v} | set(self.packer_only)


#: ``factory bake`` options every cloud has (factory/commands/bake.py ``add_common_arguments``).
COMMON_FLAGS: dict[str, str | None] = {
    "--iso-url": "iso_url",
    "--iso": None,
    "--iso-sha256": "iso_sha256",
    "--insecure-skip-checksum": None,
    "--config": "config_file",
    "--name": "image_name",
    "--tag": "tags",
    "--timeout": "timeout_minutes",
    "--phase-timeout": None,
    "--poll-interval": "poll_interval_seconds",
    "--manifest": "manifest_output",
    "--json": None,
    "--dry-run": None,
}
COMMON_NOTES: dict[str, str] = {
    "--iso": "render option: qemu serves the file from http_directory; the clouds need --iso-url",
    "--insecure-skip-checksum": "render option: it only changes the builder userdata",
    "--phase-timeout": "Packer has one wait for the poweroff (timeout_minutes), no per-phase deadlines",
    "--json": "use `packer build -machine-readable` and the manifest",
    "--dry-run": "use `packer validate` / `packer inspect`",
}
COMMON_PACKER_ONLY: dict[str, str] = {
    "userdata_file": "the builder userdata rendered by `factory packer render`",
    "k3os_version": "recorded in tags/labels and the manifest",
    "bake_id": "value of the bake-id tag/label (render sets a fresh UUID)",
}

_AWS = Template(
    cloud="aws",
    builder_type="amazon-ebs",
    default_data_sources=("aws",),
    flags={
        **COMMON_FLAGS,
        "--region": "region",
        "--copy-to-regions": "ami_regions",
        "--instance-type": "instance_type",
        "--source-ami": "source_ami",
        "--ssm-parameter": None,
        "--arch": "arch",
        "--subnet-id": "subnet_id",
        "--share-with": "ami_users",
        "--public": "ami_groups",
        "--encrypt": "encrypt_boot",
        "--kms-key-id": "kms_key_id",
    },
    flag_notes={
        **COMMON_NOTES,
        "--ssm-parameter": (
            "Packer 1.6.6 cannot resolve SSM parameters; source_ami_name filters Canonical's AMIs"
        ),
    },
    packer_only={
        **COMMON_PACKER_ONLY,
        "source_ami_name": "name filter of the Canonical AMI (the bake's describe_images fallback)",
        "snapshot_users": "snapshot volume permissions (the bake grants them to --share-with too)",
    },
)

_QEMU = Template(
    cloud="qemu",
    builder_type="qemu",
    default_data_sources=("aws", "gcp", "openstack", "hetzner", "cdrom"),
    flags={
        **COMMON_FLAGS,
        "--base-image": "base_image",
        "--output": "output_directory",
        "--format": "format",
        "--accel": "accelerator",
        "--memory": "memory",
        "--cpus": "cpus",
        "--cache-dir": None,
        "--console": None,
    },
    flag_notes={
        **COMMON_NOTES,
        "--cache-dir": "render option: where render looks for the cached base disk",
        "--console": "the serial console always goes to serial_log",
    },
    packer_only={
        **COMMON_PACKER_ONLY,
        "base_image_checksum": "sha256 of base_image (render computes it)",
        "base_image_format": "format of base_image (render asks qemu-img)",
        "meta_data_file": "NoCloud meta-data next to the user-data on the cidata CD",
        "http_directory": "served to the guest; holds k3os.iso when the ISO is local",
        "http_port": "fixed port of the ISO server (named in the builder userdata)",
        "serial_log": "file for the guest's serial console",
        "disk_size": "grow the disk (the bake keeps the base disk's size)",
        "use_backing_file": "start from an overlay instead of a full copy of base_image",
    },
)

_GCP = Template(
    cloud="gcp",
    builder_type="googlecompute",
    default_data_sources=("gcp",),
    flags={
        **COMMON_FLAGS,
        "--project": "project_id",
        "--zone": "zone",
        "--arch": "arch",
        "--machine-type": "machine_type",
        "--source-image-family": "source_image_family",
        "--source-image-project": "source_image_project",
        "--network": "network",
        "--subnetwork": "subnetwork",
        "--omit-external-ip": "omit_external_ip",
        "--disk-size": "disk_size_gb",
        "--image-family": "image_family",
        "--storage-location": "image_storage_locations",
    },
    flag_notes=dict(COMMON_NOTES),
    packer_only={
        **COMMON_PACKER_ONLY,
        "image_kms_key_name": "Cloud KMS key that encrypts the image",
    },
)

_OPENSTACK = Template(
    cloud="openstack",
    builder_type="openstack",
    default_data_sources=("openstack",),
    flags={
        **COMMON_FLAGS,
        "--os-cloud": None,
        "--region": None,
        "--flavor": "flavor",
        "--source-image": "source_image_name",
        "--network": "networks",
        "--key-name": None,
        "--image-visibility": "image_visibility",
        "--share-with": "image_members",
    },
    flag_notes={
        **COMMON_NOTES,
        "--os-cloud": "Packer's openstack builder reads OS_CLOUD (clouds.yaml) like the bake",
        "--region": "Packer's openstack builder reads OS_REGION_NAME like the bake",
        "--key-name": "communicator none: the template needs no key pair",
    },
    packer_only={
        **COMMON_PACKER_ONLY,
        "source_image": "builder image id (the bake's --source-image takes a name or an id)",
        "availability_zone": "availability zone of the builder",
        "use_blockstorage_volume": "boot the builder from a Cinder volume (bake: image-backed)",
        "volume_size": "size of that volume",
    },
)

_HETZNER = Template(
    cloud="hetzner",
    builder_type="hcloud",
    default_data_sources=("hetzner",),
    flags={
        **COMMON_FLAGS,
        "--location": "location",
        "--arch": "arch",
        "--server-type": "server_type",
        "--source-image": "source_image",
        "--snapshot-description": None,
        "--ssh-key": "ssh_keys",
        "--network": None,
    },
    flag_notes={
        **COMMON_NOTES,
        "--snapshot-description": "Packer's hcloud builder stores snapshot_name (image_name) as description",
        "--network": "Packer 1.6.6's hcloud builder cannot attach a private network",
    },
    packer_only={
        **COMMON_PACKER_ONLY,
        "hcloud_token": "API token (default: HCLOUD_TOKEN)",
    },
)

TEMPLATES: dict[str, Template] = {t.cloud: t for t in (_AWS, _GCP, _OPENSTACK, _HETZNER, _QEMU)}


def packer_dir() -> Path:
    """The directory holding the templates: ``$FACTORY_PACKER_DIR``, else ``packer/`` of this checkout."""
    env = os.environ.get(TEMPLATE_DIR_ENV)
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[2] / "packer"


def template_dir(cloud: str) -> Path:
    """The Packer configuration directory of ``cloud`` (its template plus the shared variables)."""
    return packer_dir() / cloud
