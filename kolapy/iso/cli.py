"""``kolapy iso ...``: the live ISO's embed and kernel-argument areas (wiring only)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from kolapy.errors import BadInputError


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Register the ``iso`` verb and its actions on ``sub``."""
    iso = sub.add_parser("iso", help="a live ISO's embedded Ignition config and kernel arguments")
    isub = iso.add_subparsers(dest="iso_verb", required=True, metavar="AREA")
    ign = isub.add_parser("ignition", help="the embedded Ignition config")
    igsub = ign.add_subparsers(dest="iso_action", required=True, metavar="ACTION")
    embed = igsub.add_parser("embed", help="embed a config (from -i FILE or stdin)")
    embed.add_argument("-i", "--ignition-file", metavar="FILE", help="config (default: stdin)")
    embed.add_argument("-f", "--force", action="store_true", help="replace an embedded config")
    show = igsub.add_parser("show", help="print the embedded config")
    remove = igsub.add_parser("remove", help="remove the embedded config")
    kargs = isub.add_parser("kargs", help="the kernel arguments of the live system")
    ksub = kargs.add_subparsers(dest="iso_action", required=True, metavar="ACTION")
    kshow = ksub.add_parser("show", help="print the kernel arguments")
    kshow.add_argument("-d", "--default", action="store_true", help="the ISO's default kargs")
    modify = ksub.add_parser("modify", help="delete, then append, then replace kargs")
    modify.add_argument("-a", "--append", action="append", default=[], metavar="KARG")
    modify.add_argument("-d", "--delete", action="append", default=[], metavar="KARG")
    modify.add_argument("-r", "--replace", action="append", default=[], metavar="KEY=OLD=NEW")
    modify.add_argument("--reset", action="store_true", help="start from the default kargs")
    for p in (embed, remove, modify):
        p.add_argument("-o", "--output", metavar="PATH",
                       help="write a modified copy to PATH ('-': stdout) instead of in place")
    for p in (embed, show, remove, kshow, modify):
        p.add_argument("iso", type=Path, metavar="ISO")


def run(ns: argparse.Namespace) -> int:
    """Carry out ``kolapy iso AREA ACTION``; raises BadInputError on bad input."""
    from kolapy.iso import edit
    from kolapy.iso.media import check_live_iso

    iso: Path = ns.iso
    check_live_iso(iso)
    if ns.iso_verb == "ignition":
        if ns.iso_action == "show":
            config = edit.embedded_config(iso)
            if config is None:
                print("No embedded Ignition config.", file=sys.stderr)
                return 1
            sys.stdout.buffer.write(config)
            sys.stdout.buffer.flush()
            return 0
        if ns.iso_action == "embed":
            if ns.ignition_file:
                try:
                    data = Path(ns.ignition_file).read_bytes()
                except OSError as e:
                    raise BadInputError(f"cannot read {ns.ignition_file}: {e.strerror}") from None
            else:
                data = sys.stdin.buffer.read()
            patches = [edit.embed_patch(iso, data, force=ns.force)]
        else:
            patches = [edit.remove_patch(iso)]
    else:
        if ns.iso_action == "show":
            areas = check_live_iso(iso)
            print(areas.default if ns.default else areas.current)
            return 0
        patches = edit.kargs_patches(iso, append=ns.append, delete=ns.delete,
                                     replace=ns.replace, default=ns.reset)
    edit.write_out(iso, patches, ns.output)
    return 0
