"""The config a machine boots: test config + harness fragment + pinned host key."""

from __future__ import annotations

import json
import urllib.parse

import pytest

from kolapy.errors import BadInputError
from kolapy.ignition import Ignition
from kolapy.machine.ignition_config import HOST_KEY_PATH, machine_config
from kolapy.transport.ssh import SSHKeyPair


@pytest.fixture
def keys(tmp_path):
    return SSHKeyPair.generate(tmp_path / "u"), SSHKeyPair.generate(tmp_path / "h", "host")


def _files(cfg):
    return {f["path"]: f for f in cfg["storage"]["files"]}


def _contents(entry) -> str:
    src = entry["contents"]["source"]
    assert src.startswith("data:,")
    return urllib.parse.unquote(src[len("data:,"):])


def test_harness_key_host_key_and_test_config_all_present(keys):
    user, host = keys
    test = Ignition().add_ssh_key("nest", "ssh-ed25519 AAAAtestkey test")
    test = test.add_file("/etc/motd", "hi")
    cfg = machine_config(test, distro="nestos", ssh_key=user, host_key=host).to_dict()
    (nest,) = [u for u in cfg["passwd"]["users"] if u["name"] == "nest"]
    assert "ssh-ed25519 AAAAtestkey test" in nest["sshAuthorizedKeys"]
    assert user.public_openssh in nest["sshAuthorizedKeys"]
    files = _files(cfg)
    assert "/etc/motd" in files
    assert files[HOST_KEY_PATH]["mode"] == 0o600
    assert _contents(files[HOST_KEY_PATH]) == host.private_openssh
    assert _contents(files[HOST_KEY_PATH + ".pub"]).strip() == host.public_openssh
    units = {u["name"] for u in cfg["systemd"]["units"]}
    assert "kolapy-journal.service" in units
    assert cfg["ignition"]["version"] == test.version


def test_none_and_dict_configs(keys):
    user, host = keys
    assert machine_config(None, distro="fcos", ssh_key=user, host_key=host).to_dict()[
        "passwd"]["users"][0]["name"] == "core"
    d = {"ignition": {"version": "3.2.0"}}
    assert machine_config(d, distro="nestos", ssh_key=user, host_key=host).version == "3.2.0"


def test_config_file_and_invalid_input(keys, tmp_path):
    user, host = keys
    good = tmp_path / "good.ign"
    good.write_text(json.dumps({"ignition": {"version": "3.3.0"}}))
    assert machine_config(good, distro="nestos", ssh_key=user, host_key=host).version == "3.3.0"
    bad = tmp_path / "bad.ign"
    bad.write_text("{not json")
    with pytest.raises(BadInputError) as exc:
        machine_config(bad, distro="nestos", ssh_key=user, host_key=host)
    assert str(bad) in str(exc.value) and "\n" not in str(exc.value)
