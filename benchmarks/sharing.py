#!/usr/bin/env python3
"""VM sharing: N non-exclusive read-only tests on one machine vs N exclusive ones.

Generates N trivial kola tests (each reads /etc/os-release) and runs them
twice with the kolapy plugin in one process pool:

* shared: ``exclusive=False`` -> equal machine specs share one VM (one boot);
* exclusive: kola's default -> one VM per test (N boots).

Prints wall times, the number of machines each run booted (from report.json)
and the ratio exclusive/shared.

Usage: python benchmarks/sharing.py [--image IMG] [-n N] [--workers W]
Without --image the cached reference image is used (built if missing).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TEMPLATE = '''
from kolapy import kola

{tests}
'''

TEST = '''
@kola(name="bench.read{i}", exclusive={exclusive})
def test_read{i}(machine):
    assert "ID=" in machine.succeed("cat /etc/os-release")
'''


def run(image: Path, n: int, exclusive: bool, workers: int, tmp: Path) -> tuple[float, int]:
    mode = "exclusive" if exclusive else "shared"
    d = tmp / mode
    d.mkdir()
    tests = "".join(TEST.format(i=i, exclusive=exclusive) for i in range(n))
    (d / "test_bench.py").write_text(TEMPLATE.format(tests=tests))
    out = d / "out"
    args = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
            f"--nestos-image={image}", f"--kola-output-dir={out}", str(d / "test_bench.py")]
    if workers > 1:
        args += ["-n", str(workers)]
    start = time.monotonic()
    proc = subprocess.run(args, capture_output=True, text=True, cwd=d)
    took = time.monotonic() - start
    if proc.returncode != 0:
        sys.exit(f"{mode} run failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-2000:]}")
    report = json.loads((out / "reports" / "report.json").read_text())
    machines = {m for t in report["tests"] for m in t.get("machines", [])}
    return took, len(machines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--image", type=Path)
    ap.add_argument("-n", type=int, default=4, help="number of tests (default 4)")
    ap.add_argument("--workers", type=int, default=1, help="xdist workers (default 1)")
    ns = ap.parse_args()
    if ns.image is None:
        from kolapy.refimage import ensure_image

        ns.image = ensure_image()
    with tempfile.TemporaryDirectory(prefix="kolapy-bench-") as tmp:
        shared_s, shared_m = run(ns.image, ns.n, False, ns.workers, Path(tmp))
        excl_s, excl_m = run(ns.image, ns.n, True, ns.workers, Path(tmp))
    print(f"{'mode':<10} {'tests':>5} {'machines':>8} {'wall s':>8}")
    print(f"{'shared':<10} {ns.n:>5} {shared_m:>8} {shared_s:>8.1f}")
    print(f"{'exclusive':<10} {ns.n:>5} {excl_m:>8} {excl_s:>8.1f}")
    print(f"ratio exclusive/shared: {excl_s / shared_s:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
