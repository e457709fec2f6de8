"""kola-denylist.yaml parsing and matching (snooze, warn, scopes)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from kolapy.denylist import (
    DenyEffect,
    DenyEntry,
    load_denylist,
    match,
    parse_denylist,
    skip_console_warnings,
)
from kolapy.errors import BadInputError

YAML = """
- pattern: podman.base
  tracker: https://gitee.com/openeuler/NestOS/issues/1
- pattern: ostree.*
  tracker: https://bugs/2
  snooze: 2026-06-01
  arches: [aarch64]
- pattern: isula.workflow
  snooze: "2026-06-01"
  warn: true
- pattern: basic
  warn: true
  streams: [stable]
  platforms: [qemu]
- pattern: skip-console-warnings
  osversion: [nestos-22.03]
"""

DAY = dt.date(2026, 5, 1)


@pytest.fixture
def entries(tmp_path: Path) -> list[DenyEntry]:
    path = tmp_path / "kola-denylist.yaml"
    path.write_text(YAML)
    return load_denylist(path)


def test_load(entries: list[DenyEntry]) -> None:
    assert len(entries) == 5
    assert entries[0] == DenyEntry("podman.base", "https://gitee.com/openeuler/NestOS/issues/1")
    assert entries[1].snooze == dt.date(2026, 6, 1)  # unquoted YAML date
    assert entries[2].snooze == dt.date(2026, 6, 1)  # quoted string
    assert entries[1].arches == ("aarch64",)
    assert entries[3].streams == ("stable",)


def test_skip_without_snooze(entries: list[DenyEntry]) -> None:
    hit = match(entries, "podman.base", "x86_64", "qemu", today=DAY)
    assert hit is not None and hit.effect(DAY) is DenyEffect.SKIP
    assert "issues/1" in hit.reason()
    assert match(entries, "podman.other", "x86_64", "qemu", today=DAY) is None


def test_snooze_applies_until_the_day(entries: list[DenyEntry]) -> None:
    assert match(entries, "ostree.upgrade", "aarch64", "qemu", today=dt.date(2026, 5, 31))
    # on the snooze day kola's "now > day 00:00" is true: expired, no effect without warn
    assert match(entries, "ostree.upgrade", "aarch64", "qemu", today=dt.date(2026, 6, 1)) is None
    assert match(entries, "ostree.upgrade", "x86_64", "qemu", today=DAY) is None  # arch scope


def test_snooze_with_warn(entries: list[DenyEntry]) -> None:
    before = match(entries, "isula.workflow", "x86_64", "qemu", today=DAY)
    assert before is not None and before.effect(DAY) is DenyEffect.SKIP
    later = dt.date(2026, 7, 1)
    after = match(entries, "isula.workflow", "x86_64", "qemu", today=later)
    assert after is not None and after.effect(later) is DenyEffect.WARN


def test_stream_scope_needs_known_stream(entries: list[DenyEntry]) -> None:
    assert match(entries, "basic", "x86_64", "qemu", today=DAY) is None
    hit = match(entries, "basic/ssh-port", "x86_64", "qemu", stream="stable", today=DAY)
    assert hit is not None and hit.effect(DAY) is DenyEffect.WARN  # covers subtests
    assert match(entries, "basic", "x86_64", "qemu", stream="next", today=DAY) is None
    assert match(entries, "basic", "x86_64", "aws", stream="stable", today=DAY) is None


def test_skip_beats_warn() -> None:
    entries = [DenyEntry("a*", warn=True), DenyEntry("ab")]
    hit = match(entries, "ab", "x86_64", "qemu", today=DAY)
    assert hit is not None and hit.pattern == "ab"


def test_skip_console_warnings(entries: list[DenyEntry]) -> None:
    assert skip_console_warnings(entries, "x86_64", "qemu", osversion="nestos-22.03")
    assert not skip_console_warnings(entries, "x86_64", "qemu", osversion="other")
    assert not skip_console_warnings(entries, "x86_64", "qemu")
    assert (
        match(entries, "skip-console-warnings", "x86_64", "qemu", osversion="nestos-22.03") is None
    )


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("- pattern: a\n  bogus: 1\n", "unknown key"),
        ("- pattern: a\n  snooze: tomorrow\n", "snooze"),
        ("- pattern: a\n  warn: maybe\n", "warn"),
        ("- tracker: x\n", "pattern"),
        ("pattern: a\n", "list"),
        ("- pattern: [a\n", "YAML"),
        ("- pattern: 'a['\n", "malformed"),
        ("- pattern: a\n  arches: {x: 1}\n", "arches"),
    ],
)
def test_bad_denylist_names_the_file(tmp_path: Path, text: str, needle: str) -> None:
    path = tmp_path / "deny.yaml"
    path.write_text(text)
    with pytest.raises(BadInputError, match=needle) as info:
        load_denylist(path)
    assert str(path) in str(info.value)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(BadInputError, match=r"nope\.yaml"):
        load_denylist(tmp_path / "nope.yaml")


def test_empty_file() -> None:
    assert parse_denylist("") == []
