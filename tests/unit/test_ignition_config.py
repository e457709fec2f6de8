"""The Ignition builder, loading and round-tripping; the harness fragment."""

from __future__ import annotations

import base64
import json
import stat
import urllib.parse
from pathlib import Path

import pytest

from kolapy.distro import get_distro
from kolapy.errors import BadInputError
from kolapy.ignition import DEFAULT_VERSION, Ignition, data_url, harness_fragment, validate
from kolapy.ignition.__main__ import main as cat_main

UNIT = "[Service]\nExecStart=/bin/true\n[Install]\nWantedBy=multi-user.target\n"


def decode(url: str) -> bytes:
    head, _, payload = url.partition(",")
    if head.endswith(";base64"):
        return base64.b64decode(payload)
    return urllib.parse.unquote_to_bytes(payload)


def test_default_version_is_3_3_0() -> None:
    assert DEFAULT_VERSION == "3.3.0"
    assert Ignition().to_dict() == {"ignition": {"version": "3.3.0"}}


def test_data_url_round_trips_text_and_bytes() -> None:
    text = 'line 1\n"quoted" é #%&?\n'
    assert decode(data_url(text)) == text.encode()
    assert data_url("a b") == "data:,a%20b"
    blob = bytes(range(256))
    assert data_url(blob).startswith("data:;base64,")
    assert decode(data_url(blob)) == blob


def test_add_file_entry_shape() -> None:
    cfg = Ignition().add_file("/etc/motd", "hi\n", mode=0o600, user="nest", group=0)
    assert cfg.to_dict()["storage"]["files"] == [
        {
            "path": "/etc/motd",
            "contents": {"source": "data:,hi%0A"},
            "mode": 0o600,
            "user": {"name": "nest"},
            "group": {"id": 0},
            "overwrite": True,
        }
    ]


def test_builders_chain_and_validate() -> None:
    cfg = (
        Ignition()
        .add_user("alice", groups=["wheel"], ssh_keys=["ssh-ed25519 AAAA alice"], shell="/bin/bash")
        .add_ssh_key("alice", "ssh-rsa BBBB alice2")
        .add_group("devs", gid=2000)
        .add_directory("/var/lib/x", mode=0o700, user="alice")
        .add_link("/etc/localtime", "/usr/share/zoneinfo/UTC")
        .add_link("/var/hard", "/var/lib/x/f", hard=True)
        .add_file("/var/lib/x/f", b"\x00\x01")
        .add_unit("hello.service", UNIT, enabled=True)
        .add_unit("hello.service", dropins={"10-env.conf": "[Service]\nEnvironment=A=1\n"})
        .add_unit("getty@tty1.service", mask=True)
    )
    d = cfg.to_dict()
    assert d["passwd"]["users"] == [
        {
            "name": "alice",
            "groups": ["wheel"],
            "sshAuthorizedKeys": ["ssh-ed25519 AAAA alice", "ssh-rsa BBBB alice2"],
            "shell": "/bin/bash",
        }
    ]
    assert d["storage"]["links"][1] == {"path": "/var/hard", "target": "/var/lib/x/f", "hard": True}
    unit = d["systemd"]["units"][0]
    assert unit["enabled"] is True and unit["contents"].startswith("[Service]")
    assert unit["dropins"] == [{"name": "10-env.conf", "contents": "[Service]\nEnvironment=A=1\n"}]
    assert validate(cfg) == []


def test_add_ssh_key_twice_is_one_key() -> None:
    cfg = Ignition().add_ssh_key("nest", "k1").add_ssh_key("nest", "k1\n")
    assert cfg.to_dict()["passwd"]["users"] == [{"name": "nest", "sshAuthorizedKeys": ["k1"]}]


def test_add_kernel_arguments_raises_version_to_3_3() -> None:
    cfg = Ignition("3.1.0").add_kernel_arguments(["a=1"], ["b"])
    assert cfg.version == "3.3.0"
    assert cfg.to_dict()["kernelArguments"] == {"shouldExist": ["a=1"], "shouldNotExist": ["b"]}
    assert Ignition("3.4.0").add_kernel_arguments(["x"]).version == "3.4.0"


def test_builder_keeps_declared_version() -> None:
    assert Ignition("3.0.0").add_file("/a", "x").version == "3.0.0"


def test_any_valid_config_round_trips_unchanged(tmp_path: Path) -> None:
    original = {
        "ignition": {"version": "3.4.0", "timeouts": {"httpTotal": 5}},
        "storage": {
            "luks": [{"name": "c", "device": "/dev/vdb", "clevis": {"tpm2": True}}],
            "files": [{"path": "/a", "append": [{"source": "data:,x"}]}],
        },
        "futureSection": {"whatever": [1, 2]},
    }
    path = tmp_path / "c.ign"
    path.write_text(json.dumps(original))
    loaded = Ignition.load(path)
    assert loaded.to_dict() == original
    assert loaded.source == str(path)
    out = loaded.write(tmp_path / "out.ign")
    assert json.loads(out.read_text()) == original
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    assert Ignition.from_json(loaded.to_json()) == loaded
    assert json.loads(loaded.to_json(indent=2)) == original


def test_to_dict_is_a_copy() -> None:
    cfg = Ignition()
    cfg.to_dict()["ignition"]["version"] = "9"
    assert cfg.version == "3.3.0"
    src = {"ignition": {"version": "3.3.0"}}
    wrapped = Ignition.from_dict(src)
    src["ignition"]["version"] = "3.0.0"
    assert wrapped.version == "3.3.0"


def test_equality() -> None:
    assert Ignition().add_file("/a", "x") == Ignition().add_file("/a", "x")
    assert Ignition().add_file("/a", "x") != Ignition().add_file("/a", "y")
    assert Ignition() != {"ignition": {"version": "3.3.0"}}


def test_load_errors_are_one_line_naming_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.ign"
    bad.write_text("{nope")
    with pytest.raises(BadInputError) as e:
        Ignition.load(bad)
    assert str(e.value) == (
        f"{bad}: invalid Ignition config: not JSON: "
        "Expecting property name enclosed in double quotes: line 1 column 2 (char 1)"
    )
    arr = tmp_path / "arr.json"
    arr.write_text("[1]")
    with pytest.raises(
        BadInputError, match=r"arr\.json: invalid Ignition config: not a JSON object \(got list\)$"
    ):
        Ignition.load(arr)
    with pytest.raises(BadInputError, match=r"missing\.ign: cannot read Ignition config"):
        Ignition.load(tmp_path / "missing.ign")


def test_load_butane_by_suffix(tmp_path: Path) -> None:
    bu = tmp_path / "config.bu"
    bu.write_text("variant: fcos\nversion: 1.4.0\npasswd:\n  users:\n    - name: core\n")
    cfg = Ignition.load(bu)
    assert cfg.to_dict() == {
        "ignition": {"version": "3.3.0"},
        "passwd": {"users": [{"name": "core"}]},
    }
    assert cfg.source == str(bu)


@pytest.mark.parametrize(("distro", "user"), [("nestos", "nest"), ("fcos", "core")])
def test_harness_fragment_user_and_unit(distro: str, user: str) -> None:
    frag = harness_fragment(distro, "ssh-ed25519 AAAA harness")
    assert frag == harness_fragment(get_distro(distro), "ssh-ed25519 AAAA harness")
    d = frag.to_dict()
    assert d["passwd"]["users"] == [
        {"name": user, "sshAuthorizedKeys": ["ssh-ed25519 AAAA harness"]}
    ]
    (unit,) = d["systemd"]["units"]
    assert unit["name"] == "kolapy-journal.service"
    assert unit["enabled"] is True
    text = unit["contents"]
    assert "ConditionPathExists=/dev/virtio-ports/kolapy.journal\n" in text
    assert "journalctl -b -f --no-tail -o json" in text
    assert "> /dev/virtio-ports/kolapy.journal" in text
    assert "Restart=always\n" in text
    assert "WantedBy=multi-user.target\n" in text
    assert validate(frag) == []


def test_harness_merge_does_not_clobber_test_keys() -> None:
    test_cfg = (
        Ignition("3.2.0")
        .add_user("nest", groups=["wheel"], ssh_keys=["ssh-rsa TEST"])
        .add_unit("mine.service", UNIT, enabled=True)
    )
    merged = test_cfg.merge(harness_fragment("nestos", "ssh-ed25519 HARNESS"))
    d = merged.to_dict()
    assert merged.version == "3.2.0"  # the fragment is 3.0.0: never raises a test's version
    assert d["passwd"]["users"] == [
        {
            "name": "nest",
            "groups": ["wheel"],
            "sshAuthorizedKeys": ["ssh-rsa TEST", "ssh-ed25519 HARNESS"],
        }
    ]
    assert [u["name"] for u in d["systemd"]["units"]] == ["mine.service", "kolapy-journal.service"]
    assert validate(merged) == []


def test_cat_helper(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bu = tmp_path / "config.bu"
    bu.write_text("variant: nestos\nversion: 1.0.0\n")
    assert cat_main(["cat", str(bu)]) == 0
    assert json.loads(capsys.readouterr().out) == {"ignition": {"version": "3.3.0"}}
    assert cat_main(["cat", str(tmp_path / "nope.ign")]) == 2
    assert "nope.ign: cannot read" in capsys.readouterr().err
