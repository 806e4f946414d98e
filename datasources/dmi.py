"""Read the machine's DMI strings (``/sys/class/dmi/id``, or ``DATASOURCES_DMI_DIR`` for tests)."""

from __future__ import annotations

import os
from collections.abc import Mapping

from datasources.model import Dmi

DMI_DIR = "/sys/class/dmi/id"
DMI_DIR_ENV = "DATASOURCES_DMI_DIR"
# Old Xen-based EC2 instances expose their UUID here instead of (or besides) DMI.
HYPERVISOR_UUID = "/sys/hypervisor/uuid"
_FIELDS = (
    "sys_vendor",
    "product_name",
    "product_serial",
    "product_uuid",
    "chassis_asset_tag",
    "board_vendor",
)


def _read(path: str) -> str:
    try:
        with open(path, "rb") as f:
            return f.read(4096).decode("utf-8", errors="replace").strip()
    except OSError:
        return ""


def read_dmi(env: Mapping[str, str] | None = None) -> Dmi:
    """Read the DMI strings; unreadable entries are empty strings.

    When ``product_uuid`` is unreadable (not root, or Xen), the hypervisor UUID stands in for
    it, so a claim on the UUID prefix (AWS ``ec2...``) still works. With ``DATASOURCES_DMI_DIR``
    set, only that directory is read (its optional ``hypervisor_uuid`` file stands for
    ``/sys/hypervisor/uuid``).

    :param env: environment (default: the process environment).
    """
    env = os.environ if env is None else env
    override = env.get(DMI_DIR_ENV)
    base = override or DMI_DIR
    values = {name: _read(os.path.join(base, name)) for name in _FIELDS}
    if not values["product_uuid"]:
        hyp = os.path.join(override, "hypervisor_uuid") if override else HYPERVISOR_UUID
        values["product_uuid"] = _read(hyp)
    return Dmi(**values)
