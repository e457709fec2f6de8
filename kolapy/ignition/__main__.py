"""``python -m kolapy.ignition cat FILE``: print a config as Ignition JSON.

FILE is a ``.ign``/``.json`` config, a Butane ``.bu`` (translated), or a live
``.iso`` (its embedded config).  Handy to see what kolapy will give a machine.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from kolapy.errors import BadInputError
from kolapy.ignition.config import Ignition
from kolapy.ignition.iso import read_from_iso


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit code (2 on bad input, as everywhere in kolapy)."""
    parser = argparse.ArgumentParser(prog="python -m kolapy.ignition")
    sub = parser.add_subparsers(dest="command", required=True)
    cat = sub.add_parser("cat", help="print a config (.ign, .bu or a live .iso) as JSON")
    cat.add_argument("file", type=Path)
    args = parser.parse_args(argv)
    try:
        if args.file.suffix.lower() == ".iso":
            config = read_from_iso(args.file)
            if config is None:
                print(f"{args.file}: no Ignition config embedded", file=sys.stderr)
                return 1
        else:
            config = Ignition.load(args.file)
    except BadInputError as e:
        print(f"error: {e}", file=sys.stderr)
        return BadInputError.exit_code
    print(config.to_json(indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
