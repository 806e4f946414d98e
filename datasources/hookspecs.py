"""The hooks a datasource plugin implements. Every built-in provider is such a plugin.

A provider plugin implements :func:`datasources_providers` to announce itself and
:func:`datasources_fetch` to do the work; :func:`datasources_dmi_claims` is optional.
"""

from __future__ import annotations

import pluggy

from datasources import PROJECT
from datasources.model import Dmi, FetchContext, Metadata, ProviderInfo

hookspec = pluggy.HookspecMarker(PROJECT)


@hookspec
def datasources_providers() -> list[ProviderInfo]:
    """Announce the providers this plugin implements.

    :return: one :class:`ProviderInfo` per provider (name, cloud, default order, aliases).
    """
    raise NotImplementedError


@hookspec
def datasources_dmi_claims(dmi: Dmi) -> list[str] | None:
    """Say which clouds the DMI strings positively name.

    Called once per fetch with the DMI of the machine. A plugin returns the ``cloud`` names of
    its providers that DMI identifies without doubt (e.g. ``sys_vendor == "Hetzner"``), else
    ``None`` or an empty list. Never does I/O.

    :param dmi: the machine's DMI strings.
    :return: cloud names, or None.
    """
    raise NotImplementedError


@hookspec(firstresult=True)
def datasources_base_url(provider: str) -> str | None:
    """Give the default base URL of ``provider`` (no trailing slash).

    Stops at the first non-None result. The engine replaces it with ``DATASOURCES_<NAME>_URL``
    when that is set.

    :param provider: canonical provider name.
    :return: the URL, or None when this plugin does not implement ``provider``.
    """
    raise NotImplementedError


@hookspec(firstresult=True)
def datasources_fetch(provider: str, ctx: FetchContext) -> Metadata | None:
    """Probe for ``provider`` and fetch its metadata and userdata.

    Stops at the first non-None result. A plugin returns None for providers it does not
    implement. Must finish before ``ctx.deadline``.

    :param provider: canonical provider name.
    :param ctx: base URL, deadline, DMI, environment and logger.
    :return: what was found; ``userdata`` None when the cloud has none for this node.
    :raises NotDetected: the provider's cloud is not here.
    :raises ProviderError: the cloud is here but fetching failed.
    """
    raise NotImplementedError
