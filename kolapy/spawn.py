"""`kolapy spawn`: boot one machine, print how to reach it, stop it on Ctrl-C."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path

from kolapy.config import RunConfig
from kolapy.disksize import disk_gib
from kolapy.machine.spec import MachineSpec
from kolapy.pool import MachinePool


def spawn(ns: argparse.Namespace) -> int:
    """Boot the image of ``ns`` with ``--ignition`` merged in; block until interrupted."""
    from kolapy.report.outdir import default_output_dir
    from kolapy.runner import config_of, resolve_image

    cfg: RunConfig = config_of(ns)
    image = resolve_image(ns)  # also reaches --platform libvirt's hosts (exit 2)
    ignition = None
    if ns.ignition:
        from kolapy.ignition import Ignition

        ignition = Ignition.load(Path(ns.ignition))
    spec = MachineSpec(
        image=image,
        arch=cfg.arch,
        firmware=cfg.firmware,
        memory_mib=cfg.memory_mib,
        disk_size_gib=disk_gib(cfg.disk_size, image),
        ignition=ignition,
        distro=cfg.distro,
    )
    out = default_output_dir(platform="spawn").absolute()
    pool = MachinePool(cfg, out, worker="spawn")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        print(f"kolapy: booting {image.name} ...", file=sys.stderr)
        machine = pool.boot(spec, "spawn")
        print(f"ssh:     {machine.ssh_command()}")
        print(f"console: {machine.console_log_path}")
        if hasattr(machine, "virsh_console"):
            print(f"virsh:   {machine.virsh_console()}")
        print("kolapy: machine is up; Ctrl-C stops it", file=sys.stderr)
        sys.stdout.flush()
        try:
            while not stop.wait(1.0):
                if not machine.is_running():
                    print("kolapy: the machine stopped", file=sys.stderr)
                    return 1
        except KeyboardInterrupt:
            pass
        pool.stop(machine)
        print(f"kolapy: stopped; artifacts in {out}", file=sys.stderr)
        return 0
    finally:
        pool.close()
