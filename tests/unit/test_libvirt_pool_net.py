"""Pool storage, NAT network leases and memory placement of the libvirt platform, with
fake libvirt objects (no daemon): what is uploaded, reused, registered and chosen."""

from __future__ import annotations

import hashlib
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from kolapy.config import RunConfig
from kolapy.machine import libvirt_hosts, libvirt_net, libvirt_storage
from kolapy.machine.libvirt_hosts import LibvirtOptions, is_local, options_of, placed_through
from kolapy.machine.libvirt_net import network_nics, newest_lease

libvirt = pytest.importorskip("libvirt", reason="libvirt-python (setup.sh installs it)")


def _err(code: int, text: str = "error") -> Exception:
    libvirt.virResetLastError()  # else the message is the last real error's
    exc = libvirt.libvirtError(text)
    exc.err = (code, 0, text, 0, "", None, None, 0, 0)
    return exc


def _cfg(**opts: object) -> RunConfig:
    return RunConfig.from_options(lambda dest, default: opts.get(dest, default))


# ---- options ------------------------------------------------------------------------------


def test_defaults_files_and_user_mode_locally_pool_and_nat_remotely():
    assert is_local("qemu:///system") and is_local("qemu:///session")
    assert is_local("qemu+unix:///system?socket=/run/x.sock")
    assert not is_local("qemu+ssh://lab1/system") and not is_local("qemu+tcp://10.0.0.2/system")
    opts = LibvirtOptions()
    assert opts.storage_for("qemu:///system") == "files"
    assert opts.network_for("qemu:///system") == "user"
    assert opts.storage_for("qemu+ssh://lab1/system") == "pool"
    assert opts.network_for("qemu+ssh://lab1/system") == "nat"
    opts = LibvirtOptions(storage="pool", network="labnet")
    assert opts.storage_for("qemu:///system") == "pool"
    assert opts.network_for("qemu+ssh://lab1/system") == "labnet"


def test_libvirt_options_from_the_command_line():
    cfg = _cfg(kola_platform="libvirt", kola_libvirt_storage="pool", kola_libvirt_pool="lab",
               kola_libvirt_network="nat", kola_libvirt_uris=["qemu:///system", "qemu:///session"])
    assert options_of(cfg) == LibvirtOptions("pool", "nat", "lab",
                                             ("qemu:///system", "qemu:///session"))
    assert options_of(_cfg(kola_platform="libvirt")) == LibvirtOptions(uris=("qemu:///system",))
    with pytest.raises(ValueError, match="--libvirt-storage needs --platform libvirt"):
        _cfg(kola_libvirt_storage="pool")
    with pytest.raises(ValueError, match="--libvirt-network needs --platform libvirt"):
        _cfg(kola_libvirt_network="nat")
    with pytest.raises(ValueError, match="--libvirt-storage 'disk'"):
        _cfg(kola_platform="libvirt", kola_libvirt_storage="disk")
    with pytest.raises(ValueError, match="--libvirt-network 'a b'"):
        _cfg(kola_platform="libvirt", kola_libvirt_network="a b")


# ---- placement ----------------------------------------------------------------------------


class FakeDomain:
    def __init__(self, name: str, uri: str, max_kib: int, rss_kib: int) -> None:
        self._name, self.uri, self.max_kib, self.rss_kib = name, uri, max_kib, rss_kib

    def name(self) -> str:
        return self._name

    def XMLDesc(self, flags: int) -> str:
        meta = (f'<metadata><kolapy:placement xmlns:kolapy="https://kolapy.dev/libvirt/1" '
                f'uri="{self.uri}"/></metadata>' if self.uri else "")
        return f"<domain><name>{self._name}</name>{meta}</domain>"

    def maxMemory(self) -> int:
        return self.max_kib

    def memoryStats(self) -> dict[str, int]:
        return {"rss": self.rss_kib}


class FakeHost:
    def __init__(self, free_mib: int, domains: list[FakeDomain]) -> None:
        self.free_mib, self.domains = free_mib, domains

    def getFreeMemory(self) -> int:
        return self.free_mib * 1024 * 1024

    def listAllDomains(self, flags: int) -> list[FakeDomain]:
        return self.domains


def test_placement_counts_what_placed_domains_may_still_claim(monkeypatch):
    """Two URIs of one daemon report the same free memory; a domain just placed through
    one (2 GiB given, 512 MiB touched) makes the other the freer."""
    doms: list[FakeDomain] = []
    host = FakeHost(8000, doms)
    monkeypatch.setattr(libvirt_hosts, "connect", lambda uri: host)
    uris = ["qemu:///system", "qemu:///session"]
    assert libvirt_hosts.place(uris, 2048) == "qemu:///system"  # a tie: the first
    doms.append(FakeDomain("kolapy-r-gw0-1", "qemu:///system", 2048 * 1024, 512 * 1024))
    assert libvirt_hosts.unclaimed_mib("qemu:///system") == 1536
    assert libvirt_hosts.unclaimed_mib("qemu:///session") == 0
    assert libvirt_hosts.place(uris, 2048) == "qemu:///session"
    doms.append(FakeDomain("kolapy-r-gw1-1", "qemu:///session", 2048 * 1024, 256 * 1024))
    assert libvirt_hosts.place(uris, 2048) == "qemu:///system"  # 1536 vs 1792 unclaimed
    # other domains (not kolapy's, or without placement metadata) are the host's business
    doms.append(FakeDomain("web", "qemu:///system", 8 << 20, 0))
    doms.append(FakeDomain("kolapy-old-x", "", 8 << 20, 0))
    assert libvirt_hosts.unclaimed_mib("qemu:///system") == 1536


def test_placed_through_reads_the_metadata():
    assert placed_through(FakeDomain("d", "qemu:///session", 0, 0).XMLDesc(0)) == \
        "qemu:///session"
    assert placed_through("<domain/>") == "" and placed_through("not xml") == ""


def test_placement_lock_is_reentrant_across_calls():
    with libvirt_hosts.placement_lock():
        pass
    with libvirt_hosts.placement_lock():
        pass


# ---- pool storage -------------------------------------------------------------------------


class FakeVolume:
    def __init__(self, pool: FakePool, name: str) -> None:
        self.pool, self.name, self.data = pool, name, b""

    def path(self) -> str:
        return f"/var/lib/libvirt/images/kolapy/{self.name}"

    def upload(self, stream: FakeStream, offset: int, length: int, flags: int) -> None:
        stream.target, stream.length = self, length

    def delete(self, flags: int) -> None:
        del self.pool.volumes[self.name]


class FakePool:
    def __init__(self) -> None:
        self.volumes: dict[str, FakeVolume] = {}

    def name(self) -> str:
        return "kolapy"

    def createXML(self, xml: str, flags: int) -> FakeVolume:
        name = ET.fromstring(xml).findtext("name")
        assert name not in self.volumes
        vol = self.volumes[name] = FakeVolume(self, name)
        return vol

    def storageVolLookupByName(self, name: str) -> FakeVolume:
        if name not in self.volumes:
            raise _err(libvirt.VIR_ERR_NO_STORAGE_VOL)
        return self.volumes[name]


class FakeStream:
    def __init__(self, fail: bool) -> None:
        self.target: FakeVolume | None = None
        self.length, self.fail = 0, fail

    def send(self, data: bytes) -> int:
        if self.fail:
            raise _err(libvirt.VIR_ERR_INTERNAL_ERROR, "connection lost")
        assert self.target is not None
        self.target.data += data
        return len(data)

    def finish(self) -> None:
        assert self.target is not None and len(self.target.data) == self.length


class FakeConn:
    def __init__(self, pool: FakePool, fail: bool = False) -> None:
        self.pool, self.fail = pool, fail

    def newStream(self, flags: int) -> FakeStream:
        return FakeStream(self.fail)

    def storagePoolLookupByName(self, name: str) -> FakePool:
        return self.pool


@pytest.fixture
def pool(monkeypatch) -> FakePool:
    p = FakePool()
    monkeypatch.setattr(libvirt_hosts, "connect", lambda uri: FakeConn(p))
    return p


def test_base_image_uploaded_once_by_content_then_reused(tmp_path: Path, pool: FakePool,
                                                         monkeypatch):
    monkeypatch.setattr(libvirt_storage, "_check_standalone", lambda image: None)
    image = tmp_path / "img.qcow2"
    image.write_bytes(b"QFI\xfb" + bytes(range(256)) * 40000)
    digest = hashlib.sha256(image.read_bytes()).hexdigest()
    path = libvirt_storage.base_volume("u", pool, image, "qcow2")
    name = f"base-{digest[:24]}.qcow2"
    assert path.endswith("/" + name) and pool.volumes[name].data == image.read_bytes()
    assert libvirt_hosts.live_names() == []  # the cache's: not deleted with the run
    copy = tmp_path / "same.qcow2"  # the same content elsewhere: the same volume
    copy.write_bytes(image.read_bytes())
    assert libvirt_storage.base_volume("u", pool, copy, "qcow2") == path
    assert list(pool.volumes) == [name]


def test_run_volumes_are_registered_and_deleted(tmp_path: Path, pool: FakePool):
    f = tmp_path / "config.ign"
    f.write_text("{}")
    path = libvirt_storage.upload("u", pool, f, "kolapy-r-gw-1-config.ign")
    assert path.endswith("kolapy-r-gw-1-config.ign") and pool.volumes
    assert libvirt_hosts.live_names() == ["kolapy/kolapy-r-gw-1-config.ign"]
    libvirt_hosts.destroy_all()
    assert pool.volumes == {} and libvirt_hosts.live_names() == []


def test_a_failed_upload_leaves_no_volume(tmp_path: Path, monkeypatch):
    from kolapy.errors import BootError

    p = FakePool()
    monkeypatch.setattr(libvirt_hosts, "connect", lambda uri: FakeConn(p, fail=True))
    f = tmp_path / "disk0.qcow2"
    f.write_bytes(b"x" * 100)
    with pytest.raises(BootError, match=r"uploading .*disk0\.qcow2 to kolapy/kolapy-r-d0"):
        libvirt_storage.upload("u", p, f, "kolapy-r-d0")
    assert p.volumes == {} and libvirt_hosts.live_names() == []


def test_destroy_all_order_domains_volumes_networks(monkeypatch):
    order: list[str] = []

    class Obj:
        def __init__(self, name: str) -> None:
            self.name = name

        def destroy(self) -> None:
            order.append(self.name)

        def delete(self, flags: int) -> None:
            order.append(self.name)

    libvirt_hosts.register("u", "network", "n", Obj("n"))
    libvirt_hosts.register("u", "volume", "kolapy/v", Obj("v"))
    libvirt_hosts.register("u", "domain", "d", Obj("d"))
    assert libvirt_hosts.destroy_all() == 3
    assert order == ["d", "v", "n"]


def test_pool_and_volume_xml():
    pool = ET.fromstring(libvirt_storage.pool_xml("kolapy", "/var/lib/libvirt/images/kolapy"))
    assert pool.get("type") == "dir" and pool.findtext("target/path").endswith("/kolapy")
    vol = ET.fromstring(libvirt_storage.volume_xml("kolapy-r-m-disk0.qcow2", 1234))
    assert vol.findtext("capacity") == "1234" and vol.findtext("allocation") == "0"
    assert libvirt_storage.base_volume_name("ab" * 32, "raw") == "base-" + "ab" * 12 + ".raw"


def test_an_image_with_a_backing_file_cannot_be_a_base(tmp_path: Path):
    import shutil
    import subprocess

    from kolapy.errors import BootError

    if shutil.which("qemu-img") is None:
        pytest.skip("qemu-img is not installed")
    base, top = tmp_path / "base.qcow2", tmp_path / "top.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(base), "1M"], check=True)
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-b", str(base), "-F", "qcow2",
                    str(top)], check=True)
    libvirt_storage._check_standalone(base)
    with pytest.raises(BootError, match="has a backing file"):
        libvirt_storage._check_standalone(top)
    # rebase_overlay points the overlay at the base volume's path on the host
    libvirt_storage.rebase_overlay("qemu-img", top, "/pool/base-x.qcow2", "qcow2")
    info = subprocess.run(["qemu-img", "info", "-U", str(top)], capture_output=True,
                          text=True, check=True).stdout
    assert "backing file: /pool/base-x.qcow2" in info


# ---- NAT network and leases ---------------------------------------------------------------


def test_newest_lease_wins():
    leases = [{"type": 0, "ipaddr": "10.231.7.10", "expirytime": 100, "mac": "m"},
              {"type": 0, "ipaddr": "10.231.7.11", "expirytime": 160, "mac": "m"},
              {"type": 1, "ipaddr": "fd00::5", "expirytime": 999, "mac": "m"}]
    assert newest_lease(leases) == "10.231.7.11"
    assert newest_lease([]) == ""


def test_network_nics_of_a_live_domain():
    xml = """<domain><devices>
      <interface type='network'><source network='kolapy-r-gw-nat'/>
        <mac address='52:54:00:AA:bb:01'/></interface>
      <interface type='network'><source network='kolapy-r-gw-net1'/>
        <mac address='52:54:00:00:01:00'/></interface>
    </devices></domain>"""
    assert network_nics(xml) == [("kolapy-r-gw-nat", "52:54:00:aa:bb:01"),
                                 ("kolapy-r-gw-net1", "52:54:00:00:01:00")]


def test_run_network_tries_the_next_range_when_one_is_in_use(monkeypatch):
    made: list[str] = []

    class Net:
        def destroy(self) -> None:
            made.append("destroyed")

    class Conn:
        def networkCreateXML(self, xml: str) -> Any:
            address = ET.fromstring(xml).find("ip").get("address")
            if not made:
                made.append(address)
                raise _err(libvirt.VIR_ERR_INTERNAL_ERROR,
                           "Network is already in use by interface virbr0")
            made.append(address)
            return Net()

    monkeypatch.setattr(libvirt_hosts, "connect", lambda uri: Conn())
    monkeypatch.setattr(libvirt_net, "_made", {})
    name = libvirt_net.run_network("u")
    assert name.endswith("-nat") and name.startswith(f"kolapy-{libvirt_hosts.RUN_ID}-")
    assert made[0] != made[1]  # the second range
    assert libvirt_net.run_network("u") == name  # one per worker and host
    assert libvirt_hosts.live_names() == [name]
    libvirt_hosts.destroy_all()
    assert made[-1] == "destroyed"


def test_machine_uploads_every_file_its_domain_reads(tmp_path: Path, monkeypatch):
    """Pool storage: the overlay (rebased onto the base volume), the extra disks, the
    Ignition config and the UEFI vars become kolapy-<run>-<machine>-* volumes."""
    from types import SimpleNamespace

    from kolapy.enums import Accel
    from kolapy.machine import libvirt as lvm
    from kolapy.machine.spec import DiskSpec, MachineSpec
    from kolapy.transport.ssh import SSHKeyPair

    uploads: list[tuple[str, str]] = []
    rebased: list[str] = []
    p = FakePool()
    monkeypatch.setattr(lvm, "ensure_pool", lambda uri, name: p)
    monkeypatch.setattr(lvm, "base_volume", lambda uri, pool, image, fmt: "/pool/base-x.qcow2")
    monkeypatch.setattr(lvm, "rebase_overlay", lambda q, ov, base, fmt: rebased.append(base))
    monkeypatch.setattr(lvm, "upload", lambda uri, pool, local, vol: (
        uploads.append((local.name, vol)) or f"/pool/{vol}"))
    m = lvm.LibvirtMachine(
        MachineSpec(image=Path("/img.qcow2"), name="gw-1", additional_disks=(DiskSpec(1),)),
        workdir=tmp_path / "m", ssh_key=SSHKeyPair.generate(tmp_path / "ssh"), accel=Accel.TCG,
        uri="qemu+ssh://lab1/system", options=LibvirtOptions(uris=("qemu+ssh://lab1/system",)))
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "uefi-vars.fd").write_bytes(b"v")
    m._upload(SimpleNamespace(image_format="qcow2"))
    d = m.domain_name
    assert rebased == ["/pool/base-x.qcow2"]
    assert uploads == [("disk0.qcow2", f"{d}-disk0.qcow2"), ("disk1.qcow2", f"{d}-disk1.qcow2"),
                       ("config.ign", f"{d}-config.ign"), ("uefi-vars.fd", f"{d}-vars.fd")]
    assert m.volumes[m.paths.overlay] == f"/pool/{d}-disk0.qcow2"
    assert m._volume_keys == [f"kolapy/{vol}" for _, vol in uploads]
