"""``factory packer``: the Packer templates in ``packer/`` and the files they are run with.

``render(RenderOptions(cloud, ...))`` writes the builder userdata (the same bytes ``factory bake``
would use) and ``CLOUD.auto.pkrvars.hcl``; :data:`TEMPLATES` maps ``factory bake`` flags to template
variables.
"""

from __future__ import annotations

from factory.packer.render import RenderOptions, RenderResult, parse_var_pairs, render
from factory.packer.templates import TEMPLATES, Template, packer_dir, template_dir

__all__ = [
    "TEMPLATES",
    "RenderOptions",
    "RenderResult",
    "Template",
    "packer_dir",
    "parse_var_pairs",
    "render",
    "template_dir",
]
