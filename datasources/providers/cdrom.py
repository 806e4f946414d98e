"""The ``cdrom`` provider: NoCloud (``cidata``) and OpenStack config drive (``config-2``) volumes.

Finds the volume by filesystem label (iso9660 or vfat) without mounting and reads
``user-data``/``meta-data`` or ``openstack/latest/meta_data.json``/``user_data``. The work is
in :mod:`datasources.providers._cdrom_scan`, imported only when this provider is probed, so
loading the plugin costs next to nothing for runs that never touch a cdrom.
"""

from __future__ import annotations

from datasources import hookimpl
from datasources.model import Dmi, FetchContext, Metadata, NotDetected, ProviderError, ProviderInfo

NAME = "cdrom"


@hookimpl
def datasources_providers() -> list[ProviderInfo]:
    """Announce the ``cdrom`` provider (local, never skipped by the DMI fast path)."""
    return [
        ProviderInfo(
            name=NAME,
            cloud=None,
            order=90,
            description="NoCloud cidata / OpenStack config-2 volume (iso9660 or vfat), read without mounting",
        )
    ]


@hookimpl
def datasources_base_url(provider: str) -> str | None:
    """The cdrom provider has no base URL."""
    return None


@hookimpl
def datasources_dmi_claims(dmi: Dmi) -> list[str] | None:
    """DMI never names a local volume: no claims."""
    return None


@hookimpl
def datasources_fetch(provider: str, ctx: FetchContext) -> Metadata | None:
    """Find a cidata/config-2 volume and read its metadata and userdata.

    :raises NotDetected: no device carries either label.
    :raises ProviderError: every labelled device failed to read (the first failure is reported).
    """
    if provider != NAME:
        return None
    from datasources.providers._cdrom_scan import candidate_devices, find_seeds, read_seed

    devices = candidate_devices(ctx.env)
    seeds = find_seeds(devices, ctx.deadline, ctx.log)
    if not seeds:
        raise NotDetected(f"no cidata or config-2 volume among {len(devices)} devices")
    errors: list[str] = []
    for seed in seeds:
        try:
            metadata = read_seed(seed)
        except ProviderError as exc:
            ctx.log(str(exc))
            errors.append(str(exc))
            continue
        if errors:
            ctx.log(f"using {seed.path} after {len(errors)} unreadable labelled volume(s)")
        return metadata
    raise ProviderError(errors[0] if len(errors) == 1 else f"{errors[0]} (and {len(errors) - 1} more)")
