#!/usr/bin/env python3
"""Boot once, restore many: what a restored clone saves over a boot.

Two measurements, in one run:

1. **machine**: boot-to-ready of the reference spec vs restore-to-ready of a
   clone of the same machine saved after that boot (target ratio <= 0.15).
2. **suite**: N exclusive default-config tests (kola's default: a machine
   each) with restore on and with ``--no-restore``, against the wall time of
   ONE such test (target: N=8 with restore <= 2.5x one test).  Each test reads
   ``/etc/os-release``, checks that no other test's file is there and writes
   its own; the results must be the same both ways.

Usage: python benchmarks/restore.py [--image IMG] [-n N] [--workers W] [--skip-machine]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TEST = '''

@kola(name="bench.excl{i}")
def test_excl{i}(machine):
    assert "ID=" in machine.succeed("cat /etc/os-release")
    others = machine.succeed("ls /var/tmp | grep '^bench-' || true").split()
    assert others == [], f"not a pristine machine: {{others}}"
    machine.succeed("touch /var/tmp/bench-{i}")
'''


def tests_source(n: int) -> str:
    """N kola tests, each its own (exclusive) machine: a parametrized test would share one."""
    return "from kolapy import kola\n" + "".join(TEST.format(i=i) for i in range(n))


def machine_ratio(image: Path, tmp: Path) -> tuple[float, float]:
    """(boot-to-ready s, restore-to-ready s) for the default spec."""
    from kolapy.machine.qemu import QemuMachine
    from kolapy.machine.restore import RestoredMachine, save_template
    from kolapy.machine.spec import MachineSpec
    from kolapy.transport.ssh import SSHKeyPair

    key = SSHKeyPair.generate(tmp / "ssh")
    t = QemuMachine(MachineSpec(image=image, name="bench-t"), workdir=tmp / "t", ssh_key=key)
    start = time.monotonic()
    try:
        t.start()
        t.wait_ready()
        boot = time.monotonic() - start
        template = save_template(t, boot)
    finally:
        t.stop(graceful=False)
    clone = RestoredMachine(template, workdir=tmp / "c", ssh_key=key, name="bench-c")
    start = time.monotonic()
    try:
        clone.start()
        clone.wait_ready()
        restore = time.monotonic() - start
        clone.succeed("true")
    finally:
        clone.stop()
    return boot, restore


def suite(image: Path, n: int, workers: int, restore: bool, tmp: Path) -> tuple[float, dict]:
    """Wall seconds of pytest over N exclusive tests; and the results by name."""
    d = tmp / f"suite-{n}-{'restore' if restore else 'boot'}"
    d.mkdir()
    (d / "test_bench.py").write_text(tests_source(n))
    out = d / "out"
    args = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
            f"--nestos-image={image}", f"--kola-output-dir={out}", str(d / "test_bench.py")]
    if workers > 1:
        args += ["-n", str(workers)]
    if not restore:
        args.append("--no-restore")
    start = time.monotonic()
    proc = subprocess.run(args, capture_output=True, text=True, cwd=d)
    took = time.monotonic() - start
    if proc.returncode != 0:
        sys.exit(f"suite run failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-2000:]}")
    report = json.loads((out / "reports" / "report.json").read_text())
    tests = [t for t in report["tests"] if t["name"].startswith("bench.")]
    results = {t["name"]: t["result"] for t in tests}
    restored = sum(1 for t in tests if t.get("restored_from"))
    if len(results) != n or len({m for t in tests for m in t["machines"]}) != n:
        sys.exit(f"expected {n} tests on {n} machines: {tests}")
    print(f"  N={n:<2} restore={'on ' if restore else 'off'} {took:7.1f} s  "
          f"restored machines: {restored}/{len(results)}", flush=True)
    return took, results


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--image", type=Path)
    ap.add_argument("-n", type=int, default=8, help="exclusive tests in the suite (default 8)")
    ap.add_argument("--workers", type=int, default=1, help="xdist workers (default 1)")
    ap.add_argument("--skip-machine", action="store_true", help="only the suite measurement")
    ns = ap.parse_args()
    if ns.image is None:
        from kolapy.refimage import ensure_image

        ns.image = ensure_image()
    with tempfile.TemporaryDirectory(prefix="kolapy-bench-") as tmp_s:
        tmp = Path(tmp_s)
        if not ns.skip_machine:
            boot, restore = machine_ratio(ns.image, tmp)
            print(f"machine: boot-to-ready {boot:.1f} s, restore-to-ready {restore:.1f} s, "
                  f"ratio {restore / boot:.3f} (target <= 0.15)", flush=True)
        one, _ = suite(ns.image, 1, 1, True, tmp)
        with_restore, res_on = suite(ns.image, ns.n, ns.workers, True, tmp)
        without, res_off = suite(ns.image, ns.n, ns.workers, False, tmp)
    print(f"suite: 1 test {one:.1f} s; {ns.n} tests with restore {with_restore:.1f} s "
          f"({with_restore / one:.2f}x one test, target <= 2.5x); "
          f"without restore {without:.1f} s ({without / one:.2f}x)")
    same = res_on == res_off and set(res_on.values()) == {"PASS"}
    print(f"results identical both ways and all PASS: {same}")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
