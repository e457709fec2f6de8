"""`kolapy run`: turn CLI arguments into pytest invocations (and the optional rerun)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from kolapy.enums import Arch
from kolapy.errors import BadInputError


def resolve_image(ns: argparse.Namespace) -> Path:
    """The image to test: ``--nestos-image`` or the reference image (built if needed).

    ``--platform libvirt``: every ``--libvirt-uri`` is reached first (exit 2 naming
    the one that is not, before a build or a boot)."""
    _check_platform(ns)
    if ns.nestos_image:
        return Path(ns.nestos_image).expanduser().absolute()  # checked by preflight_run
    from kolapy.refimage import ensure_image

    return ensure_image(Arch.parse(ns.kola_arch or "x86_64"))


def run_image(ns: argparse.Namespace, forwarded: list[str]) -> Path:
    """The image of a ``kolapy run``: as :func:`resolve_image`, except when only ISO
    machines boot, so the reference qcow2 is never built for nothing.

    With ``--nestos-iso`` every machine boots that ISO: it is the image under test
    (``--nestos-image`` is not used; the session gives every machine this image).
    When every selected test is an ``iso.*`` scenario, the image is the reference
    live ISO they boot (built if needed)."""
    iso = getattr(ns, "nestos_iso", None)
    if iso:
        _check_platform(ns)
        return Path(iso).expanduser().absolute()  # checked by preflight_run
    if not ns.nestos_image and _iso_scenarios_only(ns, forwarded):
        from kolapy.iso.build import ensure_iso

        _check_platform(ns)
        return ensure_iso(Arch.parse(ns.kola_arch or "x86_64"))
    return resolve_image(ns)


def _check_platform(ns: argparse.Namespace) -> None:
    """``--platform libvirt``: every ``--libvirt-uri`` answers and has the named
    ``--libvirt-network`` (exit 2 naming what is wrong, before a build or a boot)."""
    if getattr(ns, "kola_platform", None) == "libvirt":
        from kolapy.machine.libvirt_hosts import DEFAULT_URI, check_uris

        check_uris(tuple(getattr(ns, "kola_libvirt_uris", None) or ()) or (DEFAULT_URI,),
                   getattr(ns, "kola_libvirt_network", None) or "auto")


def _iso_scenarios_only(ns: argparse.Namespace, forwarded: list[str]) -> bool:
    """True when the run selects tests and all of them are kolapy's ``iso.*`` scenarios
    (their machines boot the reference live ISO, never the qcow2)."""
    from kolapy.listing import list_tests
    from kolapy.suites.iso import SCENARIOS

    if not ns.patterns or getattr(ns, "tests", None) or getattr(ns, "exttest", None):
        return False
    extra = [a for a in forwarded if not a.startswith("--nestos-image=")]
    tests = list_tests(ns.patterns, extra_args=extra)
    return bool(tests) and all(t["name"] in SCENARIOS for t in tests)


def config_of(ns: argparse.Namespace) -> Any:
    """The run's :class:`RunConfig`; a bad value (``--memory 100``, an invalid
    ``--platform-file``) is a :class:`BadInputError` naming it."""
    from kolapy.config import RunConfig

    try:
        return RunConfig.from_options(lambda dest, default: getattr(ns, dest, default))
    except ValueError as exc:
        raise BadInputError(str(exc)) from None


def preflight_run(ns: argparse.Namespace, image: Path, forwarded: list[str]) -> None:
    """Everything that can be checked before a VM boots (BadInputError on a problem).

    QEMU, qemu-img, firmware and the image itself; then a quiet collection
    that rejects patterns matching nothing and invalid test configs.
    """
    from kolapy.disksize import disk_gib
    from kolapy.listing import list_tests
    from kolapy.session import check_host_and_image

    cfg = config_of(ns)
    if cfg.iso is not None:  # a non-ISO or a non-live ISO: exit 2 before any boot
        from kolapy.iso.media import check_live_iso

        check_live_iso(cfg.iso)
    check_host_and_image(cfg, image)
    disk_gib(cfg.disk_size, image)  # --disk-size smaller than the image: exit 2 now
    extra = [str(Path(p).absolute()) for p in getattr(ns, "tests", [])]
    extra += [f"--kola-exttest={Path(d).absolute()}" for d in getattr(ns, "exttest", [])]
    extra += [a for a in forwarded if not a.startswith("--nestos-image=")]
    list_tests(ns.patterns, extra_args=[*extra, f"--nestos-image={image}"])


def pytest_args(
    ns: argparse.Namespace,
    forwarded: list[str],
    image: Path,
    output_dir: Path,
    patterns: list[str],
) -> list[str]:
    """The pytest command line for one pass of ``kolapy run``."""
    args = ["-p", "no:cacheprovider", "-W", "ignore::pytest.PytestAssertRewriteWarning"]
    args += ["--pyargs", "kolapy.suites"]
    args += [str(Path(p).absolute()) for p in ns.tests]
    args += [f"--kola-exttest={Path(d).absolute()}" for d in getattr(ns, "exttest", [])]
    args += [a for a in forwarded if not a.startswith("--nestos-image=")]
    args.append(f"--nestos-image={image}")
    args += [f"--kola-pattern={p}" for p in patterns]
    args.append(f"--kola-output-dir={output_dir}")
    # kolapy's live view (rich on a terminal, plain lines in logs) instead of pytest's dots.
    args.append(f"--kola-live={getattr(ns, 'live', None) or 'auto'}")
    # --keep-failed waits on this process's terminal: keep it in one process.
    if ns.parallel == "auto" and not ns.kola_keep_failed:
        args += ["-n", "auto"]  # the plugin picks the width (cores, host memory)
    elif ns.parallel and ns.parallel != "auto" and ns.parallel > 1 and not ns.kola_keep_failed:
        args += ["-n", str(ns.parallel)]
    return args


def failed_tests(output_dir: Path) -> list[str]:
    """Names of the tests that failed in a finished run (from kola's report.json)."""
    report = output_dir / "reports" / "report.json"
    if not report.exists():
        return []
    tests = json.loads(report.read_text()).get("tests", [])
    return [t["name"] for t in tests if t.get("result") == "FAIL"]


# Ctrl-C or SIGTERM (the plugin turns it into KeyboardInterrupt): the shell's 128 + SIGINT.
INTERRUPTED = 130


class _Interrupted:
    """Tells an interrupted pytest run (Ctrl-C, SIGTERM) from ``pytest.exit(returncode=2)``."""

    def __init__(self) -> None:
        self.seen = False

    def pytest_keyboard_interrupt(self, excinfo: object) -> None:
        import pytest

        value = getattr(excinfo, "value", None)
        self.seen = not isinstance(value, pytest.exit.Exception)


def run(ns: argparse.Namespace, forwarded: list[str]) -> int:
    """Run the selected tests; with ``--rerun``, run the failed ones once more.

    Both results are kept: the rerun writes to ``<output-dir>/rerun/``.  The
    exit code is the rerun's when one happened (a flake that passes on the
    second try does not fail the run), as kola does.
    """
    import pytest

    from kolapy.outputcheck import check_output_dir
    from kolapy.report.outdir import default_output_dir

    image = run_image(ns, forwarded)
    preflight_run(ns, image, forwarded)
    out = Path(ns.output_dir).absolute() if ns.output_dir else default_output_dir().absolute()
    check_output_dir(out)  # read-only or full: exit 2 before any boot
    cut = _Interrupted()
    rc = int(pytest.main(pytest_args(ns, forwarded, image, out, list(ns.patterns)),
                         plugins=[cut]))
    if cut.seen:
        return INTERRUPTED
    if not ns.rerun or rc != 1:
        return rc
    again = failed_tests(out)
    if not again:
        return rc
    print(f"kolapy: rerunning {len(again)} failed test(s): {' '.join(again)}", file=sys.stderr)
    rc = int(pytest.main(pytest_args(ns, forwarded, image, out / "rerun", again), plugins=[cut]))
    return INTERRUPTED if cut.seen else rc
