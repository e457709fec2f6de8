"""`kolapy run-upgrade`: `kolapy run upgrade.basic` with the upgrade options checked first.

Bad ``--upgrade-repo``/``--upgrade-ref`` values stop the run before any boot
(BadInputError, exit 2).  After the run the parent and target commits and
versions (``<output-dir>/upgrade.basic/upgrade.json``) are printed.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from kolapy.errors import BadInputError

TEST = "upgrade.basic"


def run_upgrade(ns: argparse.Namespace, forwarded: list[str]) -> int:
    """Check the options, run ``upgrade.basic``, print the upgrade summary; the exit code."""
    from kolapy.report.outdir import default_output_dir
    from kolapy.runner import resolve_image, run
    from kolapy.upgrade.refrepo import image_manifest
    from kolapy.upgrade.target import check_options

    check_options(ns.upgrade_repo, ns.upgrade_ref)
    image = resolve_image(ns)
    if ns.upgrade_repo is None and image_manifest(image) is None:
        raise BadInputError(
            f"{image} is not a kolapy reference image: give --upgrade-repo and --upgrade-ref"
        )
    out = Path(ns.output_dir).absolute() if ns.output_dir else default_output_dir().absolute()
    ns.output_dir, ns.patterns, ns.tests, ns.parallel = str(out), [TEST], [], 1
    rc = run(ns, forwarded)
    print(summary(out / TEST / "upgrade.json"), file=sys.stderr)
    return rc


def summary(path: Path) -> str:
    """The upgrade part of the report, as lines (or why there is none)."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return f"kolapy: run-upgrade: no upgrade report ({path} missing)"
    lines = [f"kolapy: run-upgrade: {data.get('repo')} ref {data.get('ref')}"]
    for key in ("parent", "target"):
        entry = data.get(key) or {}
        lines.append(f"  {key}: {entry.get('commit', '-')} version {entry.get('version', '-')}")
    reboots = data.get("reboots_s") or []
    if reboots:
        lines.append("  reboots: " + ", ".join(f"{s:.0f} s" for s in reboots))
    lines.append(f"  result: {data.get('result', 'FAIL (see the report)')}")
    return "\n".join(lines)
