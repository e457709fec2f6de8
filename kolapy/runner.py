"""Turn `kolapy run` arguments into one pytest invocation."""

from __future__ import annotations

import argparse
from pathlib import Path

from kolapy.enums import Arch


def resolve_image(ns: argparse.Namespace) -> Path:
    """The image to test: ``--nestos-image`` (checked) or the reference image (built if needed)."""
    if ns.nestos_image:
        from kolapy.machine.preflight import check_image

        image = Path(ns.nestos_image).expanduser().absolute()
        check_image(image)
        return image
    from kolapy.refimage import ensure_image

    return ensure_image(Arch.parse(ns.kola_arch or "x86_64"))


def pytest_args(ns: argparse.Namespace, forwarded: list[str]) -> list[str]:
    """The pytest command line for ``kolapy run``: built-in suites + the plugin's options."""
    image = resolve_image(ns)
    args = [
        "--pyargs",
        "kolapy.suites",
        "-p",
        "no:cacheprovider",
        "-o",
        "console_output_style=classic",
    ]
    args += [a for a in forwarded if not a.startswith("--nestos-image=")]
    args.append(f"--nestos-image={image}")
    args += [f"--kola-pattern={p}" for p in ns.patterns]
    if ns.output_dir:
        args.append(f"--kola-output-dir={Path(ns.output_dir).absolute()}")
    if ns.parallel and ns.parallel > 1:
        args += ["-n", str(ns.parallel)]
    return args
