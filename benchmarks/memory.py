#!/usr/bin/env python3
"""Host memory per machine: QEMU's resident size and kolapy's own share.

One machine of the default spec is booted; QEMU's RSS is read when it is ready
and again after a small workload; the machine is then saved and a clone restored
from it, whose RSS is read when ready.  kolapy's share is the resident size of
this (harness) process, before the first machine and at the end.  The memory
ledger reserves guest memory + ``QEMU_OVERHEAD_MIB`` per machine: the table shows
how that compares with what a machine really holds.

Usage: python benchmarks/memory.py [--image IMG]
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path


def _row(what: str, mib: int, note: str = "") -> None:
    print(f"  {what:<38} {mib:6d} MiB  {note}", flush=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--image", type=Path)
    ns = ap.parse_args()

    from kolapy.machine.memory import QEMU_OVERHEAD_MIB, rss_mib
    from kolapy.machine.qemu import QemuMachine
    from kolapy.machine.restore import RestoredMachine, save_template
    from kolapy.machine.spec import MachineSpec
    from kolapy.transport.ssh import SSHKeyPair

    if ns.image is None:
        from kolapy.refimage import ensure_image

        ns.image = ensure_image()
    me = os.getpid()
    harness_before = rss_mib(me)
    spec = MachineSpec(image=ns.image, name="mem-t")
    print(f"default machine: {spec.memory_mib} MiB guest, ledger reserves "
          f"{spec.memory_mib + QEMU_OVERHEAD_MIB} MiB")
    with tempfile.TemporaryDirectory(prefix="kolapy-bench-mem-") as tmp_s:
        tmp = Path(tmp_s)
        key = SSHKeyPair.generate(tmp / "ssh")
        t = QemuMachine(spec, workdir=tmp / "t", ssh_key=key)
        try:
            t.start()
            t.wait_ready()
            _row("booted machine, ready", rss_mib(t.pid))
            t.succeed("sudo journalctl -b --no-pager >/dev/null; rpm-ostree status >/dev/null "
                      "2>&1 || ostree admin status >/dev/null")
            _row("booted machine, after a workload", rss_mib(t.pid))
            template = save_template(t, 0.0)
        finally:
            t.stop(graceful=False)
        clone = RestoredMachine(template, workdir=tmp / "c", ssh_key=key, name="mem-c")
        try:
            clone.start()
            clone.wait_ready()
            _row("restored clone, ready", rss_mib(clone.pid))
        finally:
            clone.stop()
    _row("kolapy harness process, before", harness_before)
    _row("kolapy harness process, after", rss_mib(me), "(paramiko, logs, one clone)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
