"""k8s.cluster's per-member configs and its Service manifest (no VM)."""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import urllib.parse
from pathlib import Path
from typing import Any

import pytest
import yaml

from kolapy.k8s.recipe import AFTER_BOOT_UNIT
from kolapy.machine.cluster import member_addresses, member_configs
from kolapy.suites import k8s_cluster as suite


def files_of(config: dict[str, Any]) -> dict[str, str]:
    out = {}
    for f in config["storage"]["files"]:
        head, _, data = f["contents"]["source"].partition(",")
        out[f["path"]] = (base64.b64decode(data).decode() if head.endswith(";base64")
                          else urllib.parse.unquote(data))
    return out


def test_the_master_inits_and_the_worker_joins_with_the_same_token() -> None:
    master, worker = (c.to_dict() for c in member_configs(suite.member_config, 2))
    m_files, w_files = files_of(master), files_of(worker)
    assert m_files["/etc/hostname"] == "k8s-master01\n"
    assert w_files["/etc/hostname"] == "k8s-node01\n"
    assert "/root/init-config.yaml" in m_files and "/root/join-config.yaml" not in m_files
    assert "/root/join-config.yaml" in w_files and "/root/init-config.yaml" not in w_files
    init = next(yaml.safe_load_all(m_files["/root/init-config.yaml"]))
    (join,) = yaml.safe_load_all(w_files["/root/join-config.yaml"])
    token = init["bootstrapTokens"][0]["token"]
    assert join["discovery"]["bootstrapToken"]["token"] == token == suite.CLUSTER.token
    # both on kolapy's cluster network: the worker finds the master there
    assert init["localAPIEndpoint"]["advertiseAddress"] == member_addresses(2)[0]
    assert join["discovery"]["bootstrapToken"]["apiServerEndpoint"] == "10.200.0.11:6443"
    # every unit of both is guarded, so an image without Kubernetes boots clean, and
    # the run-once units start after the boot (the starter has its own conditions)
    for config in (master, worker):
        units = {u["name"]: u for u in config["systemd"]["units"]}
        starter = units.pop(AFTER_BOOT_UNIT)
        assert "ConditionPathExists=/usr/bin/kubeadm" in starter["contents"]
        for unit in units.values():
            assert any(d["name"] == "05-kolapy-installed.conf" for d in unit["dropins"]), unit
        assert any(d["name"] == "06-kolapy-after-boot.conf"
                   for d in units["set-kernel-para.service"]["dropins"])
    assert member_configs(suite.member_config, 2)[0].to_dict() == master  # the same each time


def test_a_cluster_with_other_addresses_is_refused() -> None:
    with pytest.raises(ValueError, match=r"k8s-master01 is 10\.200\.0\.11 in the recipe"):
        suite.member_config(0, ("10.9.9.9", "10.9.9.10"))


@pytest.mark.skipif(shutil.which("ignition-validate") is None, reason="no ignition-validate")
def test_both_configs_pass_ignition_validate(tmp_path: Path) -> None:
    for i, config in enumerate(member_configs(suite.member_config, 2)):
        path = config.write(tmp_path / f"m{i}.ign")
        check = subprocess.run(["ignition-validate", str(path)], capture_output=True, text=True)
        assert check.returncode == 0, (i, check.stdout, check.stderr)


def test_the_server_is_pinned_to_the_worker_behind_a_service() -> None:
    pod, service = suite.server_manifest()["items"]
    assert pod["spec"]["nodeSelector"] == {"kubernetes.io/hostname": "k8s-node01"}
    (container,) = pod["spec"]["containers"]
    assert container["imagePullPolicy"] == "Never"  # a local image: nothing is pulled
    assert container["image"] == suite.ETCD_IMAGE
    assert service["spec"]["selector"] == pod["metadata"]["labels"]
    assert service["spec"]["ports"][0]["targetPort"] == container["ports"][0]["containerPort"]
    json.dumps(suite.server_manifest())  # it travels as JSON
