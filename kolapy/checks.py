"""Badness checks on a test's console and journal slices (kola's ``consoleChecks``).

After every test kolapy scans the console and journal text of that test's
machines for signs of trouble: kernel oops/panic, emergency shell, segfaults,
OOM kills...  A FAIL hit fails the test; a WARN hit (NestOS: soft lockups,
which mostly mean a slow host) only warns.  ``kolapy check-console FILE...``
runs the same checks on saved logs.

As in kola each pattern is reported at most once per text (its first hit);
``no_emergency_shell_check`` (``skip_emergency=True``) turns off the emergency
shell pattern.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from kolapy.errors import BadInputError


class Severity(StrEnum):
    """Whether a hit fails the test or only warns."""

    FAIL = "fail"
    WARN = "warn"


@dataclass(frozen=True)
class BadnessPattern:
    """One kind of badness: a name, a regex and its severity."""

    name: str
    regex: re.Pattern[str]
    severity: Severity = Severity.FAIL
    skip_flag: str | None = None
    """A test flag that turns this check off."""


def _p(
    name: str, regex: str, severity: Severity = Severity.FAIL, flag: str | None = None
) -> BadnessPattern:
    return BadnessPattern(name, re.compile(regex), severity, flag)


BADNESS: tuple[BadnessPattern, ...] = (
    _p(
        "emergency shell",
        r"Press Enter for emergency shell|Starting Emergency Shell|You are in emergency mode",
        flag="no_emergency_shell_check",
    ),
    _p("dracut fatal", r"dracut: Refusing to continue"),
    _p("kernel panic", r"Kernel panic - not syncing: (.*)"),
    _p("kernel oops", r"Oops:"),
    # NestOS kola: mostly a sign of a starved host, so a warning only.
    _p("kernel soft lockup", r"watchdog: BUG: soft lockup - CPU", Severity.WARN),
    _p("kernel warning", r"WARNING: CPU: \d+ PID: \d+ at (.+)"),
    _p("failure of disk under I/O", r"rejecting I/O to offline device"),
    _p(
        "excessive bonding link status messages",
        r"(?s:link status up for interface [^,]+, enabling it in [0-9]+ ms.*?){10}",
    ),
    _p(
        "ext4 delayed allocation failure",
        r"EXT4-fs \([^)]+\): Delayed block allocation failed"
        r"(?: for inode \d+ at logical offset \d+ with max blocks \d+ with (error \d+))?",
    ),
    _p("GRUB memory corruption", r"((alloc|free) magic) (is )?broken"),
    _p(
        "Ignition fetch cancellation race",
        r"ignition\[[0-9]+\]: failed to fetch config: context canceled",
    ),
    _p(
        "initrd-cleanup.service terminated",
        r"initrd-cleanup\.service: Main process exited, code=killed, status=15/TERM",
    ),
    _p("Go panic", r"panic: (.*)"),
    _p("segfault", r"SIGSEGV|=11/SEGV"),
    _p("core dump", r"[Cc]ore dump"),
    _p("systemd ordering cycle", r"Ordering cycle found"),
    _p("oom killer", r"invoked oom-killer"),
    _p(
        "systemd generator failure",
        r"(/.*/system-generators/.*) (failed with exit status|terminated by signal"
        r"|failed due to unknown reason)",
    ),
)

_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\r")


@dataclass(frozen=True)
class Badness:
    """One hit: which pattern, the offending line, and its severity."""

    pattern_name: str
    line: str
    severity: Severity

    def __str__(self) -> str:
        return f"{self.severity.value.upper()} {self.pattern_name}: {self.line}"


def check_text(
    text: str,
    *,
    skip_emergency: bool = False,
    warn_only: bool = False,
    patterns: Iterable[BadnessPattern] = BADNESS,
) -> list[Badness]:
    """Scan console/journal text; return one :class:`Badness` per pattern that hit.

    ``skip_emergency`` drops the emergency-shell check (test flag
    ``no_emergency_shell_check``).  ``warn_only`` downgrades every hit to WARN
    (the denylist's ``skip-console-warnings``).
    """
    clean = _ANSI.sub("", text)
    found = []
    for pat in patterns:
        if skip_emergency and pat.skip_flag == "no_emergency_shell_check":
            continue
        m = pat.regex.search(clean)
        if m is None:
            continue
        start = clean.rfind("\n", 0, m.start()) + 1
        end = clean.find("\n", m.start())
        line = clean[start : end if end != -1 else len(clean)].strip()
        severity = Severity.WARN if warn_only else pat.severity
        found.append(Badness(pat.name, line, severity))
    return found


def has_failure(badnesses: Iterable[Badness]) -> bool:
    """Whether any hit is a FAIL (not just a warning)."""
    return any(b.severity is Severity.FAIL for b in badnesses)


def check_files(
    paths: Iterable[str | Path], *, skip_emergency: bool = False
) -> dict[Path, list[Badness]]:
    """Run :func:`check_text` on saved logs; an unreadable file is a BadInputError."""
    results: dict[Path, list[Badness]] = {}
    for raw in paths:
        path = Path(raw)
        try:
            text = path.read_text(encoding="utf-8", errors="replace")
        except OSError as exc:
            raise BadInputError(f"{path}: cannot read: {exc.strerror or exc}") from None
        results[path] = check_text(text, skip_emergency=skip_emergency)
    return results


def format_badness(results: Mapping[Path, list[Badness]] | Mapping[str, list[Badness]]) -> str:
    """Human-readable report for ``kolapy check-console``: one line per hit or clean file."""
    lines = []
    for path, hits in results.items():
        if not hits:
            lines.append(f"{path}: ok")
        for hit in hits:
            lines.append(f"{path}: {hit}")
    return "\n".join(lines)


def parse_failed_units(systemctl_output: str) -> list[str]:
    """Unit names from ``systemctl list-units --failed --plain --no-legend`` output."""
    units = []
    for line in systemctl_output.splitlines():
        words = line.replace("\u25cf", " ").split()
        if words and "." in words[0]:
            units.append(words[0])
    return units
