"""Engine checks besides the workflow: base, volumes, networks, rootless, registry.

Each function is one kola test's body, written once for every engine that has the
feature (see :class:`kolapy.containers.engines.Engine`).
"""

from __future__ import annotations

import secrets
import shlex
from typing import Any

from kolapy.containers.engines import OVERLAY_DRIVERS, Engine
from kolapy.containers.guest import EngineOnGuest, http_get
from kolapy.machine.base import Machine

NETWORK_PORTS = {"podman": 18090, "docker": 18091}
# busybox 1.35's `wget -T` crashes (SIGSEGV): bound the request with `timeout` instead.
_WGET = ("timeout", "15", "wget", "-q", "-O", "-")


def _sh(eg: EngineOnGuest, *args: str) -> str:
    return " ".join(shlex.quote(a) for a in eg.argv(*args))


def check_base(machine: Machine, engine: Engine) -> None:
    """``info`` answers; storage is overlay where the kernel has it; cgroups agree; unit active."""
    eg = EngineOnGuest(machine, engine)
    if engine.daemon_unit:
        units = [u for u in (engine.daemon_unit, engine.socket_unit) if u]
        states = {u: machine.run(["systemctl", "is-active", u], timeout=30).stdout.strip()
                  for u in units}
        assert "active" in states.values(), f"{engine.name}: no unit active: {states}"
    info = eg.ok("info", timeout=180, why="info")
    driver = engine.storage_driver(info)
    assert driver, f"`{engine.binary} info` names no storage driver:\n{info}"
    kernel_overlay = machine.run(
        "grep -qw overlay /proc/filesystems || modprobe -n overlay 2>/dev/null "
        "|| test -d /sys/module/overlay", timeout=30).succeeded
    if kernel_overlay:
        assert driver in OVERLAY_DRIVERS, (
            f"the kernel has overlayfs but {engine.name} uses storage driver {driver!r}")
    else:
        assert driver not in OVERLAY_DRIVERS, f"{driver!r} without overlayfs in the kernel"
    cg_driver = engine.cgroup_driver(info)
    assert cg_driver in ("systemd", "cgroupfs"), (
        f"`{engine.binary} info` cgroup driver {cg_driver!r}:\n{info}")
    host_v2 = machine.run(["test", "-e", "/sys/fs/cgroup/cgroup.controllers"], timeout=30)
    host_version = 2 if host_v2.succeeded else 1
    reported = engine.cgroup_version(info)
    if reported is not None:
        assert reported == host_version, (
            f"{engine.name} reports cgroup v{reported}, the host runs cgroup v{host_version}")


def selinux_enforcing(machine: Machine) -> bool:
    """Whether SELinux is enforcing on the guest (bind mounts then need ``:z``)."""
    r = machine.run("cat /sys/fs/selinux/enforce 2>/dev/null", timeout=30)
    return r.stdout.strip() == "1"


def check_volume(machine: Machine, engine: Engine) -> None:
    """A named volume outlives its container; a host bind mount is read and written."""
    eg = EngineOnGuest(machine, engine)
    image = eg.load_image()
    volume = f"kolapy-vol-{engine.name}"
    token = secrets.token_hex(8)
    host_dir = f"/var/tmp/kolapy-bind-{engine.name}"
    suffix = ":z" if selinux_enforcing(machine) else ""
    eg.run("volume", "rm", "-f", volume)
    try:
        eg.ok("volume", "create", volume, why="volume create")
        eg.ok("run", "--rm", "-v", f"{volume}:/data", image, "sh", "-c",
              f"echo {token} > /data/kept", why="write into the named volume")
        listed = eg.ok("volume", "ls")
        assert volume in listed, f"`volume ls` lacks {volume} after its container left:\n{listed}"
        back = eg.ok("run", "--rm", "-v", f"{volume}:/data", image, "cat", "/data/kept",
                     why="read the named volume from a new container").strip()
        assert back == token, f"volume {volume} held {back!r}, expected {token!r}"

        machine.succeed(f"sudo -n rm -rf {host_dir} && sudo -n mkdir -p {host_dir} && "
                        f"echo from-host-{token} | sudo -n tee {host_dir}/in >/dev/null",
                        timeout=30)
        seen = eg.ok("run", "--rm", "-v", f"{host_dir}:/mnt{suffix}", image, "sh", "-c",
                     f"cat /mnt/in && echo from-container-{token} > /mnt/out",
                     why="bind mount read + write").strip()
        assert seen == f"from-host-{token}", f"container read {seen!r} from the bind mount"
        written = machine.succeed(["sudo", "-n", "cat", f"{host_dir}/out"], timeout=30).strip()
        assert written == f"from-container-{token}", f"host sees {written!r} in the bind mount"
    finally:
        eg.run("volume", "rm", "-f", volume)
        machine.run(f"sudo -n rm -rf {host_dir}", timeout=30)


def _network_backend(eg: EngineOnGuest) -> str:
    if eg.engine.name != "podman":
        return eg.engine.name
    return eg.ok("info", "--format", "{{.Host.NetworkBackend}}").strip() or "cni"


def check_network(machine: Machine, engine: Engine) -> dict[str, Any]:
    """Two containers on a user bridge network talk; a port is published where asked.

    Returns what was observed (for the test's log): the backend, addresses, and whether
    containers reached each other by name.  Reaching by name is required where the
    engine provides DNS on user networks (docker; podman with netavark).
    """
    eg = EngineOnGuest(machine, engine)
    image = eg.load_image()
    net = f"kolapy-net-{engine.name}"
    server, client = f"{net}-server", f"{net}-client"
    port = NETWORK_PORTS[engine.name]
    token = secrets.token_hex(8)
    eg.remove_containers([server, client])
    eg.run("network", "rm", net)
    try:
        eg.ok("network", "create", net, why="network create")
        eg.ok("run", "-d", "--name", server, "--network", net, "-p", f"127.0.0.1:{port}:80",
              image, "sh", "-c", f"echo {token} > /www/net.txt; exec httpd -f -p 80 -h /www",
              why="server on the bridge network")
        address = eg.inspect(f'{{{{(index .NetworkSettings.Networks "{net}").IPAddress}}}}',
                             server)
        assert address.count(".") == 3, f"{server} has no IPv4 address on {net}: {address!r}"
        eg.ok("run", "-d", "--name", client, "--network", net, image, "sleep", "100000",
              why="client on the bridge network")
        got = eg.shell_ok(
            f"for i in $(seq 10); do {_sh(eg, 'exec', client, *_WGET, f'http://{address}/net.txt')}"
            " && exit 0; sleep 2; done; exit 1", timeout=180,
            why=f"client -> server by address {address}").strip()
        assert got == token, f"client fetched {got!r} from {address}, expected {token!r}"
        backend = _network_backend(eg)
        by_name = eg.run("exec", client, *_WGET, f"http://{server}/net.txt", timeout=60)
        if backend in ("docker", "netavark"):
            assert by_name.succeeded and by_name.stdout.strip() == token, (
                f"{engine.name} ({backend}) did not resolve {server} on {net}: "
                f"rc {by_name.rc} {by_name.stderr.strip()}")
        mapping = eg.ok("port", server).strip()
        assert f"127.0.0.1:{port}" in mapping, f"`port {server}` says {mapping!r}"
        # the local-address column only (the peer column reads 0.0.0.0:* for any listener)
        locals_ = machine.succeed(f"ss -Htln 'sport = :{port}' | awk '{{print $4}}'",
                                  timeout=30).split()
        assert all(a == f"127.0.0.1:{port}" for a in locals_), (
            f"port {port} asked on 127.0.0.1 is bound on {locals_}")
        guest_ip = machine.succeed(
            "ip -4 -o route get 10.0.2.2 | sed -n 's/.* src \\([0-9.]*\\).*/\\1/p'",
            timeout=30).strip()
        assert guest_ip.count(".") == 3, f"no primary guest address: {guest_ip!r}"
        wide = machine.run(http_get(f"http://{guest_ip}:{port}/net.txt"), timeout=60)
        assert wide.failed, f"port {port} asked on 127.0.0.1 answers on {guest_ip} too"
        fetched = machine.wait_until_succeeds(http_get(f"http://127.0.0.1:{port}/net.txt"),
                                              timeout=60).strip()
        assert fetched == token, f"published port {port} returned {fetched!r}"
        return {"backend": backend, "address": address, "by_name": by_name.succeeded}
    finally:
        eg.remove_containers([server, client])
        eg.run("network", "rm", net)


def check_rootless(machine: Machine, engine: Engine) -> None:
    """The SSH user runs a container without root, mapped through its subuid range."""
    user = machine.succeed("id -un", timeout=30).strip()
    uid = machine.succeed("id -u", timeout=30).strip()
    assert uid != "0", "the SSH user is root: nothing rootless to test"
    for db in ("/etc/subuid", "/etc/subgid"):
        entry = machine.run(["grep", f"^{user}:", db], timeout=30)
        assert entry.succeeded, f"{db} has no range for {user}: rootless containers need one"
    eg = EngineOnGuest(machine, engine, rootless=True)
    image = eg.load_image()
    inside = eg.ok("run", "--rm", image, "id", "-u", why="rootless run").strip()
    assert inside == "0", f"rootless container runs as uid {inside!r} inside, expected 0"
    uid_map = eg.ok("unshare", "cat", "/proc/self/uid_map", why="rootless uid map")
    rows = [line.split() for line in uid_map.strip().splitlines()]
    assert ["0", uid, "1"] in rows, f"uid 0 is not mapped to {user} ({uid}):\n{uid_map}"
    assert any(r[0] == "1" and int(r[2]) >= 65536 for r in rows), (
        f"no subordinate uid range mapped:\n{uid_map}")


def check_registry(machine: Machine, engine: Engine, address: str) -> None:
    """Push the test image to the host registry at ``address``, remove it, pull it back."""
    eg = EngineOnGuest(machine, engine)
    image = eg.load_image()
    remote = f"{address}/kolapy/busybox:{engine.name}-{secrets.token_hex(4)}"
    try:
        eg.ok("tag", image, remote, why="tag for the registry")
        eg.ok("push", remote, timeout=300, why=f"push to {address}")
        eg.ok("rmi", remote, why="drop the local copy")
        assert not eg.has_image(remote), f"{remote} still local after rmi"
        eg.ok("pull", remote, timeout=300, why=f"pull from {address}")
        out = eg.ok("run", "--rm", remote, "echo", "pulled-ok", why="run the pulled image")
        assert out.strip() == "pulled-ok", f"pulled image printed {out!r}"
    finally:
        eg.run("rmi", "-f", remote)
