"""kola's command-line spellings, accepted by `kolapy run`, `run-upgrade`, `list` and `spawn`.

A kola user replaces ``kola`` with ``kolapy`` and keeps the rest of the line::

    kolapy run -p qemu -b nestos --qemu-image nestos.qcow2 --qemu-firmware uefi \\
        --qemu-memory 4096 --qemu-size 10G -j 2 basic

:func:`translate` rewrites such an argument list into kolapy's own options
before argparse sees it, using one table (:data:`ALIASES`, also the table in
docs/cli.md).  kola options that kolapy cannot honour are refused by name
(:class:`~kolapy.errors.BadInputError`, exit code 2), never silently dropped.
An option kola's verb itself accepts but ignores (``-j`` for ``list``) is
dropped for that verb, as kola drops it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from kolapy.errors import BadInputError

#: kolapy verbs that take kola's options.
VERBS = frozenset({"run", "run-upgrade", "list", "spawn"})
_MACHINE_VERBS = frozenset({"run", "run-upgrade", "spawn"})
_RUN_VERBS = frozenset({"run", "run-upgrade"})


class KolaOptionError(BadInputError):
    """A kola option kolapy does not accept (exit code 2)."""


_ISO_PLATFORM = "\0qemu-iso"  # a marker no real argument can be


def _platform(value: str) -> list[str]:
    # kola: "qemu" is an alias of "qemu-unpriv", the only QEMU platform left; "iso" of
    # "qemu-iso", whose ISO --qemu-iso names (checked in translate()).
    if value in ("qemu", "qemu-unpriv"):
        return []
    if value in ("qemu-iso", "iso"):
        return [_ISO_PLATFORM]
    if value == "libvirt":  # kolapy's own platform (kola has none of that name)
        return ["--platform=libvirt"]
    raise KolaOptionError(
        f"kola option -p/--platform {value}: kolapy runs on qemu or libvirt only "
        "(-p qemu, -p qemu-iso or -p libvirt)"
    )


def _firmware(value: str) -> list[str]:
    if value == "uefi-secure":
        raise KolaOptionError(
            "kola option --qemu-firmware uefi-secure: kolapy has no Secure Boot firmware "
            "(bios or uefi)"
        )
    return ["--firmware", value]


def _to(flag: str) -> Callable[[str], list[str]]:
    return lambda value: [flag, value]


@dataclass(frozen=True)
class Alias:
    """One kola option and what it becomes in kolapy."""

    spellings: tuple[str, ...]
    """kola's spellings, short first (``-p``, ``--platform``)."""
    kolapy: str
    """The kolapy option it becomes, for the docs (``-`` when none is needed)."""
    convert: Callable[[str], list[str]] | None
    """Value -> kolapy arguments; None for a switch that is kolapy's own spelling too."""
    verbs: frozenset[str] = _MACHINE_VERBS
    """Verbs where it means something; kola's other verbs accept and ignore it."""
    note: str = ""

    @property
    def takes_value(self) -> bool:
        return self.convert is not None


ALIASES: tuple[Alias, ...] = (
    Alias(("-p", "--platform"), "-", _platform, VERBS,
          note="`qemu` (kola's `qemu-unpriv`), `qemu-iso` with `--qemu-iso`, or "
          "kolapy's `libvirt`; others exit 2"),
    Alias(("-b", "--distro"), "--distro", _to("--distro"), VERBS, note="`nestos` or `fcos`"),
    Alias(("--qemu-image",), "--nestos-image", _to("--nestos-image")),
    Alias(("--qemu-iso",), "--nestos-iso", _to("--nestos-iso"),
          note="the config is embedded into a private copy; console karg appended"),
    Alias(("--qemu-firmware",), "--firmware", _firmware, note="`bios` or `uefi`"),
    Alias(("--qemu-memory",), "--memory", _to("--memory"), note="MiB"),
    Alias(("--qemu-size",), "--disk-size", _to("--disk-size"),
          note="`10G`, or `+5G` for the image's size plus 5 GiB"),
    Alias(("-j", "--parallel"), "-j/--parallel", _to("--parallel"), _RUN_VERBS),
    Alias(("--output-dir",), "--output-dir", _to("--output-dir"), _RUN_VERBS),
    Alias(("--tag",), "--tag", _to("--tag"), VERBS, note="repeatable; `!T` excludes"),
    Alias(("--arch",), "--arch", _to("--arch"), VERBS),
    Alias(("-E", "--exttest"), "-E/--exttest", _to("--exttest"),
          frozenset({"run", "list"})),
    Alias(("--rerun",), "--rerun", None, frozenset({"run"})),
    Alias(("--denylist-test", "--blacklist-test"), "--denylist-test", _to("--denylist-test"),
          _RUN_VERBS, note="a pattern to skip (repeatable); kola's denylist file: `--denylist`"),
)

#: kola options with no kolapy counterpart: refused by name.
UNSUPPORTED: dict[str, str] = {
    "--qemu-iso-as-disk": "not a run option: the iso.as-disk scenario boots the ISO as a disk",
    "--qemu-nvme": "the main disk is always virtio (kola tests' NVMe disks: additionalDisks)",
    "--qemu-multipath": "no multipath main disk",
    "--qemu-native-4k": "no 4k-sector main disk",
    "--qemu-nbd-socket": "disks are qcow2 overlays, not NBD",
    "--qemu-drive-opts": "no extra -drive options",
    "--qemu-swtpm": "no software TPM",
    "--qemu-secex": "no IBM Secure Execution",
    "--qemu-secex-ignition-pubkey": "no IBM Secure Execution",
    "--qemu-secex-hostkey": "no IBM Secure Execution",
    "--tapfile": "the TAP file is always <output-dir>/test.tap",
    "-T": "kolapy exits 1 when a test fails",
    "--no-test-exit-error": "kolapy exits 1 when a test fails",
    "--basename": "machine names are kolapy's",
    "--debug-systemd-unit": "not implemented",
    "--no-net": "guests never reach the internet (restrict=on)",
    "--run-platform-independent": "not implemented",
    "--sharding": "not implemented",
    "--ssh-on-test-failure": "use --keep-failed",
    "--stream": "not implemented",
    "--workdir": "no coreos-assembler build directories: use --qemu-image",
    "--build": "no coreos-assembler build directories: use --qemu-image",
    "--append-butane": "not implemented",
    "--append-ignition": "not implemented",
    "--oscontainer": "RHCOS only",
    "--allow-rerun-success": "not implemented",
    "--multiply": "not implemented",
    "--repeat": "not implemented",
}

#: Option families of kola's cloud platforms (and any other QEMU option).
_UNSUPPORTED_PREFIXES = (
    "--qemu-", "--aws-", "--azure-", "--do-", "--esx-", "--gcp-", "--openstack-", "--packet-",
)


@dataclass
class _Lookup:
    by_spelling: dict[str, Alias] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for alias in ALIASES:
            for spelling in alias.spellings:
                self.by_spelling[spelling] = alias

    def split(self, arg: str) -> tuple[Alias, str | None] | None:
        """``arg`` as (alias, inline value) when it is one of kola's spellings."""
        if arg.startswith("--"):
            name, eq, value = arg.partition("=")
            alias = self.by_spelling.get(name)
            return (alias, value if eq else None) if alias else None
        if len(arg) >= 2 and arg[0] == "-" and arg[1] != "-":
            alias = self.by_spelling.get(arg[:2])
            if alias is None:
                return None
            return alias, (arg[2:].lstrip("=") if len(arg) > 2 else None)
        return None


_LOOKUP = _Lookup()


def _unsupported(arg: str) -> str | None:
    name = arg.partition("=")[0] if arg.startswith("--") else arg[:2]
    if name in UNSUPPORTED:
        return f"kola option {name} is not supported by kolapy: {UNSUPPORTED[name]}"
    if name.startswith(_UNSUPPORTED_PREFIXES):
        return f"kola option {name} is not supported by kolapy (it runs on QEMU; see docs/cli.md)"
    return None


def _verb_index(argv: Sequence[str]) -> int | None:
    for i, arg in enumerate(argv):
        if not arg.startswith("-"):
            return i if arg in VERBS else None
    return None


def translate(argv: Sequence[str]) -> list[str]:
    """``argv`` with kola's option spellings replaced by kolapy's.

    Only the arguments after a verb in :data:`VERBS` are looked at, up to ``--``.
    Raises :class:`KolaOptionError` naming a kola option kolapy does not accept.
    """
    args = list(argv)
    start = _verb_index(args)
    if start is None:
        return args
    verb = args[start]
    out = args[: start + 1]
    i = start + 1
    while i < len(args):
        arg = args[i]
        i += 1
        if arg == "--":
            out += args[i - 1 :]
            break
        found = _LOOKUP.split(arg)
        if found is None:
            problem = _unsupported(arg) if arg.startswith("-") else None
            if problem:
                raise KolaOptionError(problem)
            out.append(arg)
            continue
        alias, value = found
        if alias.convert is not None and value is None:
            if i >= len(args):
                raise KolaOptionError(f"kola option {arg} needs a value")
            value = args[i]
            i += 1
        if verb not in alias.verbs:
            continue  # kola's verb accepts it and ignores it; so does kolapy's
        if alias.convert is None:
            out.append(alias.spellings[-1])
        else:
            assert value is not None
            out += alias.convert(value)
    return _iso_platform(verb, out)


def _iso_platform(verb: str, args: list[str]) -> list[str]:
    """Drop the ``qemu-iso`` marker ``-p`` left: kola's qemu-iso platform needs the ISO."""
    if _ISO_PLATFORM not in args:
        return args
    args = [a for a in args if a != _ISO_PLATFORM]
    if verb != "list" and "--nestos-iso" not in args and not any(
        a.startswith(("--nestos-iso=", "--iso")) for a in args
    ):
        raise KolaOptionError("kola option -p/--platform qemu-iso needs --qemu-iso ISO")
    return args


def markdown_table() -> str:
    """The kola -> kolapy table of docs/cli.md (kept equal by a unit test)."""
    rows = ["| kola | kolapy | verbs | note |", "|---|---|---|---|"]
    for a in ALIASES:
        verbs = "all" if a.verbs == VERBS else ", ".join(sorted(a.verbs))
        rows.append(f"| `{'`, `'.join(a.spellings)}` | `{a.kolapy}` | {verbs} | {a.note} |")
    return "\n".join(rows)
