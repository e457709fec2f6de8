"""The private network of a cluster: the hub, the guest fragment, QEMU's arguments."""

from __future__ import annotations

import base64
import socket
import threading
import time
import urllib.parse
from pathlib import Path

import pytest

from kolapy.machine.cluster import Cluster
from kolapy.machine.privnet import Hub, address_for, mac_for, privnet_fragment


def _member(hub: Hub, i: int) -> socket.socket:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind(str(hub.nics[i].local))
    s.settimeout(5)
    return s


def test_hub_repeats_each_frame_to_every_other_member(tmp_path: Path) -> None:
    with Hub(3, sockdir=tmp_path) as hub:
        members = [_member(hub, i) for i in range(3)]
        members[0].sendto(b"frame-from-0", str(hub.nics[0].hub))
        assert members[1].recv(100) == b"frame-from-0"
        assert members[2].recv(100) == b"frame-from-0"
        members[2].sendto(b"frame-from-2", str(hub.nics[2].hub))
        assert members[0].recv(100) == b"frame-from-2"
        assert members[1].recv(100) == b"frame-from-2"
        # the sender never hears its own frame back
        members[0].settimeout(0.3)
        with pytest.raises(TimeoutError):
            members[0].recv(100)
        for s in members:
            s.close()
    assert hub.frames == 2


def test_hub_survives_absent_members_and_cleans_up(tmp_path: Path) -> None:
    hub = Hub(2, sockdir=tmp_path)
    only = _member(hub, 0)
    only.sendto(b"nobody listens", str(hub.nics[0].hub))  # member 1 is not up yet
    deadline = time.monotonic() + 5
    while hub.frames < 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    peer = _member(hub, 1)
    only.sendto(b"now it does", str(hub.nics[0].hub))
    assert peer.recv(100) == b"now it does"
    hub.close()
    hub.close()  # idempotent
    only.close()
    peer.close()
    assert not hub.dir.exists()
    assert not any(t.name == "kolapy-hub" and t.is_alive() for t in threading.enumerate())


def test_addresses_and_macs_are_unique() -> None:
    macs = {mac_for(seg, m) for seg in range(3) for m in range(4)}
    assert len(macs) == 12
    assert address_for(0) == "10.200.0.11"
    with pytest.raises(ValueError):
        address_for(200)


def _file_text(config: dict, path: str) -> str:
    for f in config["storage"]["files"]:
        if f["path"] == path:
            source = f["contents"]["source"]
            head, data = source.split(",", 1)
            if ";base64" in head:
                return base64.b64decode(data).decode()
            return urllib.parse.unquote(data)
    raise KeyError(path)


def test_guest_fragment_sets_the_address_on_the_nic_with_that_mac(tmp_path: Path) -> None:
    with Hub(2, sockdir=tmp_path) as hub:
        nic = hub.nics[1]
        config = privnet_fragment(nic).to_dict()
    units = {u["name"]: u for u in config["systemd"]["units"]}
    unit = units["kolapy-privnet.service"]
    assert unit["enabled"] is True and "/etc/kolapy/privnet.sh" in unit["contents"]
    script = _file_text(config, "/etc/kolapy/privnet.sh")
    assert nic.mac in script and f"{nic.address}/24" in script
    assert nic.mac in _file_text(config, "/etc/NetworkManager/conf.d/90-kolapy-privnet.conf")
    networkd = _file_text(config, "/etc/systemd/network/10-kolapy-privnet.network")
    assert f"MACAddress={nic.mac}" in networkd and f"Address={nic.address}/24" in networkd


def test_qemu_args_use_a_unix_dgram_netdev(tmp_path: Path) -> None:
    with Hub(1, sockdir=tmp_path) as hub:
        args = hub.nics[0].qemu_args(0)
    netdev = args[args.index("-netdev") + 1]
    assert netdev.startswith("dgram,id=priv0,local.type=unix")
    assert f"remote.path={hub.nics[0].hub}" in netdev
    assert f"mac={hub.nics[0].mac}" in args[args.index("-device") + 1]


def test_cluster_addresses(tmp_path: Path) -> None:
    with Hub(2, sockdir=tmp_path) as hub:
        a, b = object(), object()
        c = Cluster([a, b], hub)
        assert c.address(b) == "10.200.0.12" and c.addresses == ["10.200.0.11", "10.200.0.12"]
        assert list(c) == [a, b] and len(c) == 2
    with pytest.raises(LookupError):
        Cluster([a]).address(0)


def test_machine_command_has_extra_user_nics_on_own_subnets_and_the_private_nic(
    tmp_path: Path,
) -> None:
    from kolapy.enums import Accel
    from kolapy.machine.platform import ResolvedFirmware, load_platform
    from kolapy.machine.qemu_command import MachinePaths, QemuCommand
    from kolapy.machine.spec import MachineSpec

    with Hub(1, sockdir=tmp_path) as hub:
        spec = MachineSpec(image=Path("/img.qcow2"), additional_nics=2, private_nics=(hub.nics[0],))
        argv = QemuCommand(spec, load_platform(spec.arch), Accel.TCG,
                           MachinePaths.for_workdir(tmp_path), 2222,
                           ResolvedFirmware(spec.firmware)).argv()
    nics = [argv[i + 1] for i, a in enumerate(argv) if a == "-nic"]
    assert len(nics) == 3 and "hostfwd=tcp:127.0.0.1:2222-:22" in nics[0]
    assert "net=10.0.3.0/24" in nics[1] and "net=10.0.4.0/24" in nics[2]
    assert any(a.startswith("dgram,id=priv0") for a in argv)
