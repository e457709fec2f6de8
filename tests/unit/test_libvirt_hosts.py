"""--platform libvirt without a daemon: options, placement, unreachable URIs (exit 2)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from kolapy.config import RunConfig
from kolapy.errors import BadInputError
from kolapy.machine import libvirt_hosts
from kolapy.machine.libvirt_hosts import HostInfo, choose, uris_of

BAD_URI = "qemu+tcp://127.0.0.1:1/system"  # nothing listens on port 1


def _cfg(**opts: object) -> RunConfig:
    return RunConfig.from_options(lambda dest, default: opts.get(dest, default))


def test_platform_options():
    assert _cfg().platform == "qemu"
    cfg = _cfg(kola_platform="libvirt")
    assert uris_of(cfg) == ("qemu:///system",)
    cfg = _cfg(kola_platform="libvirt", kola_libvirt_uris=["qemu:///session", "qemu:///system"])
    assert uris_of(cfg) == ("qemu:///session", "qemu:///system")
    with pytest.raises(ValueError, match="--libvirt-uri needs --platform libvirt"):
        _cfg(kola_libvirt_uris=["qemu:///system"])
    with pytest.raises(ValueError, match="unknown platform 'xen'"):
        _cfg(kola_platform="xen")


def test_placement_prefers_most_free_memory_that_fits():
    a, b, c = HostInfo("a", 3000), HostInfo("b", 9000), HostInfo("c", 5000)
    assert choose([a, b, c], 2048) == "b"
    assert choose([a, c], 2048) == "c"
    # only a host that can hold it counts ... unless none can: the freest all the same
    assert choose([HostInfo("x", 1000), HostInfo("y", 4000)], 4096) == "y"
    assert choose([HostInfo("x", 5000), HostInfo("y", 5000)], 1024) == "x"  # ties: first
    with pytest.raises(ValueError):
        choose([], 1)


def test_place_asks_every_host(monkeypatch):
    free = {"qemu:///system": 4000, "qemu:///session": 8000}
    monkeypatch.setattr(libvirt_hosts, "free_mib", lambda uri: free[uri])
    assert libvirt_hosts.place(list(free), 2048) == "qemu:///session"
    free["qemu:///system"] = 16000
    assert libvirt_hosts.place(list(free), 2048) == "qemu:///system"
    # one cluster of two 2 GiB members: 4 GiB on one host
    free.update({"qemu:///system": 3000, "qemu:///session": 4500})
    assert libvirt_hosts.place(list(free), 2 * 2048) == "qemu:///session"


def test_unreachable_uri_is_bad_input_naming_it():
    pytest.importorskip("libvirt")  # libvirt-python (setup.sh installs it)
    with pytest.raises(BadInputError, match=r"cannot reach libvirt at qemu\+tcp://127\.0\.0\.1:1"):
        libvirt_hosts.check_uris([BAD_URI])


@pytest.mark.parametrize("verb", ["run", "spawn"])
def test_cli_unreachable_uri_exits_2_before_any_boot(verb: str, tmp_path: Path):
    pytest.importorskip("libvirt")
    args = [verb, "--platform", "libvirt", "--libvirt-uri", BAD_URI,
            "--nestos-image", str(tmp_path / "none.qcow2")]
    r = subprocess.run([sys.executable, "-m", "kolapy.cli", *args], capture_output=True,
                       text=True, timeout=60, cwd=tmp_path)
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert r.returncode == 2, r.stderr
    # The URI is checked before the image (which does not exist either) and any boot.
    assert len(lines) == 1 and lines[0].startswith("kolapy: error: cannot reach libvirt at "
                                                   + BAD_URI), r.stderr
    assert "Traceback" not in r.stderr


def test_kola_platform_alias_accepts_libvirt():
    from kolapy.kola_aliases import translate

    assert translate(["run", "-p", "libvirt", "basic"]) == ["run", "--platform=libvirt", "basic"]


def test_a_name_registered_before_its_create_returned_is_destroyed(monkeypatch):
    libvirt = pytest.importorskip("libvirt")
    destroyed: list[str] = []

    class Obj:
        def __init__(self, name: str) -> None:
            self.name = name

        def destroy(self) -> None:
            destroyed.append(self.name)

    class Conn:
        def lookupByName(self, name: str) -> Obj:
            if name == "kolapy-t-gone":
                err = libvirt.libvirtError("no domain")
                err.err = (libvirt.VIR_ERR_NO_DOMAIN, 0, "", 0, "", None, None, 0, 0)
                raise err
            return Obj(name)

        def networkLookupByName(self, name: str) -> Obj:
            return Obj(name)

    monkeypatch.setattr(libvirt_hosts, "connect", lambda uri: Conn())
    libvirt_hosts.register("u", "network", "kolapy-t-net1")
    libvirt_hosts.register("u", "domain", "kolapy-t-gw-1")  # create interrupted
    libvirt_hosts.register("u", "domain", "kolapy-t-gw-2", Obj("kolapy-t-gw-2"))
    libvirt_hosts.register("u", "domain", "kolapy-t-gone")  # never created
    libvirt_hosts.register("u", "domain", "kolapy-t-failed")
    libvirt_hosts.forget("u", "domain", "kolapy-t-failed")  # its create call failed
    assert libvirt_hosts.destroy_all() == 4
    assert destroyed == ["kolapy-t-gw-1", "kolapy-t-gw-2", "kolapy-t-net1"]  # domains first
    assert libvirt_hosts.live_names() == []
    libvirt_hosts.destroy("u", "domain", "kolapy-t-gw-1")  # idempotent


def test_machine_fails_fast_when_its_domain_is_gone(tmp_path: Path, monkeypatch):
    libvirt = pytest.importorskip("libvirt")
    from kolapy.enums import Accel
    from kolapy.errors import BootError
    from kolapy.machine.libvirt import LibvirtMachine
    from kolapy.machine.spec import MachineSpec
    from kolapy.transport.ssh import SSHKeyPair

    class GoneDomain:
        def isActive(self) -> int:
            err = libvirt.libvirtError("no domain")
            err.err = (libvirt.VIR_ERR_NO_DOMAIN, 0, "", 0, "", None, None, 0, 0)
            raise err

    m = LibvirtMachine(MachineSpec(image=Path("/none.qcow2"), name="m1"), workdir=tmp_path / "m",
                       ssh_key=SSHKeyPair.generate(tmp_path / "ssh"), accel=Accel.TCG,
                       uri="qemu:///session")
    assert m.domain_name == f"kolapy-{libvirt_hosts.RUN_ID}-m1"
    assert m.profile.name == "libvirt-x86_64"
    assert m.virsh_console() == f"virsh -c qemu:///session console {m.domain_name}"
    with pytest.raises(BootError, match="not started"):
        m.check_alive()
    m._dom = GoneDomain()
    assert not m.is_running()
    with pytest.raises(BootError, match=rf"domain {m.domain_name} on qemu:///session is gone"):
        m.check_alive()


class _Net:
    def __init__(self, active: bool) -> None:
        self.active = active

    def isActive(self) -> int:
        return int(self.active)


class _Conn:
    """A connection that holds the networks it is given (name -> active)."""

    def __init__(self, nets: dict[str, bool]) -> None:
        self.nets = nets

    def networkLookupByName(self, name: str) -> _Net:
        import libvirt

        if name not in self.nets:
            raise libvirt.libvirtError(f"Network not found: no network with matching name '{name}'")
        return _Net(self.nets[name])


def test_named_network_must_exist_and_be_active(monkeypatch):
    pytest.importorskip("libvirt")
    conns = {"qemu:///system": _Conn({"lab": True, "idle": False}),
             "qemu:///session": _Conn({})}
    monkeypatch.setattr(libvirt_hosts, "connect", lambda uri: conns[uri])
    libvirt_hosts.check_uris(["qemu:///system"], "lab")
    for keyword in ("auto", "user", "nat"):  # kolapy's own choices: nothing to look up
        libvirt_hosts.check_uris(list(conns), keyword)
    with pytest.raises(BadInputError, match=r"'idle' on qemu:///system is not active"):
        libvirt_hosts.check_uris(["qemu:///system"], "idle")
    with pytest.raises(BadInputError, match=r"'lab': no such network on qemu:///session"):
        libvirt_hosts.check_uris(list(conns), "lab")
