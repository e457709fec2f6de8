"""A private Ethernet segment for the machines of one test (kola's ClusterSize > 1).

Each member gets a second NIC whose QEMU backend is a unix *datagram* socket
(``-netdev dgram``): every datagram is one Ethernet frame.  The frames go to a
tiny hub running in a thread of the harness, which repeats each frame to every
other member.  Nothing needs root, no host address or multicast carries test
traffic (FACTS.md), and the hub dies with the harness process.

Inside the guests a oneshot unit (delivered by Ignition) finds the NIC by its
MAC address and gives it a static address, so the segment works on any
systemd distro; network managers are told to keep off that NIC (or, for
systemd-networkd, given the same static address).
"""

from __future__ import annotations

import contextlib
import os
import selectors
import socket
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

from kolapy.ignition import Ignition

SUBNET = "10.200.0"
"""First three octets of the private /24 (slirp's 10.0.2.0/24 stays untouched)."""
_FRAME_MAX = 65536
_UNIT = "kolapy-privnet.service"
_SCRIPT = "/etc/kolapy/privnet.sh"
_NM_CONF = "/etc/NetworkManager/conf.d/90-kolapy-privnet.conf"
_NETWORKD_CONF = "/etc/systemd/network/10-kolapy-privnet.network"


@dataclass(frozen=True)
class PrivateNic:
    """One member's NIC on a private segment, as QEMU needs it."""

    mac: str
    address: str
    """The guest's IPv4 address on the segment (no prefix length)."""
    local: Path
    """The unix datagram socket QEMU binds (frames from the hub arrive here)."""
    hub: Path
    """The hub's socket for this member (QEMU sends the guest's frames here)."""

    def qemu_args(self, index: int) -> list[str]:
        """``-netdev``/``-device`` arguments for this NIC (``index`` names the netdev)."""
        netdev = f"priv{index}"
        return [
            "-netdev",
            f"dgram,id={netdev},local.type=unix,local.path={self.local},"
            f"remote.type=unix,remote.path={self.hub}",
            "-device", f"virtio-net-pci,netdev={netdev},mac={self.mac}",
        ]


def mac_for(segment: int, member: int) -> str:
    """A locally administered unicast MAC, unique per (segment, member)."""
    return f"52:54:00:{(segment >> 8) & 0xFF:02x}:{segment & 0xFF:02x}:{member & 0xFF:02x}"


def address_for(member: int) -> str:
    """The address of member ``member`` (0-based): 10.200.0.11, .12, ..."""
    if not 0 <= member < 200:
        raise ValueError(f"private network member {member} out of range 0..199")
    return f"{SUBNET}.{member + 11}"


def privnet_fragment(nic: PrivateNic) -> Ignition:
    """Ignition that configures ``nic`` in the guest on every boot."""
    # A script file, not ExecStart text: systemd would expand its "$" itself.
    script = (
        "#!/bin/sh\n"
        "# kolapy: give the private-network NIC its static address\n"
        "for i in $(seq 1200); do\n"
        "  for d in /sys/class/net/*; do\n"
        f'    if [ "$(cat "$d/address")" = "{nic.mac}" ]; then\n'
        '      n="${d##*/}"\n'
        f'      ip link set "$n" up && ip addr replace {nic.address}/24 dev "$n"\n'
        "      exit $?\n"
        "    fi\n"
        "  done\n"
        "  sleep 0.1\n"
        "done\n"
        f"echo 'kolapy: no NIC with MAC {nic.mac}' >&2\n"
        "exit 1\n"
    )
    unit = (
        "[Unit]\n"
        "Description=kolapy private network address\n"
        "After=systemd-udevd.service\n"
        "Before=network.target\n"
        "[Service]\n"
        "Type=oneshot\n"
        "RemainAfterExit=yes\n"
        f"ExecStart=/bin/sh {_SCRIPT}\n"
        "[Install]\n"
        "WantedBy=multi-user.target\n"
    )
    # A network manager would otherwise run DHCP on the NIC and flush the static
    # address: NetworkManager (NestOS) is told to leave it alone, systemd-networkd
    # (the reference image) gets the address as its own config.  Each file is
    # inert where its manager is absent.
    nm_conf = f"[keyfile]\nunmanaged-devices=mac:{nic.mac}\n"
    networkd = (
        f"[Match]\nMACAddress={nic.mac}\n\n"
        f"[Link]\nRequiredForOnline=no\n\n"
        f"[Network]\nAddress={nic.address}/24\nLinkLocalAddressing=no\nIPv6AcceptRA=no\n"
    )
    return (
        Ignition("3.0.0")
        .add_file(_SCRIPT, script, mode=0o755)
        .add_unit(_UNIT, contents=unit, enabled=True)
        .add_file(_NM_CONF, nm_conf, mode=0o644)
        .add_file(_NETWORKD_CONF, networkd, mode=0o644)
    )


class Hub:
    """Repeats Ethernet frames between the members of one private segment.

    Use as a context manager or call :meth:`close`; the thread is a daemon, so
    it never outlives the harness process either.
    """

    def __init__(self, size: int, *, segment: int = 0, sockdir: Path | None = None) -> None:
        if size < 1:
            raise ValueError("a private network needs at least one member")
        # Short paths: a unix socket path must fit in 108 bytes.
        self.dir = Path(tempfile.mkdtemp(prefix="kolapy-net-", dir=sockdir))
        self.nics = [
            PrivateNic(
                mac=mac_for(segment, i),
                address=address_for(i),
                local=self.dir / f"m{i}",
                hub=self.dir / f"h{i}",
            )
            for i in range(size)
        ]
        self._socks: list[socket.socket] = []
        self._sel = selectors.DefaultSelector()
        self._wake_r, self._wake_w = socket.socketpair()
        self._sel.register(self._wake_r, selectors.EVENT_READ, None)
        try:
            for i, nic in enumerate(self.nics):
                s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
                s.bind(str(nic.hub))
                s.setblocking(False)
                self._socks.append(s)
                self._sel.register(s, selectors.EVENT_READ, i)
        except BaseException:
            self.close()
            raise
        self.frames = 0
        self._closed = False
        self._thread = threading.Thread(target=self._loop, name="kolapy-hub", daemon=True)
        self._thread.start()

    def __enter__(self) -> Hub:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _loop(self) -> None:
        while True:
            for key, _ in self._sel.select():
                if key.data is None:
                    return
                self._forward(key.data)

    def _forward(self, src: int) -> None:
        try:
            frame = self._socks[src].recv(_FRAME_MAX)
        except (BlockingIOError, OSError):
            return
        self.frames += 1
        for j, nic in enumerate(self.nics):
            if j == src:
                continue
            # A member that is not up yet (or already gone) just misses the frame,
            # as on a real hub.
            with contextlib.suppress(OSError):
                self._socks[j].sendto(frame, str(nic.local))

    def close(self) -> None:
        """Stop the thread, close the sockets, remove the socket files."""
        if getattr(self, "_closed", False):
            return
        self._closed = True
        with contextlib.suppress(OSError):
            self._wake_w.send(b"x")
        thread = getattr(self, "_thread", None)
        if thread is not None:
            thread.join(timeout=5)
        for s in (*self._socks, self._wake_r, self._wake_w):
            s.close()
        self._sel.close()
        for p in sorted(self.dir.glob("*")):
            with contextlib.suppress(OSError):
                p.unlink()
        with contextlib.suppress(OSError):
            os.rmdir(self.dir)
