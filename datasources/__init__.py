"""Node-side datasources: find a node's userdata and metadata at boot.

Third-party providers import :data:`hookimpl` from here to implement the hooks of
:mod:`datasources.hookspecs`.
"""

from __future__ import annotations

import pluggy

PROJECT = "k3os_factory.datasources"
hookimpl = pluggy.HookimplMarker(PROJECT)

__all__ = ["PROJECT", "hookimpl"]
