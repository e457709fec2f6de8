"""Badness patterns: each with a matching and a non-matching line."""

from __future__ import annotations

from pathlib import Path

import pytest

from kolapy.checks import (
    BADNESS,
    Severity,
    check_files,
    check_text,
    format_badness,
    has_failure,
    parse_failed_units,
)
from kolapy.errors import BadInputError

BONDING = "\n".join(
    f"bond0: link status up for interface eth{i}, enabling it in 200 ms" for i in range(10)
)

# pattern name -> (a line that must hit, a similar line that must not)
CASES = {
    "emergency shell": (
        "[  OK  ] Starting Emergency Shell...",
        "Started emergency-shell-check.service",
    ),
    "dracut fatal": ("dracut: Refusing to continue", "dracut: Continuing"),
    "kernel panic": (
        "[ 3.1] Kernel panic - not syncing: VFS: Unable to mount root fs",
        "kernel: panic_on_oops=1",
    ),
    "kernel oops": ("[ 12.3] Oops: 0002 [#1] PREEMPT SMP", "oops, a typo"),
    "kernel soft lockup": (
        "watchdog: BUG: soft lockup - CPU#0 stuck for 23s! [kworker/0:1:42]",
        "watchdog: watchdog0: watchdog did not stop!",
    ),
    "kernel warning": (
        "WARNING: CPU: 1 PID: 250 at drivers/gpu/drm/drm.c:42 foo+0x1/0x2",
        "WARNING: dracut module foo missing",
    ),
    "failure of disk under I/O": (
        "sd 0:0:0:0: rejecting I/O to offline device",
        "sd 0:0:0:0: accepting I/O",
    ),
    "excessive bonding link status messages": (BONDING, BONDING.split("\n", 1)[0]),
    "ext4 delayed allocation failure": (
        "EXT4-fs (vda4): Delayed block allocation failed for inode 12 at logical offset 0 "
        "with max blocks 1 with error 28",
        "EXT4-fs (vda4): mounted filesystem with ordered data mode",
    ),
    "GRUB memory corruption": ("alloc magic is broken at 0x7f", "magic number ok"),
    "Ignition fetch cancellation race": (
        "ignition[812]: failed to fetch config: context canceled",
        "ignition[812]: fetched config",
    ),
    "initrd-cleanup.service terminated": (
        "initrd-cleanup.service: Main process exited, code=killed, status=15/TERM",
        "initrd-cleanup.service: Succeeded.",
    ),
    "Go panic": ("panic: runtime error: index out of range", "no panicking here"),
    "segfault": (
        "systemd[1]: foo.service: Main process exited, code=dumped, status=11/SEGV",
        "status=1/FAILURE",
    ),
    "core dump": ("systemd-coredump[99]: Process 12 (bash) dumped core dump", "coredumpctl"),
    "systemd ordering cycle": (
        "systemd[1]: a.service: Found ordering cycle on b.service; Ordering cycle found",
        "systemd[1]: ordering ok",
    ),
    "oom killer": ("kernel: stress invoked oom-killer: gfp_mask=0x100cca", "oom_score_adj=0"),
    "systemd generator failure": (
        "/usr/lib/systemd/system-generators/ignition-generator failed with exit status 1.",
        "/usr/lib/systemd/system-generators/ignition-generator succeeded",
    ),
}


def test_every_pattern_has_a_case() -> None:
    assert set(CASES) == {p.name for p in BADNESS}


@pytest.mark.parametrize("name", sorted(CASES))
def test_pattern_hits_and_misses(name: str) -> None:
    good, bad = CASES[name]
    hits = check_text(f"boot ok\n{good}\nmore")
    assert name in [h.pattern_name for h in hits]
    assert name not in [h.pattern_name for h in check_text(f"boot ok\n{bad}\nmore")]


def test_planted_oops_line_is_reported_with_its_line() -> None:
    console = "[  0.0] Linux version 6.1\n[ 12.3] Oops: 0002 [#1] SMP\r\n[ 12.4] RIP: x\n"
    hits = check_text(console)
    assert [(h.pattern_name, h.line, h.severity) for h in hits] == [
        ("kernel oops", "[ 12.3] Oops: 0002 [#1] SMP", Severity.FAIL)
    ]
    assert has_failure(hits)


def test_clean_console() -> None:
    assert check_text("[  OK  ] Reached target multi-user.target.\nlogin: ") == []


def test_soft_lockup_only_warns() -> None:
    hits = check_text(CASES["kernel soft lockup"][0])
    assert [h.severity for h in hits] == [Severity.WARN]
    assert not has_failure(hits)


def test_skip_emergency_and_warn_only() -> None:
    text = "You are in emergency mode.\nOops: 1"
    assert [h.pattern_name for h in check_text(text, skip_emergency=True)] == ["kernel oops"]
    assert {h.severity for h in check_text(text, warn_only=True)} == {Severity.WARN}


def test_ansi_codes_are_ignored() -> None:
    hits = check_text("\x1b[0;31mKernel panic - not syncing: boom\x1b[0m\n")
    assert hits[0].line == "Kernel panic - not syncing: boom"


def test_check_files_and_format(tmp_path: Path) -> None:
    bad = tmp_path / "console.txt"
    bad.write_text("x\nOops: 5\n")
    good = tmp_path / "journal.txt"
    good.write_text("all fine\n")
    results = check_files([bad, good])
    assert [h.pattern_name for h in results[bad]] == ["kernel oops"]
    assert results[good] == []
    text = format_badness(results)
    assert f"{bad}: FAIL kernel oops: Oops: 5" in text
    assert f"{good}: ok" in text
    with pytest.raises(BadInputError, match=r"missing\.txt"):
        check_files([tmp_path / "missing.txt"])


def test_parse_failed_units() -> None:
    out = "● foo.service loaded failed failed Foo\nbar.mount loaded failed failed Bar\n"
    assert parse_failed_units(out) == ["foo.service", "bar.mount"]
    assert parse_failed_units("") == []


def test_planted_oops_fails_only_the_slice_it_is_in() -> None:
    # one shared VM console, sliced per test by offset: only test b's slice has the oops
    console = "boot\n[a] running test a\n[b] running test b\n[ 9.9] Oops: 0000 [#1]\n[c] test c\n"
    cut_b = console.index("[b]")
    cut_c = console.index("[c]")
    slices = {"a": console[:cut_b], "b": console[cut_b:cut_c], "c": console[cut_c:]}
    verdicts = {name: has_failure(check_text(text)) for name, text in slices.items()}
    assert verdicts == {"a": False, "b": True, "c": False}
