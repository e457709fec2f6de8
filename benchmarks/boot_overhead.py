#!/usr/bin/env python3
"""Harness overhead: raw QEMU boot-to-SSH vs kolapy's ``start() + wait_ready()``.

Both boot the same image with the same QEMU arguments and an equivalent Ignition
config, alternating, ``--runs`` times each:

* raw: ``qemu-img create`` overlay (untimed), then from ``Popen`` until a
  paramiko SSH login as the distro user succeeds (polled every 0.5 s);
* kolapy: ``QemuMachine.start()`` (preflight, overlay, config, launch) until
  ``wait_ready()`` returns (SSH AND ``systemctl is-system-running --wait``).

Usage: python benchmarks/boot_overhead.py [--image IMG] [--runs N] [--firmware bios|uefi]
Without --image the cached reference image is used (never built here).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import paramiko

from kolapy.distro import get_distro
from kolapy.enums import Accel, Firmware
from kolapy.machine import process
from kolapy.machine.accel import resolve_accel
from kolapy.machine.ignition_config import machine_config
from kolapy.machine.platform import find_firmware, load_platform
from kolapy.machine.qemu import QemuMachine, free_port
from kolapy.machine.qemu_command import MachinePaths, QemuCommand
from kolapy.machine.spec import MachineSpec
from kolapy.transport.ssh import SSHKeyPair


def raw_boot(spec: MachineSpec, workdir: Path, key: SSHKeyPair, timeout: float) -> float:
    """Seconds from launching QEMU until an SSH login succeeds."""
    workdir.mkdir(parents=True)
    profile = load_platform(spec.arch)
    accel = resolve_accel(Accel.AUTO, spec.arch)
    firmware = find_firmware(profile, spec.firmware)
    assert firmware is not None, "firmware missing"
    paths = MachinePaths.for_workdir(workdir)
    host_key = SSHKeyPair.generate(workdir / "hostkey", "host")
    machine_config(None, distro=spec.distro, ssh_key=key, host_key=host_key).write(paths.ignition)
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-b", str(spec.image.absolute()),
                    "-F", "qcow2", str(paths.overlay)], check=True)
    if firmware.vars_template:
        paths.uefi_vars.write_bytes(firmware.vars_template.read_bytes())
    port = free_port()
    argv = QemuCommand(spec, profile, accel, paths, port, firmware).argv()
    user = get_distro(spec.distro).ssh_user
    pkey = key.pkey()
    start = time.monotonic()
    proc = process.launch(argv, stderr=paths.qemu_stderr)
    try:
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"QEMU exited: {paths.qemu_stderr.read_text()}")
            if time.monotonic() - start > timeout:
                raise RuntimeError("raw boot: no SSH in time")
            client = paramiko.SSHClient()
            client.set_missing_host_key_policy(paramiko.AutoAddPolicy())
            try:
                client.connect("127.0.0.1", port, username=user, pkey=pkey, timeout=10,
                               banner_timeout=10, auth_timeout=10, allow_agent=False,
                               look_for_keys=False)
                return time.monotonic() - start
            except (OSError, paramiko.SSHException, EOFError):
                time.sleep(0.5)
            finally:
                client.close()
    finally:
        process.terminate(proc, grace=1)


def kolapy_boot(spec: MachineSpec, workdir: Path, key: SSHKeyPair) -> float:
    """Seconds for QemuMachine.start() + wait_ready()."""
    m = QemuMachine(spec, workdir=workdir, ssh_key=key)
    start = time.monotonic()
    try:
        m.start()
        m.wait_ready()
        return time.monotonic() - start
    finally:
        m.stop(graceful=False)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--image", type=Path)
    ap.add_argument("--runs", type=int, default=2)
    ap.add_argument("--firmware", choices=["bios", "uefi"], default="bios")
    args = ap.parse_args()
    image = args.image
    if image is None:
        from kolapy.refimage import image_path

        image = image_path()
        if image is None:
            print("no --image and the reference image is not built (kolapy image build)",
                  file=sys.stderr)
            return 2
    spec = MachineSpec(image=image, firmware=Firmware(args.firmware), name="bench")
    raw: list[float] = []
    kol: list[float] = []
    with tempfile.TemporaryDirectory(prefix="kolapy-bench-") as tmp:
        key = SSHKeyPair.generate(Path(tmp) / "ssh")
        for i in range(args.runs):
            raw.append(raw_boot(spec, Path(tmp) / f"raw{i}", key, timeout=600))
            print(f"run {i + 1}: raw QEMU boot-to-SSH     {raw[-1]:6.1f} s", flush=True)
            kol.append(kolapy_boot(spec, Path(tmp) / f"kolapy{i}", key))
            print(f"run {i + 1}: kolapy start+wait_ready  {kol[-1]:6.1f} s", flush=True)
    r, k = statistics.mean(raw), statistics.mean(kol)
    print()
    print(f"image: {image}  firmware: {args.firmware}  runs: {args.runs}")
    print(f"{'':28}{'mean':>8}{'min':>8}{'max':>8}")
    print(f"{'raw QEMU boot-to-SSH':28}{r:8.1f}{min(raw):8.1f}{max(raw):8.1f}")
    print(f"{'kolapy machine-ready':28}{k:8.1f}{min(kol):8.1f}{max(kol):8.1f}")
    print(f"ratio kolapy/raw: {k / r:.3f}  (target <= 1.10)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
