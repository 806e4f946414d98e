"""The builder userdata renderer: the only source of builder userdata (``factory bake``, Packer).

``render_builder_userdata(BuilderSpec(...))`` gives the bytes for a cloud's user-data field.
"""

from __future__ import annotations

from image_base.builder.userdata import (
    USERDATA_LIMIT,
    BuilderSpec,
    BuilderSpecError,
    install_sh_text,
    render_builder_script,
    render_builder_userdata,
)

__all__ = [
    "USERDATA_LIMIT",
    "BuilderSpec",
    "BuilderSpecError",
    "install_sh_text",
    "render_builder_script",
    "render_builder_userdata",
]
