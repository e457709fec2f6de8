"""The fw_cfg size limit of an Ignition config (fault 24): bad input past 2 MiB, one line."""

from __future__ import annotations

import pytest

from kolapy.errors import BadInputError
from kolapy.ignition.config import Ignition
from kolapy.ignition.fwcfg import FW_CFG_CONFIG_LIMIT, QEMU_FW_CFG_MAX, check_fw_cfg_size


def _config(payload: int) -> Ignition:
    return Ignition.from_dict({"ignition": {"version": "3.3.0"}, "storage": {"files": [
        {"path": "/etc/big", "contents": {"source": "data:," + "x" * payload}}]}})


def test_under_the_limit_passes_and_reports_its_size() -> None:
    cfg = _config(FW_CFG_CONFIG_LIMIT - 1024)
    assert check_fw_cfg_size(cfg, "t") == len(cfg.to_json().encode())


def test_over_the_limit_is_one_line_naming_the_config_and_the_limit() -> None:
    with pytest.raises(BadInputError) as exc:
        check_fw_cfg_size(_config(FW_CFG_CONFIG_LIMIT), "test fault.x: its Ignition config")
    msg = str(exc.value)
    assert "\n" not in msg
    assert msg.startswith("test fault.x: its Ignition config is 2.0 MiB, over the 2 MiB")
    assert "quadratic" in msg and "URL" in msg


def test_the_practical_limit_is_far_below_qemus() -> None:
    assert FW_CFG_CONFIG_LIMIT < QEMU_FW_CFG_MAX == 2**32 - 1
