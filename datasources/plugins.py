"""The datasources plugin manager (built in a function, never at import time).

Built-in providers are the modules of :data:`DEFAULT_PLUGINS`; third-party providers come from
the entry-point group :data:`ENTRY_POINT_GROUP`. Scanning entry points walks every installed
distribution's metadata, which costs tens of milliseconds in a big environment, so callers that
only need built-in providers pass ``load_entrypoints=False`` (see :func:`needs_entrypoints`).
"""

from __future__ import annotations

import importlib
import os
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pluggy

from datasources import PROJECT, hookspecs

if TYPE_CHECKING:
    from datasources.model import ProviderInfo

# Built-in providers, each a plugin module implementing datasources.hookspecs.
DEFAULT_PLUGINS: tuple[str, ...] = (
    "datasources.providers.aws",
    "datasources.providers.gcp",
    "datasources.providers.openstack",
    "datasources.providers.packet",
    "datasources.providers.scaleway",
    "datasources.providers.vultr",
    "datasources.providers.hetzner",
    "datasources.providers.digitalocean",
    "datasources.providers.cdrom",
)
ENTRY_POINT_GROUP = "k3os_factory.datasources"
# Names (and aliases) the built-in modules answer to, known without importing them.
BUILTIN_NAMES: frozenset[str] = frozenset([m.rsplit(".", 1)[1] for m in DEFAULT_PLUGINS] + ["equinixmetal"])
TRACE_ENV = "DATASOURCES_TRACE"


def get_plugin_manager(
    load_entrypoints: bool = True, env: Mapping[str, str] | None = None
) -> pluggy.PluginManager:
    """Build a plugin manager with the hookspecs, the entry-point plugins and the built-ins.

    A built-in module that does not exist (yet) is skipped; any other import error surfaces.
    With ``DATASOURCES_TRACE=1`` in ``env`` (default: the process environment) every hook call
    is logged to stderr with its duration.

    :param load_entrypoints: also load third-party plugins of group ``k3os_factory.datasources``.
    :param env: environment to read ``DATASOURCES_TRACE`` from.
    :return: the ready plugin manager (``check_pending`` already passed).
    """
    pm = pluggy.PluginManager(PROJECT)
    pm.add_hookspecs(hookspecs)
    if load_entrypoints:
        load_entrypoint_plugins(pm)
    for name in DEFAULT_PLUGINS:
        module = _import_optional(name)
        if module is not None and not pm.is_registered(module):
            pm.register(module, name)
    pm.check_pending()
    if (env if env is not None else os.environ).get(TRACE_ENV, "") not in ("", "0"):
        enable_trace(pm)
    return pm


def load_entrypoint_plugins(pm: pluggy.PluginManager, log: Callable[[str], None] | None = None) -> int:
    """Load third-party plugins into ``pm``; return how many were loaded.

    Each entry point is loaded on its own: one that cannot be imported, registered or asked
    for its providers (a missing dependency, a hook that is not in the spec, a providers hook
    that raises or returns something else than ProviderInfo items) is logged and skipped, so
    a broken third-party package never keeps the node from its userdata.
    """
    from importlib.metadata import entry_points

    log = log or _stderr_log
    count = 0
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if pm.get_plugin(ep.name) is not None or pm.is_blocked(ep.name):
            continue
        try:
            plugin = ep.load()
            pm.register(plugin, name=ep.name)
        except Exception as exc:  # third-party code: anything may go wrong
            log(f"plugin {ep.name!r} ({ep.value}) skipped: cannot load it: {type(exc).__name__}: {exc}")
            continue
        problem = _plugin_problem(pm, ep.name)
        if problem is not None:
            pm.unregister(name=ep.name)
            log(f"plugin {ep.name!r} ({ep.value}) skipped: {problem}")
            continue
        count += 1
    return count


def _plugin_problem(pm: pluggy.PluginManager, name: str) -> str | None:
    """Why the freshly registered plugin ``name`` cannot be used, or None when it can."""
    from datasources.model import ProviderInfo

    try:
        pm.check_pending()
    except pluggy.PluginValidationError as exc:
        return str(exc)
    others = [p for p in pm.get_plugins() if p is not pm.get_plugin(name)]
    try:
        results = pm.subset_hook_caller("datasources_providers", remove_plugins=others)()
    except Exception as exc:  # third-party code
        return f"datasources_providers raised {type(exc).__name__}: {exc}"
    for infos in results:
        if not isinstance(infos, list | tuple) or not all(isinstance(i, ProviderInfo) for i in infos):
            return "datasources_providers must return a list of ProviderInfo"
    return None


def _stderr_log(line: str) -> None:
    sys.stderr.write(f"datasources: {line}\n")


def needs_entrypoints(names: Iterable[str]) -> bool:
    """True when some requested provider name is not built in (or none were requested)."""
    wanted = list(names)
    return not wanted or any(n not in BUILTIN_NAMES for n in wanted)


def _import_optional(name: str) -> object | None:
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name == name:
            return None
        raise


@dataclass(frozen=True)
class ProviderTable:
    """The providers every registered plugin announced, in default order, plus the alias map."""

    providers: tuple[ProviderInfo, ...]
    aliases: Mapping[str, str]

    def names(self) -> list[str]:
        """Canonical provider names in default order."""
        return [p.name for p in self.providers]

    def resolve(self, name: str) -> str | None:
        """Canonical name of ``name`` (an alias or a name), or None when unknown."""
        return self.aliases.get(name.strip().lower())

    def info(self, name: str) -> ProviderInfo:
        """The :class:`ProviderInfo` of a canonical name."""
        for p in self.providers:
            if p.name == name:
                return p
        raise KeyError(name)


def provider_table(pm: pluggy.PluginManager) -> ProviderTable:
    """Collect ``datasources_providers`` from every plugin: sorted by order, then name."""
    seen: dict[str, ProviderInfo] = {}
    for infos in pm.hook.datasources_providers():
        for info in infos or ():
            seen.setdefault(info.name, info)
    providers = tuple(sorted(seen.values(), key=lambda p: (p.order, p.name)))
    aliases: dict[str, str] = {}
    for p in providers:
        aliases[p.name] = p.name
        for alias in p.aliases:
            aliases.setdefault(alias, p.name)
    return ProviderTable(providers, aliases)


def plugin_of(pm: pluggy.PluginManager, provider: str) -> str | None:
    """Name of the plugin announcing ``provider`` (for ``datasources list``)."""
    for impl in pm.hook.datasources_providers.get_hookimpls():
        infos: Sequence[ProviderInfo] = impl.function() or ()  # type: ignore[assignment]
        if any(getattr(i, "name", None) == provider for i in infos):
            return pm.get_name(impl.plugin)
    return None


def enable_trace(pm: pluggy.PluginManager) -> None:
    """Log every hook call (name, implementations, duration) to stderr."""
    starts: dict[tuple[int, str], float] = {}

    def before(hook_name: str, impls: Sequence[pluggy.HookImpl], kwargs: Mapping[str, object]) -> None:
        import threading

        starts[(threading.get_ident(), hook_name)] = time.perf_counter()

    def after(
        outcome: pluggy.Result[object],
        hook_name: str,
        impls: Sequence[pluggy.HookImpl],
        kwargs: Mapping[str, object],
    ) -> None:
        import threading

        start = starts.pop((threading.get_ident(), hook_name), time.perf_counter())
        ms = (time.perf_counter() - start) * 1000
        args = ", ".join(f"{k}={_short(v)}" for k, v in kwargs.items())
        exc = outcome.exception
        result = f"raised {type(exc).__name__}" if exc is not None else "ok"
        sys.stderr.write(
            f"datasources: trace: {hook_name}({args}) -> {result} in {ms:.1f} ms [{len(impls)} impl(s)]\n"
        )

    pm.add_hookcall_monitoring(before, after)


def _short(value: object) -> str:
    """A short, secret-free rendering of a hook argument."""
    if isinstance(value, str):
        return repr(value)
    return type(value).__name__
