"""kola's testiso scenarios on kolapy machines: what each boots, sends and waits for.

As nestos-assembler's ``kola testiso``: the machine gets a completion port
(``testisocompletion``); units in the configs write ``live-test-OK`` from the live
system and ``nestos-installer-test-OK`` from the installed one.  The installed
system must boot from its disk alone, run its first-boot Ignition and answer SSH:
the installer's reboot ends the install phase's QEMU (``-no-reboot``) and the disk
gets a cold start in a new QEMU without the ISO, as after a power cycle.
Each function returns the seconds each phase took.
"""

from __future__ import annotations

import json
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from kolapy.ignition.config import Ignition
from kolapy.machine.ignition_config import machine_config
from kolapy.machine.spec import MachineSpec
from kolapy.transport.ssh import SSHKeyPair

COMPLETION_PORT = "testisocompletion"
LIVE_OK = "live-test-OK"
INSTALLED_OK = "nestos-installer-test-OK"
LIVE_LOGIN_PORT = "nestos.liveiso-success"
LIVE_LOGIN_OK = "nestos-liveiso-success"
INSTALLER_YAML = "/etc/nestos/installer.d/mantle.yaml"
TARGET_CONFIG = "/var/opt/kolapy-install.ign"
INSTALLED_STAMP = "/etc/kolapy-installed-by-iso"
LIVE_MARKER = "/etc/kolapy-live-test-ok"
"""Written by the live system's Ignition from the embedded config; the live unit sends
its content, so ``live-test-OK`` on the port proves the embedded config was applied."""
DEST_DEVICE = "/dev/vda"
PHASE_TIMEOUT = 120.0
"""Base seconds per phase (scaled: 600 s under TCG, kola's 10 min per scenario)."""

_PORT_DEV = f"/dev/virtio-ports/{COMPLETION_PORT}"
_LIVE_SIGNAL = f"""[Unit]
Description=testiso: signal that the live system is up
Before=nestos-installer.service
[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/bin/sh -c 'cat {LIVE_MARKER} > {_PORT_DEV}'
[Install]
WantedBy=multi-user.target
"""

_INSTALLED_SIGNAL = f"""[Unit]
Description=testiso: signal that the installed system is up (and /boot/ignition is gone)
After=local-fs.target
[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/bin/sh -c 'test ! -e /boot/ignition && echo {INSTALLED_OK} > {_PORT_DEV}'
[Install]
WantedBy=multi-user.target
"""


def live_signal_config() -> Ignition:
    """A live config whose unit sends a file it wrote (``live-test-OK``) to the
    completion port."""
    return (Ignition()
            .add_file(LIVE_MARKER, LIVE_OK + "\n")
            .add_unit("kolapy-live-signal-ok.service", _LIVE_SIGNAL, enabled=True))


def installer_yaml(console: str, *, offline: bool) -> str:
    """mantle.yaml as kola writes it (block lists)."""
    lines = [f"dest-device: {DEST_DEVICE}", f"ignition-file: {TARGET_CONFIG}",
             "console:", f"- {console}", "append-karg:", "- kolapy.installed=1"]
    if offline:
        lines.append("offline: true")
    return "\n".join(lines) + "\n"


def install_configs(*, distro: str, ssh_key: SSHKeyPair, host_key: SSHKeyPair, console: str,
                    offline: bool) -> tuple[Ignition, Ignition]:
    """(live config, target config): the live one carries the installer's YAML and the
    target config (with the harness's SSH keys, so the installed system answers SSH)."""
    target_test = (
        Ignition()
        .add_unit("kolapy-installed-signal-ok.service", _INSTALLED_SIGNAL, enabled=True)
        .add_file(INSTALLED_STAMP, "written by the installed system's first-boot Ignition\n")
    )
    target = machine_config(target_test, distro=distro, ssh_key=ssh_key, host_key=host_key,
                            source="iso.install target config")
    live = (
        live_signal_config()
        .add_file(TARGET_CONFIG, target.to_json(), mode=0o600)
        .add_file(INSTALLER_YAML, installer_yaml(console, offline=offline))
    )
    return live, target


def iso_spec(base: MachineSpec, iso: Path, **changes: Any) -> MachineSpec:
    """``base`` booting the live ISO ``iso`` as a CD-ROM (override with ``changes``)."""
    return replace(base, image=Path(iso), boot_media="iso", **changes)


def run_live_login(machine: Any) -> dict[str, float]:
    """iso.live-login: no config; the autologin console must signal success."""
    start = time.monotonic()
    machine.start()
    machine.wait_for_port(LIVE_LOGIN_PORT, LIVE_LOGIN_OK, PHASE_TIMEOUT)
    return {"live_login_s": round(time.monotonic() - start, 1)}


def run_live_signal(machine: Any) -> dict[str, float]:
    """iso.as-disk: the live system (config embedded) signals ``live-test-OK``."""
    start = time.monotonic()
    machine.start()
    machine.wait_for_port(COMPLETION_PORT, LIVE_OK, PHASE_TIMEOUT)
    return {"live_s": round(time.monotonic() - start, 1)}


def run_install(machine: Any) -> dict[str, float]:
    """iso.install: live system up, installer writes the disk and reboots, the
    installed system signals, then answers SSH (checked: first-boot Ignition ran,
    /boot/ignition is gone, the root is on the disk, the console karg is set).

    The machine's spec must have ``no_reboot``: the installer's reboot ends its QEMU
    (``-no-reboot``), then the installed disk gets a cold start in a new QEMU with the
    ISO taken out (:meth:`QemuMachine.power_cycle`), as a power cycle.  A warm reset
    in the same QEMU left Debian 12's OVMF crawling in its timer interrupt under TCG
    (docs/iso.md).  A QEMU exit before ``live-test-OK`` fails the live phase.
    """
    if not machine.spec.no_reboot:
        raise ValueError(f"{machine.name}: run_install needs a machine spec with "
                         "no_reboot=True (the installer's reboot must end QEMU)")
    start = time.monotonic()
    machine.start()
    machine.wait_for_port(COMPLETION_PORT, LIVE_OK, PHASE_TIMEOUT)
    live = time.monotonic()
    machine.wait_for_exit(PHASE_TIMEOUT * 2)
    written = time.monotonic()
    machine.power_cycle(installed_spec(machine.spec))
    machine.wait_for_port(COMPLETION_PORT, INSTALLED_OK, PHASE_TIMEOUT * 2)
    installed = time.monotonic()
    machine.wait_ready()
    ready = time.monotonic()
    machine.succeed(f"test -f {INSTALLED_STAMP}")
    machine.fail("sudo -n test -e /boot/ignition")
    cmdline = machine.succeed("cat /proc/cmdline").split()
    assert "kolapy.installed=1" in cmdline, f"installer kargs missing: {cmdline}"
    source = machine.succeed("findmnt -n -o SOURCE /").strip()
    assert source.startswith(DEST_DEVICE), f"root is {source!r}, not on {DEST_DEVICE}"
    return {
        "live_s": round(live - start, 1),
        "install_s": round(written - live, 1),
        "first_boot_s": round(installed - written, 1),
        "install_and_first_boot_s": round(installed - live, 1),
        "ssh_ready_s": round(ready - installed, 1),
        "total_s": round(ready - start, 1),
    }


def installed_spec(spec: MachineSpec) -> MachineSpec:
    """The spec of an install machine's second boot: the ISO taken out (``disk0``
    boots), guest reboots reset in the same QEMU again (no ``-no-reboot``)."""
    return replace(spec, boot_media="iso-ejected", no_reboot=False)


def write_timings(path: Path, timings: dict[str, float]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(timings, indent=2) + "\n")
