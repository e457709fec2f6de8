"""Unit test of ``after_boot``: the recipe's run-once units start once the boot has finished.

Under TCG the recipe's ``Type=oneshot`` units (image import, ``kubeadm init``)
kept ``systemctl is-system-running`` at ``starting`` past kolapy's 600 s boot
wait (seen: load-images alone took over 3.5 min in the first k8s.bootstrap run).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from kolapy.k8s.recipe import (
    AFTER_BOOT_FLAG,
    AFTER_BOOT_UNIT,
    NODE_BINARIES,
    K8sCluster,
    Node,
    after_boot,
    machine_ignition,
    only_if_installed,
    run_once_units,
)

MASTER = Node("k8s-master01", "10.200.0.11")
WORKER = Node("k8s-node01", "10.200.0.12")
CLUSTER = K8sCluster(master=MASTER, workers=(WORKER,), token="abcdef.0123456789abcdef")


@pytest.mark.parametrize("role", ["master", "worker"])
def test_every_run_once_unit_waits_for_the_flag_and_the_starter_sets_it(role: str) -> None:
    node = MASTER if role == "master" else WORKER
    units = {f"{u}.service" for u in run_once_units(CLUSTER, role, node)}
    config = after_boot(CLUSTER, role).to_dict()
    by_name = {u["name"]: u for u in config["systemd"]["units"]}
    starter = by_name.pop(AFTER_BOOT_UNIT)
    assert set(by_name) == units
    for name, unit in by_name.items():
        (dropin,) = unit["dropins"]
        assert dropin["contents"] == f"[Unit]\nConditionPathExists={AFTER_BOOT_FLAG}\n", name
        assert "contents" not in unit  # the recipe's unit itself is untouched
    text = starter["contents"]
    assert starter["enabled"] is True
    assert "Type=simple" in text  # never holds the boot up itself
    for path in NODE_BINARIES:
        assert f"ConditionPathExists={path}" in text
    (exec_line,) = [ln for ln in text.splitlines() if ln.startswith("ExecStart=")]
    wait, touch, start = exec_line.removeprefix("ExecStart=/bin/sh -c '").rstrip("'").split("; ")
    assert wait == "systemctl is-system-running --wait"
    assert touch == f"touch {AFTER_BOOT_FLAG}"
    assert start.startswith("exec systemctl start --no-block ")
    assert set(start.split()[4:]) == units


def test_merged_config_is_valid_ignition(tmp_path: Path) -> None:
    if shutil.which("ignition-validate") is None:
        pytest.skip("ignition-validate not installed (Debian's ignition package)")
    config = (machine_ignition(CLUSTER, "master")
              .merge(only_if_installed(CLUSTER, "master"))
              .merge(after_boot(CLUSTER, "master")))
    path = tmp_path / "master.ign"
    path.write_text(config.to_json())
    got = subprocess.run(["ignition-validate", str(path)], capture_output=True, text=True)
    assert got.returncode == 0, got.stdout + got.stderr
