"""How large an Ignition config QEMU's fw_cfg can carry in practice (fault 24).

QEMU itself takes any ``-fw_cfg file=`` up to 4 GiB - 1 (the file directory entry's size
is a 32-bit field, ``FWCfgFile.size`` in hw/nvram/fw_cfg.c).  The guest is the limit:
Ignition reads ``/sys/firmware/qemu_fw_cfg/.../raw`` in 4 KiB pieces and the kernel's
``fw_cfg_read_blob`` skips to each offset by reading every byte before it through the
data port, so reading N bytes costs ~N²/8192 port reads.  Measured under TCG on a loaded
host: a 1 MiB config took Ignition 48 s to read (it logs its own "quadratic time" warning);
a 2 MiB one booted and was applied, ready after 325 s (of the 600 s scaled ready
timeout); 4 MiB would be ~4x the 2 MiB read, past that timeout.  A config over
:data:`FW_CFG_CONFIG_LIMIT` is therefore bad input, refused before any boot.
"""

from __future__ import annotations

from kolapy.errors import BadInputError
from kolapy.ignition.config import Ignition

MiB = 1024 * 1024

FW_CFG_CONFIG_LIMIT = 2 * MiB
"""Largest Ignition config (bytes of JSON) kolapy passes through fw_cfg."""

QEMU_FW_CFG_MAX = 0xFFFFFFFF
"""Largest fw_cfg file QEMU can describe (32-bit size); far above the practical limit."""


def check_fw_cfg_size(config: Ignition, source: str, limit: int = FW_CFG_CONFIG_LIMIT) -> int:
    """The config's size in bytes; raise :class:`BadInputError` past ``limit``: one line,
    ``<source> is N MiB, over the …`` (``source`` names the config)."""
    size = len(config.to_json().encode("utf-8"))
    if size > limit:
        raise BadInputError(
            f"{source} is {size / MiB:.1f} MiB, over the {limit / MiB:g} MiB "
            "that QEMU fw_cfg delivers in time (Ignition reads fw_cfg in quadratic time: "
            "1 MiB took 48 s under TCG); put large files behind a URL (e.g. "
            "host_http) instead of inline data"
        )
    return size
