"""kola test ``basic``: the checks every image must pass, on ONE shared machine.

Mirrors kola's coretest ``basic`` (coreos-assembler mantle/kola/tests/coretest):
each check is a subtest (``basic/<check>``) with its own report entry.
"""

from __future__ import annotations

import re
import socket

from kolapy import Machine, kola

#: Root must grow to fill this disk (GiB) on first boot.
DISK_GIB = 8

pytestmark = kola(
    name="basic",
    description="SSH, D-Bus, services, read-only /usr, useradd, machine-id, root growth",
    tags=("basic",),
    min_disk=DISK_GIB,
)


def test_ssh_port(machine: Machine) -> None:
    """The SSH port answers with an SSH banner."""
    with socket.create_connection((machine.ssh_host, machine.ssh_port), timeout=30) as sock:
        sock.settimeout(30)
        banner = sock.recv(64)
    assert banner.startswith(b"SSH-2.0-"), f"unexpected SSH banner {banner!r}"


def test_dbus_perms(machine: Machine) -> None:
    """An unprivileged user reaches the system bus but may not manage units."""
    names = machine.succeed(
        "busctl --system call org.freedesktop.DBus /org/freedesktop/DBus "
        "org.freedesktop.DBus ListNames"
    )
    assert "org.freedesktop.systemd1" in names
    denied = machine.run(
        "busctl --system call org.freedesktop.systemd1 "
        "/org/freedesktop/systemd1 org.freedesktop.systemd1.Manager "
        "RestartUnit ss sshd.service replace"
    )
    assert denied.failed, "an unprivileged user restarted sshd over D-Bus"
    assert re.search(r"Access denied|[Aa]uthentication|not authorized|Permission", denied.stderr), (
        denied.stderr
    )


def test_services_active(machine: Machine) -> None:
    """multi-user.target is reached and no unit failed."""
    machine.succeed("systemctl is-active multi-user.target")
    failed = machine.succeed("systemctl list-units --state=failed --no-legend --plain")
    assert failed.strip() == "", f"failed units:\n{failed}"
    state = machine.run("systemctl is-system-running").stdout.strip()
    assert state == "running", f"system state is {state!r}"


def test_read_only_usr(machine: Machine) -> None:
    """/usr is mounted read-only (ostree) and writing there fails."""
    options = machine.succeed("findmnt -n -o OPTIONS --target /usr").strip().split(",")
    assert "ro" in options, f"/usr mount options: {options}"
    machine.fail("sudo -n touch /usr/.kolapy-write-test")


def test_useradd(machine: Machine) -> None:
    """A new user can be created (writable /etc and /var/home)."""
    machine.succeed("sudo -n useradd -m kolapy-user")
    uid = machine.succeed("id -u kolapy-user").strip()
    assert uid.isdigit() and int(uid) >= 1000
    machine.succeed("sudo -n test -d ~kolapy-user")
    machine.succeed("sudo -n userdel -r kolapy-user")


def test_machine_id(machine: Machine) -> None:
    """machine-id is set, well formed and not a leftover of the image build."""
    mid = machine.succeed("cat /etc/machine-id").strip()
    assert re.fullmatch(r"[0-9a-f]{32}", mid), f"machine-id is {mid!r}"
    machine.succeed("systemd-machine-id-setup --print")  # systemd agrees it is initialised


def test_root_grows(machine: Machine) -> None:
    """The root filesystem grew to (nearly) fill the disk."""
    root_dev = machine.succeed("findmnt -n -o SOURCE --target /sysroot").strip()
    fs_bytes = int(machine.succeed("df --output=size -B1 /sysroot | tail -1").strip())
    disk = machine.succeed(f"lsblk -n -d -b -o SIZE /dev/$(lsblk -n -o PKNAME {root_dev})")
    disk_bytes = int(disk.strip())
    assert disk_bytes >= DISK_GIB * 2**30 * 0.99, f"disk is only {disk_bytes} bytes"
    assert fs_bytes >= 0.85 * disk_bytes, (
        f"root filesystem {fs_bytes} bytes did not grow to the {disk_bytes}-byte disk"
    )
