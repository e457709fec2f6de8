"""Host services without a VM: guest-forward options, attaching, the HTTP server, the registry."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from kolapy.errors import BadInputError, InfraError
from kolapy.hostsvc import GUEST_PORTS, HttpService, RegistryService, attach, detach, forward
from kolapy.hostsvc.registry import unix_get

needs_socat = pytest.mark.skipif(shutil.which("socat") is None, reason="host has no socat")


@dataclass
class _Paths:
    sockdir: Path


@dataclass
class FakeMachine:
    """What attach() reads of a machine: its socket dir and QEMU argv."""

    sockdir: Path
    name: str = "fake-1"
    argv: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.paths = _Paths(self.sockdir)
        if not self.argv:
            self.argv = ["qemu", "-nic", "user" + forward.guestfwd_options(self.sockdir)]


@dataclass
class FakeService:
    socket_path: Path


def _relay(link: Path, request: bytes) -> bytes:
    """Do what QEMU does for a guest connection: run the forward's command, talk over stdio."""
    opts = forward.guestfwd_options(link.parent)
    port = int(link.stem.split("-")[1])
    cmd = next(o for o in opts.split(",guestfwd=") if f":{port}-cmd:" in o).split("-cmd:", 1)[1]
    r = subprocess.run(shlex.split(cmd.replace(",,", ",")), input=request,
                       capture_output=True, timeout=30)
    return r.stdout


@needs_socat
def test_every_port_forwards_to_its_link(tmp_path: Path) -> None:
    opts = forward.guestfwd_options(tmp_path)
    for port in GUEST_PORTS:
        assert f",guestfwd=tcp:10.0.2.100:{port}-cmd:" in opts
        assert f"UNIX-CONNECT:{tmp_path}/svc-{port}.sock" in opts
    assert opts.count("guestfwd=") == len(GUEST_PORTS)


@needs_socat
def test_commas_in_paths_are_escaped_for_qemu(tmp_path: Path) -> None:
    odd = tmp_path / "a,b"
    assert "UNIX-CONNECT:" + str(odd).replace(",", ",,") in forward.guestfwd_options(odd)


def test_no_relay_no_forwards(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(forward.shutil, "which", lambda name: None)
    assert forward.guestfwd_options(tmp_path) == ""
    m = FakeMachine(tmp_path, argv=["qemu"])
    with pytest.raises(InfraError, match="socat"):
        attach(m, FakeService(tmp_path / "x.sock"), 8080)


@needs_socat
def test_attach_links_and_replaces(tmp_path: Path) -> None:
    m = FakeMachine(tmp_path)
    one, two = FakeService(tmp_path / "one.sock"), FakeService(tmp_path / "two.sock")
    assert attach(m, one, 8080) == "10.0.2.100:8080"
    link = tmp_path / "svc-8080.sock"
    assert os.readlink(link) == str(one.socket_path)
    attach(m, two, 8080)
    assert os.readlink(link) == str(two.socket_path)
    detach(m, 8080, one)  # not the attached one: left alone
    assert link.is_symlink()
    detach(m, 8080, two)
    assert not link.is_symlink()


def test_attach_rejects_unknown_port(tmp_path: Path) -> None:
    with pytest.raises(BadInputError, match="guest port 9999"):
        attach(FakeMachine(tmp_path), FakeService(tmp_path / "s"), 9999)


def test_http_serves_read_only_and_logs(tmp_path: Path) -> None:
    www = tmp_path / "www"
    (www / "sub").mkdir(parents=True)
    (www / "sub" / "f.txt").write_text("payload\n")
    log = tmp_path / "logs" / "http.log"
    with HttpService(www, log) as srv:
        assert unix_get(srv.socket_path, "/sub/f.txt") == (200, b"payload\n")
        assert unix_get(srv.socket_path, "/missing")[0] == 404
        assert unix_get(srv.socket_path, "/sub/")[0] == 403  # no listings
        sockdir = srv.socket_path.parent
    assert not sockdir.exists()
    lines = log.read_text().splitlines()
    assert any('"GET /sub/f.txt HTTP/1.1" 200' in line for line in lines), lines
    assert any('"GET /missing HTTP/1.1" 404' in line for line in lines), lines


def test_http_refuses_writes(tmp_path: Path) -> None:
    import http.client
    import socket

    with HttpService(tmp_path, tmp_path / "log") as srv:
        sock = socket.socket(socket.AF_UNIX)
        sock.connect(str(srv.socket_path))
        conn = http.client.HTTPConnection("localhost")
        conn.sock = sock
        for method in ("PUT", "POST", "DELETE"):
            conn.request(method, "/new.txt")
            assert conn.getresponse().status == 501, method
            conn.close()
            sock = socket.socket(socket.AF_UNIX)
            sock.connect(str(srv.socket_path))
            conn.sock = sock
        conn.close()
    assert not (tmp_path / "new.txt").exists()


def test_http_needs_a_directory(tmp_path: Path) -> None:
    with pytest.raises(BadInputError, match="not a directory"):
        HttpService(tmp_path / "nope", tmp_path / "log").start()


@needs_socat
def test_relay_command_reaches_the_attached_service(tmp_path: Path) -> None:
    (tmp_path / "www").mkdir()
    (tmp_path / "www" / "hello").write_text("hi\n")
    m = FakeMachine(tmp_path / "sock")
    (tmp_path / "sock").mkdir()
    with HttpService(tmp_path / "www", tmp_path / "log") as srv:
        attach(m, srv, 8081)
        reply = _relay(tmp_path / "sock" / "svc-8081.sock",
                       b"GET /hello HTTP/1.0\r\nHost: 10.0.2.100\r\n\r\n")
    assert reply.startswith(b"HTTP/1.1 200") and reply.endswith(b"hi\n"), reply
    # Nothing attached: the relay ends at once with nothing to say.
    assert _relay(tmp_path / "sock" / "svc-5000.sock", b"GET / HTTP/1.0\r\n\r\n") == b""


@pytest.mark.skipif(shutil.which("docker-registry") is None, reason="host has no docker-registry")
def test_registry_starts_answers_and_stops(tmp_path: Path) -> None:
    reg = RegistryService(tmp_path / "registry.log").start()
    try:
        pid = reg.pid
        assert pid is not None
        assert unix_get(reg.socket_path, "/v2/")[0] == 200
        assert reg.catalog() == []
        storage = reg.socket_path.parent
    finally:
        reg.close()
    assert not storage.exists()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    assert "listening on" in (tmp_path / "registry.log").read_text()


def test_registry_missing_binary_is_bad_input(monkeypatch: pytest.MonkeyPatch,
                                              tmp_path: Path) -> None:
    import kolapy.hostsvc.registry as registry

    monkeypatch.setattr(registry.shutil, "which", lambda name: None)
    with pytest.raises(BadInputError, match="docker-registry"):
        RegistryService(tmp_path / "log").start()
