"""The etcd.cluster config (kolapy.k8s.etcd): one Ignition config for every member."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from kolapy.k8s.etcd import (
    ENV_FILE,
    MEMBER_UNIT,
    etcd_cluster_ignition,
    initial_cluster,
    member_name,
    member_script,
)

ADDRS = ["10.200.0.11", "10.200.0.12", "10.200.0.13"]


def test_names_and_initial_cluster() -> None:
    assert member_name("10.200.0.12") == "etcd-12"
    assert initial_cluster(ADDRS) == (
        "etcd-11=http://10.200.0.11:2380,etcd-12=http://10.200.0.12:2380,"
        "etcd-13=http://10.200.0.13:2380"
    )


def test_member_script_writes_this_members_env(tmp_path: Path) -> None:
    """Run the script with a fake ``ip`` that reports 10.200.0.12: the env names etcd-12."""
    script = member_script(ADDRS, "tok").replace(ENV_FILE, str(tmp_path / "env"))
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "ip").write_text("#!/bin/sh\necho '3: ens5    inet 10.200.0.12/24 scope global'\n")
    (fake / "ip").chmod(0o755)
    proc = subprocess.run(["sh", "-c", script], env={"PATH": f"{fake}:/usr/bin:/bin"},
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr
    env = dict(line.split("=", 1) for line in (tmp_path / "env").read_text().splitlines())
    assert env["ETCD_NAME"] == "etcd-12"
    assert env["ETCD_LISTEN_PEER_URLS"] == "http://10.200.0.12:2380"
    assert env["ETCD_ADVERTISE_CLIENT_URLS"] == "http://10.200.0.12:2379"
    assert env["ETCD_INITIAL_CLUSTER"] == initial_cluster(ADDRS)
    assert env["ETCD_INITIAL_CLUSTER_TOKEN"] == "tok"
    # TCG-sized raft timings (etcd's defaults are 100 / 1000 ms)
    assert (env["ETCD_HEARTBEAT_INTERVAL"], env["ETCD_ELECTION_TIMEOUT"]) == ("500", "5000")


def test_config_units_and_validation(tmp_path: Path) -> None:
    config = etcd_cluster_ignition(ADDRS).to_dict()
    units = {u["name"]: u for u in config["systemd"]["units"]}
    assert units["etcd.service"]["enabled"] is True
    dropin = units["etcd.service"]["dropins"][0]["contents"]
    for line in (f"Requires={MEMBER_UNIT}", "Type=simple", "Restart=no",
                 f"EnvironmentFile={ENV_FILE}"):
        assert line in dropin.splitlines()
    assert "After=kolapy-privnet.service" in units[MEMBER_UNIT]["contents"]
    with pytest.raises(ValueError, match="distinct"):
        etcd_cluster_ignition(["10.200.0.11", "10.200.0.11"])
    if shutil.which("ignition-validate") is None:
        pytest.skip("ignition-validate not installed (Debian package ignition)")
    path = tmp_path / "etcd.ign"
    path.write_text(etcd_cluster_ignition(ADDRS).to_json())
    check = subprocess.run(["ignition-validate", str(path)], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
