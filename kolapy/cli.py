"""`kolapy` command line: thin; every verb calls the library or pytest.

`kolapy run` has no runner of its own: it builds a pytest invocation with the
plugin and the built-in suites, so the CLI and the plugin can never disagree.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from kolapy.errors import BadInputError, KolapyError
from kolapy.options import OPTIONS, forward


def _add_run_options(p: argparse.ArgumentParser) -> None:
    for flag, kwargs in OPTIONS:
        p.add_argument(flag, **kwargs)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="kolapy", description="kola for pytest: test OS images")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = parser.add_subparsers(dest="verb", required=True, metavar="VERB")

    run = sub.add_parser("run", help="run kola tests (default: all) on an image")
    run.add_argument("patterns", nargs="*", metavar="PATTERN", help="kola name globs")
    run.add_argument("-j", "--parallel", type=_parallel, default=1, metavar="N",
                     help="parallel workers, or 'auto' (from cores and host memory)")
    run.add_argument("--output-dir", metavar="DIR", help="where reports and artifacts go")
    run.add_argument("--rerun", action="store_true", help="run failed tests once more")
    run.add_argument(
        "--live",
        choices=["auto", "rich", "plain", "off"],
        default="auto",
        help="progress view: rich on a terminal, plain lines otherwise (auto); off: pytest's own",
    )
    run.add_argument(
        "--tests",
        action="append",
        default=[],
        metavar="PATH",
        help="also run the kola tests in this pytest file or directory (repeatable)",
    )
    run.add_argument("-E", "--exttest", action="append", default=[], metavar="DIR",
                     help="also run the kola external tests of DIR (DIR/tests/kola; repeatable)")
    _add_run_options(run)
    run.add_argument("--iso", dest="nestos_iso", metavar="ISO", help="same as --nestos-iso")

    upg = sub.add_parser(
        "run-upgrade", help="boot the image, upgrade it (--upgrade-repo/--upgrade-ref), "
        "verify, run basic, roll back"
    )
    upg.add_argument("--output-dir", metavar="DIR", help="where reports and artifacts go")
    upg.add_argument("--live", choices=["auto", "rich", "plain", "off"], default="auto",
                     help="progress view (as for run)")
    _add_run_options(upg)
    upg.set_defaults(rerun=False)

    ls = sub.add_parser("list", help="list kola tests")
    ls.add_argument("patterns", nargs="*", metavar="PATTERN")
    ls.add_argument("--json", action="store_true", help="machine-readable output")
    ls.add_argument(
        "--tests",
        action="append",
        default=[],
        metavar="PATH",
        help="also list the kola tests in this pytest file or directory",
    )
    ls.add_argument("-E", "--exttest", action="append", default=[], metavar="DIR",
                    help="also list the kola external tests of DIR (DIR/tests/kola; repeatable)")
    ls.add_argument("--tag", dest="kola_tags", action="append", default=[], metavar="TAG",
                    help="select by tag as `run` does (repeatable; !TAG excludes)")
    ls.add_argument("--distro", dest="kola_distro", choices=["nestos", "fcos"],
                    help="judge distro filters for this distro (as `run --distro`)")
    ls.add_argument("--arch", dest="kola_arch", choices=["x86_64", "aarch64"],
                    help="judge architecture filters for this arch (as `run --arch`)")

    image = sub.add_parser("image", help="the reference image")
    isub = image.add_subparsers(dest="image_verb", required=True, metavar="ACTION")
    build = isub.add_parser("build", help="build (or reuse) the reference image")
    build.add_argument("--arch", default="x86_64", choices=["x86_64", "aarch64"])
    build.add_argument("--force", action="store_true", help="rebuild even if cached")
    path = isub.add_parser("path", help="print the cached image path (exit 1 if not built)")
    path.add_argument("--arch", default="x86_64", choices=["x86_64", "aarch64"])
    ilist = isub.add_parser("list", help="the cache's images: current or stale, in use")
    ilist.add_argument("--json", action="store_true", help="machine-readable output")
    prune = isub.add_parser("prune", help="remove cached images of old recipes "
                            "(keeps the current ones and any a running machine uses)")
    prune.add_argument("--dry-run", action="store_true", help="only say what would go")
    for p in (build, path):
        p.add_argument("--iso", action="store_true", help="the reference live ISO instead")
        p.add_argument("--variant", choices=["k8s"], default="",
                       help="k8s: the reference image plus a Kubernetes node (docs/k8s.md)")

    from kolapy.iso.cli import add_parser as add_iso_parser

    add_iso_parser(sub)
    from kolapy.k8s.cli import add_parser as add_k8s_parser

    add_k8s_parser(sub)

    spawn = sub.add_parser("spawn", help="boot one machine and print how to reach it")
    spawn.add_argument("--ignition", metavar="FILE", help="Ignition config (.ign/.json/.bu)")
    _add_run_options(spawn)

    check = sub.add_parser("check-console", help="run the badness checks on saved logs")
    check.add_argument("files", nargs="+", metavar="FILE")

    report = sub.add_parser("report", help="write OUTPUT_DIR/reports/report.html again "
                            "from the files of a finished or interrupted run")
    report.add_argument("output_dir", metavar="OUTPUT_DIR")
    return parser


def _run(ns: argparse.Namespace) -> int:
    from kolapy.runner import run

    return run(ns, forward(ns))


def _run_upgrade(ns: argparse.Namespace) -> int:
    from kolapy.upgrade.run import run_upgrade

    return run_upgrade(ns, forward(ns))


def _image(ns: argparse.Namespace) -> int:
    from kolapy import refimage
    from kolapy.enums import Arch

    if ns.image_verb in ("list", "prune"):
        return _image_cache(ns)
    arch = Arch.parse(ns.arch)
    if ns.iso and ns.variant:
        raise BadInputError(f"--variant {ns.variant}: there is no live ISO of a variant")
    if ns.iso:
        from kolapy.iso import build as isobuild

        what, path_of, build = "live ISO", isobuild.iso_path, isobuild.build_iso
        flag = " --iso"
    else:
        what = f"image ({ns.variant.upper()} variant)" if ns.variant else "image"
        flag = f" --variant {ns.variant}" if ns.variant else ""

        def path_of(a: Arch) -> Path | None:
            return refimage.image_path(a, ns.variant)

        def build(a: Arch, force: bool) -> Path:
            return refimage.build_image(a, force=force, variant=ns.variant)
    if ns.image_verb == "path":
        found = path_of(arch)
        if found is None:
            if arch is not Arch.X86_64:
                flag += f" --arch {arch}"
            print(
                f"kolapy: the {arch} reference {what} is not built (kolapy image build{flag})",
                file=sys.stderr,
            )
            return 1
        print(found)
        return 0
    print(build(arch, force=ns.force))
    return 0


def _iso(ns: argparse.Namespace) -> int:
    from kolapy.iso.cli import run

    return run(ns)


def _k8s(ns: argparse.Namespace) -> int:
    from kolapy.k8s.cli import run

    return run(ns)


def _image_cache(ns: argparse.Namespace) -> int:
    import json

    from kolapy.imagecache import format_entries, list_entries, prune

    if ns.image_verb == "list":
        entries = list_entries()
        print(json.dumps([e.to_json() for e in entries], indent=2) if ns.json
              else format_entries(entries))
        return 0
    removed = prune(dry_run=ns.dry_run)
    verb = "would remove" if ns.dry_run else "removed"
    for e in removed:
        print(f"{verb} {e.name} ({', '.join(e.archs) or '?'}, {e.size / 2**20:.0f} MiB)")
    print(f"kolapy: {verb} {len(removed)} image(s), "
          f"{sum(e.size for e in removed) / 2**20:.0f} MiB")
    return 0


def _list(ns: argparse.Namespace) -> int:
    from kolapy.listing import closing_note, list_tests, print_tests

    extra = [str(Path(p).absolute()) for p in ns.tests]
    extra += [f"--kola-exttest={Path(d).absolute()}" for d in ns.exttest]
    extra += [f"--tag={t}" for t in ns.kola_tags]
    extra += [f"--distro={ns.kola_distro}"] if ns.kola_distro else []
    extra += [f"--arch={ns.kola_arch}"] if ns.kola_arch else []
    tests = list_tests(ns.patterns, extra_args=extra, with_skipped=bool(ns.exttest))
    print_tests(tests, as_json=ns.json)
    if ns.exttest:
        print(closing_note(tests, prefix="ext."), file=sys.stderr if ns.json else sys.stdout)
    return 0


def _spawn(ns: argparse.Namespace) -> int:
    from kolapy.spawn import spawn

    return spawn(ns)


def _check_console(ns: argparse.Namespace) -> int:
    from kolapy.checks import check_files, format_badness, has_failure

    found = check_files(ns.files)
    print(format_badness(found))
    return 1 if any(has_failure(hits) for hits in found.values()) else 0


def _report(ns: argparse.Namespace) -> int:
    from kolapy.report.html import regenerate

    print(regenerate(Path(ns.output_dir)))
    return 0


VERBS = {
    "run": _run,
    "run-upgrade": _run_upgrade,
    "image": _image,
    "iso": _iso,
    "k8s": _k8s,
    "list": _list,
    "spawn": _spawn,
    "check-console": _check_console,
    "report": _report,
}



def _parallel(text: str) -> int | str:
    """``-j N`` or ``-j auto``."""
    if text == "auto":
        return text
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number or 'auto', got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value

def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``kolapy`` console script."""
    from kolapy.kola_aliases import translate

    try:  # kola's spellings (-p qemu, --qemu-image ...) become kolapy's own
        args = translate(sys.argv[1:] if argv is None else argv)
    except BadInputError as exc:
        print(f"kolapy: error: {exc}", file=sys.stderr)
        return BadInputError.exit_code
    ns = _parser().parse_args(args)
    try:
        return VERBS[ns.verb](ns)
    except BadInputError as exc:
        if ns.debug:
            raise
        print(f"kolapy: error: {exc}", file=sys.stderr)
        return BadInputError.exit_code
    except KolapyError as exc:
        if ns.debug:
            raise
        print(f"kolapy: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("kolapy: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
