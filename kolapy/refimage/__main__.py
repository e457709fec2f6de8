"""``python -m kolapy.refimage build [--arch x86_64] [--force] | path``."""

from __future__ import annotations

import argparse
import sys

from kolapy.enums import Arch
from kolapy.errors import BadInputError, KolapyError
from kolapy.refimage import build_image, image_path
from kolapy.refimage.recipe import VARIANTS


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m kolapy.refimage")
    sub = parser.add_subparsers(dest="cmd", required=True)
    for name in ("build", "path"):
        p = sub.add_parser(name)
        p.add_argument("--arch", type=Arch.parse, default=Arch.X86_64)
        p.add_argument("--variant", choices=sorted(VARIANTS), default="")
        if name == "build":
            p.add_argument("--force", action="store_true")
    args = parser.parse_args(argv)
    try:
        if args.cmd == "build":
            path = build_image(args.arch, force=args.force, variant=args.variant)
        else:
            found = image_path(args.arch, args.variant)
            if found is None:
                print(f"the {args.arch} reference image is not built "
                      "(run `kolapy image build`)", file=sys.stderr)
                return 1
            path = found
    except BadInputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KolapyError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
